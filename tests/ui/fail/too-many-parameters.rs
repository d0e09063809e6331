use faust::{agent, Stream, Yield};

#[agent]
async fn three(_s: Stream<i64>, _out: Yield<i64>, _extra: u32) -> faust::Result<()> {
    Ok(())
}

fn main() {}
