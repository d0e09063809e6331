use faust::{agent, Stream};

#[agent]
async fn consumer(_s: Stream<i64>) {}

fn main() {}
