use faust::{agent, codec, Stream, Topic};

fn orders() -> Topic {
    Topic::new("orders").partitions(4).value_codec(codec::Bincode)
}

#[agent(topic = orders(), concurrency = 2)]
async fn log(_orders: Stream<u64>) -> faust::Result<()> {
    Ok(())
}

#[agent(topic = Topic::new("changes").compacted())]
async fn changes(_changes: Stream<String>) -> faust::Result<()> {
    Ok(())
}

fn main() {
    let d = faust::registered_agents().unwrap();
    let log = d.iter().find(|d| d.name == "log").unwrap();
    assert_eq!((log.build)().name(), "log");
    assert_eq!(d.len(), 2);
}
