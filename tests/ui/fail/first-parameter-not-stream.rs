use faust::{agent, Yield};

#[agent]
async fn two(_x: i64, _out: Yield<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
