use faust::{agent, Stream};

struct NotACodec;

#[agent(codec = NotACodec)]
async fn encoded(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
