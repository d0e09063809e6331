use faust::{agent, Stream};

#[agent(topic_pattern = "orders-(")]
async fn orders(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
