use faust::{agent, Stream};

#[agent(topic)]
async fn no_value(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(supervisor =, on_error =)]
async fn empty_values(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
