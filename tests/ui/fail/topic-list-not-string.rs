use faust::{agent, Stream};

#[agent(topic = [orders])]
async fn orders(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(topic = ["orders", refunds, 42], concurrency = 0)]
async fn all_reported(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
