use faust::{agent, Stream};

#[agent(topic = "a", concurrency = 2, topic = "b")]
async fn twice(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
