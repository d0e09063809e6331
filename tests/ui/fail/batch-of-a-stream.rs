use faust::{agent, Stream};

#[agent(batch = 10, within = "1s")]
async fn f(mut s: Stream<i64>) -> faust::Result<()> {
    while s.next().await.is_some() {}
    Ok(())
}

fn main() {}
