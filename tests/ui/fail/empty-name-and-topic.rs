use faust::{agent, Stream};

#[agent(name = "", topic = "")]
async fn empty(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(name = "@other")]
async fn at_sign(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
