use faust::{agent, Stream};

#[agent(sink = ["out"])]
async fn consumer(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
