use faust::{agent, Stream};

#[agent(topic = ["orders", ""])]
async fn orders(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
