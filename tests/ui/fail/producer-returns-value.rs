use faust::{agent, Stream, Yield};

#[agent]
async fn producer(_s: Stream<i64>, _out: Yield<i64>) -> faust::Result<i64> {
    Ok(1)
}

fn main() {}
