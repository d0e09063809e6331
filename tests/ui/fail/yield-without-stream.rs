use faust::{agent, Yield};

#[agent]
async fn only_out(_out: Yield<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
