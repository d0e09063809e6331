//! Helpers of the Kafka tests: a mock cluster per test, unique names,
//! bounded waits.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use faust_core::transport::{Consumer, ConsumerEvent, SubscribeOptions, Transport};
use faust_core::TopicPartition;
use faust_kafka::KafkaTransport;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// Every wait of these tests is bounded by this, unless said otherwise.
pub const WAIT: Duration = Duration::from_secs(30);

pub type Mock = MockCluster<'static, DefaultProducerContext>;

/// Log to stderr when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A one-broker mock cluster.
pub fn mock() -> Mock {
    init_tracing();
    MockCluster::new(1).expect("mock cluster")
}

/// A unique name with this prefix.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Create a topic on the mock cluster.
pub fn topic(mock: &Mock, partitions: i32) -> String {
    let name = unique("t");
    mock.create_topic(&name, partitions, 1).expect("mock topic");
    name
}

/// The URL of the mock cluster with settings for fast rebalances.
pub fn url(mock: &Mock) -> String {
    format!(
        "kafka://{}?consumer.session.timeout.ms=6000&consumer.heartbeat.interval.ms=500&faust.operation.timeout.ms=10000",
        mock.bootstrap_servers()
    )
}

/// A transport on the mock cluster.
pub fn transport(mock: &Mock) -> Arc<KafkaTransport> {
    Arc::new(KafkaTransport::from_url(&url(mock)).expect("transport"))
}

pub fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// Join `group` on `topics`.
pub async fn subscribe(t: &KafkaTransport, group: &str, topics: &[&str]) -> Box<dyn Consumer> {
    t.subscribe(SubscribeOptions {
        group: group.to_string(),
        topics: topics.iter().map(|s| s.to_string()).collect(),
        patterns: Vec::new(),
        offset_reset: Default::default(),
    })
    .await
    .expect("subscribe")
}

/// The next event, failing the test after `WAIT`.
pub async fn next(c: &mut Box<dyn Consumer>) -> ConsumerEvent {
    tokio::time::timeout(WAIT, c.poll())
        .await
        .expect("no consumer event in time")
        .expect("poll failed")
}

/// The next event within `d`, if any.
pub async fn next_within(c: &mut Box<dyn Consumer>, d: Duration) -> Option<ConsumerEvent> {
    match tokio::time::timeout(d, c.poll()).await {
        Ok(r) => Some(r.expect("poll failed")),
        Err(_) => None,
    }
}

/// Run `f` and fail the test if it takes longer than `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}
