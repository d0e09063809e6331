use faust::{agent, Stream};

#[agent(isolated_partitions, concurrency = 4)]
async fn both(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
