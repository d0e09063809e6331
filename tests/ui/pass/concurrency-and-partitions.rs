use faust::{agent, Stream};

#[agent(concurrency = 4, partitions = 8)]
async fn work(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(concurrency = 1usize, partitions = 1)]
async fn one(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
