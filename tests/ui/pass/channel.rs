use faust::{agent, Stream};

/// Reads an in-memory channel.
#[agent(channel = "lines", concurrency = 2)]
async fn lines(mut stream: Stream<String>) -> faust::Result<()> {
    while let Some(line) = stream.next().await {
        println!("{line}");
    }
    Ok(())
}

fn main() {}
