use faust::{agent, Stream};

#[agent(channel = "lines", topic = "orders")]
async fn both(_s: Stream<String>) -> faust::Result<()> {
    Ok(())
}

#[agent(channel = "lines", isolated_partitions = true, partitions = 4)]
async fn partitioned(_s: Stream<String>) -> faust::Result<()> {
    Ok(())
}

#[agent(channel = "")]
async fn unnamed(_s: Stream<String>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
