use faust::{agent, Stream};

#[agent(supervisor = one_for_one)]
async fn a(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(supervisor = one_for_all)]
async fn b(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(supervisor = forfeit_one_for_one)]
async fn c(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(supervisor = forfeit_one_for_all)]
async fn d(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(supervisor = "crashing")]
async fn e(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
