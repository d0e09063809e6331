use faust::{agent, Stream};

#[agent(topic = "a" concurrency = 2)]
async fn no_comma(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
