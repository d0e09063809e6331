// The value-producer form (Faust's `yield`):
// `async fn(Stream<T>, Yield<R>) -> Result<()>`.
use faust::{agent, Stream, Yield};

#[agent]
async fn lengths(mut words: Stream<String>, out: Yield<usize>) -> faust::Result<()> {
    while let Some(word) = words.next().await {
        out.send(word.len()).await?;
    }
    Ok(())
}

fn main() {
    let d = faust::registered_agents().unwrap();
    assert_eq!(d[0].name, "lengths");
}
