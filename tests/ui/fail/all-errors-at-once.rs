// Every argument error is reported in one compilation, and the signature's too.
use faust::{agent, Stream};

#[agent(concurrency = 0, colour = "red", topic = "a", topic = "b", supervisor = nope)]
fn everything_wrong(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
