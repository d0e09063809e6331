use faust::{agent, Stream};

#[agent(topic = [])]
async fn nothing(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
