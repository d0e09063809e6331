use faust::{agent, Stream};

struct NotSerde;

#[agent]
async fn consumer(_s: Stream<NotSerde>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
