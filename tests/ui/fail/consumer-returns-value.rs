use faust::{agent, Stream};

#[agent]
async fn consumer(_s: Stream<i64>) -> faust::Result<i64> {
    Ok(1)
}

fn main() {}
