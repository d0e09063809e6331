use faust::{agent, Stream};

#[agent(concurrency = "4", topic = orders, isolated_partitions = "yes")]
async fn wrong_types(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
