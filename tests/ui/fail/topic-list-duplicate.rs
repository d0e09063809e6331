use faust::{agent, Stream};

#[agent(topic = ["orders", "refunds", "orders"])]
async fn orders(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
