use faust::{agent, Stream};

#[agent]
async fn generic<T: faust::Value>(_s: Stream<T>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
