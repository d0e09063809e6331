use faust::{agent, Stream};

fn report(_: &str) {}

#[agent(on_error = report)]
async fn failing(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
