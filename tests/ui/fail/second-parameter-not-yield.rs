use faust::{agent, Stream};

#[agent]
async fn two(_s: Stream<i64>, _out: Vec<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
