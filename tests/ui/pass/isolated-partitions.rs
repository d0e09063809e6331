use faust::{agent, Stream};

#[agent(isolated_partitions)]
async fn flag(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(isolated_partitions = true, concurrency = 1)]
async fn explicit(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

// `false` does not conflict with concurrency.
#[agent(isolated_partitions = false, concurrency = 3)]
async fn off(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

// An actor per partition of every topic listed or matching the pattern.
#[agent(topic = ["a", "b"], topic_pattern = "orders-.*", isolated_partitions = true)]
async fn several(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
