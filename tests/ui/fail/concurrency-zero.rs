use faust::{agent, Stream};

#[agent(concurrency = 0)]
async fn nobody(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
