use faust::{agent, Stream};

#[agent(partitions = 0)]
async fn nowhere(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
