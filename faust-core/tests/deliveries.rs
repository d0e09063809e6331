//! An agent whose outputs are slow to be delivered keeps a bounded number
//! of events waiting for them, then waits itself; nothing is lost.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use faust_core::transport::memory::MemoryBroker;
use faust_core::transport::{Consumer, Enqueued, SubscribeOptions, TopicSpec, Transport};
use faust_core::{AgentSpec, App, ProducerRecord, RecordMetadata, Result, Sink};
use tokio::sync::watch;

/// Records to this topic are delivered only once the gate opens.
const GATED: &str = "gated-out";

fn gate() -> &'static watch::Sender<bool> {
    static GATE: OnceLock<watch::Sender<bool>> = OnceLock::new();
    GATE.get_or_init(|| watch::channel(false).0)
}

/// The embedded broker, with deliveries to [`GATED`] held at the gate.
#[derive(Debug)]
struct Gated(MemoryBroker);

#[async_trait]
impl Transport for Gated {
    fn url(&self) -> &str {
        "gated://"
    }
    async fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        self.0.create_topic(spec).await
    }
    async fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        self.0.partition_count(topic).await
    }
    async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.0.send(record).await
    }
    fn try_enqueue(&self, record: ProducerRecord) -> Result<Enqueued> {
        let gated = &*record.topic == GATED;
        match self.0.try_enqueue(record)? {
            Enqueued::Delivered(md) if gated => {
                let mut open = gate().subscribe();
                Ok(Enqueued::Queued(Box::pin(async move {
                    open.wait_for(|o| *o).await.expect("gate kept");
                    Ok(md)
                })))
            }
            other => Ok(other),
        }
    }
    async fn flush(&self, timeout: Duration) -> Result<()> {
        self.0.flush(timeout).await
    }
    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Consumer>> {
        self.0.subscribe(options).await
    }
    async fn assign(&self, tps: Vec<faust_core::TopicPartition>) -> Result<Box<dyn Consumer>> {
        self.0.assign(tps).await
    }
}

fn gated(_url: &str) -> Result<Arc<dyn Transport>> {
    Ok(Arc::new(Gated(MemoryBroker::new())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_waits_once_too_many_events_wait_for_their_outputs() {
    const MAX: u64 = faust_core::agent::MAX_UNACKED as u64;
    const WAIT: Duration = Duration::from_secs(20);
    let app = App::builder("deliveries")
        .broker("gated://")
        .scheme("gated", gated)
        .build()
        .unwrap();
    // Events the handler has seen.
    let (seen_tx, mut seen) = watch::channel(0u64);
    let seen_tx = Arc::new(seen_tx);
    let agent = app
        .add_agent(
            AgentSpec::handler("double", move |x: u64| {
                seen_tx.send_modify(|n| *n += 1);
                async move { Ok::<_, faust_core::Error>(x * 2) }
            })
            .sink(Sink::<u64>::topic(GATED)),
        )
        .unwrap();
    app.start().await.unwrap();
    let n = MAX + 500;
    for i in 0..n {
        agent.send(&i).await.unwrap();
    }
    tokio::time::timeout(WAIT, seen.wait_for(|s| *s >= MAX))
        .await
        .expect("the actor takes events up to the bound")
        .unwrap();
    // No delivery can complete: the actor stays at the bound (checked over
    // a window, since what is asserted is that nothing happens).
    let past = tokio::time::timeout(Duration::from_millis(300), seen.wait_for(|s| *s > MAX))
        .await
        .is_ok();
    assert!(!past, "the actor took events past the bound");
    assert_eq!(agent.stats().events_in(), MAX);
    gate().send_replace(true);
    tokio::time::timeout(WAIT, seen.wait_for(|s| *s >= n))
        .await
        .expect("every event is processed once deliveries resume")
        .unwrap();
    assert_eq!(agent.stats().events_in(), n);
    app.stop().await.unwrap();
}
