use faust::{agent, Stream};

#[agent(concurency = 4)]
async fn misspelled(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(retries = 3)]
async fn unknown(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
