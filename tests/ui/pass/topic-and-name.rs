use faust::{agent, Stream};

#[agent(topic = "orders", name = "order-log")]
async fn log(_orders: Stream<String>) -> faust::Result<()> {
    Ok(())
}

fn main() {
    let d = faust::registered_agents().unwrap();
    assert_eq!(d[0].name, "order-log");
    assert_eq!((d[0].build)().name(), "order-log");
}
