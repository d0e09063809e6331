//! Without a reachable broker every operation ends with a clear error
//! within its deadline, and nothing hangs: closing, dropping.

mod common;

use std::time::{Duration, Instant};

use common::*;
use faust_core::transport::{SubscribeOptions, TopicSpec, Transport};
use faust_core::{Error, ProducerRecord};
use faust_kafka::KafkaTransport;

/// Nothing listens on port 1.
fn unreachable() -> KafkaTransport {
    init_tracing();
    KafkaTransport::from_url(
        "kafka://127.0.0.1:1?faust.operation.timeout.ms=1500&producer.message.timeout.ms=1500&faust.delivery.timeout.ms=3000&socket.connection.setup.timeout.ms=1000",
    )
    .unwrap()
}

fn is_broker_or_timeout(err: &Error) -> bool {
    matches!(err, Error::Broker(_) | Error::Timeout { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_and_metadata_fail_within_the_deadline() {
    let t = unreachable();
    let started = Instant::now();
    let err = within(10, "create_topic", t.create_topic(&TopicSpec::new("t", 1)))
        .await
        .unwrap_err();
    eprintln!("create_topic failed after {:?}: {err}", started.elapsed());
    assert!(is_broker_or_timeout(&err), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let started = Instant::now();
    let err = within(10, "partition_count", t.partition_count("t"))
        .await
        .unwrap_err();
    assert!(is_broker_or_timeout(&err), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_fails_at_the_delivery_timeout() {
    let t = unreachable();
    let started = Instant::now();
    let err = within(10, "send", t.send(ProducerRecord::new("t", "x")))
        .await
        .unwrap_err();
    let spent = started.elapsed();
    eprintln!("send failed after {spent:?}: {err}");
    assert!(matches!(err, Error::Broker(_)), "{err}");
    assert!(err.to_string().contains("`t`"), "{err}");
    // Given up on by librdkafka after 1.5 s, produced again, and failed
    // at the 3 s delivery deadline.
    assert!(
        err.to_string()
            .contains("faust.delivery.timeout.ms (3000 ms)"),
        "{err}"
    );
    assert!(spent >= Duration::from_millis(2900), "{spent:?}");
    assert!(spent < Duration::from_secs(5), "{spent:?}");
    let started = Instant::now();
    let _ = within(5, "flush", t.flush(Duration::from_secs(1))).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let started = Instant::now();
    drop(t);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "drop does not block"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_close_within_their_deadline() {
    let t = unreachable();
    let mut c = t
        .subscribe(SubscribeOptions {
            group: unique("g"),
            topics: vec!["t".into()],
            patterns: Vec::new(),
            offset_reset: Default::default(),
        })
        .await
        .unwrap();
    // No assignment can come; polling is only bounded by the caller.
    match tokio::time::timeout(Duration::from_millis(1500), c.poll()).await {
        Err(_) => {}
        Ok(other) => panic!("unexpected {other:?}"),
    }
    let err = within(10, "commit", c.commit(&[(tp("t", 0), 1)]))
        .await
        .unwrap_err();
    assert!(is_broker_or_timeout(&err), "{err}");
    let started = Instant::now();
    let closed = within(10, "close", c.close(Duration::from_secs(2))).await;
    eprintln!("close after {:?}: {closed:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_millis(2500));

    // An assigned consumer reports that the partition cannot be read.
    let mut a = t.assign(vec![tp("t", 0)]).await.unwrap();
    let started = Instant::now();
    let err = within(10, "assign", a.poll()).await.unwrap_err();
    eprintln!("assign failed after {:?}: {err}", started.elapsed());
    assert!(err.to_string().contains("t[0]"), "{err}");
    let started = Instant::now();
    drop(a);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "drop does not block"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_queue_that_stays_full_fails_the_send_at_the_deadline() {
    init_tracing();
    // One record fills the queue and is never delivered before its timeout.
    let t = KafkaTransport::from_url(
        "kafka://127.0.0.1:1?faust.operation.timeout.ms=1000&producer.message.timeout.ms=20000&producer.queue.buffering.max.messages=1",
    )
    .unwrap();
    let first = t.enqueue(ProducerRecord::new("t", "first")).await.unwrap();
    let started = Instant::now();
    let err = within(10, "enqueue", t.enqueue(ProducerRecord::new("t", "second")))
        .await
        .err()
        .expect("the queue is full");
    eprintln!("enqueue failed after {:?}: {err}", started.elapsed());
    assert!(err.to_string().contains("stayed full"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_host_is_named_in_every_error() {
    init_tracing();
    let t = KafkaTransport::from_url(
        "kafka://no-such-host.invalid:9092?faust.operation.timeout.ms=1500&producer.message.timeout.ms=1500&faust.delivery.timeout.ms=1500",
    )
    .unwrap();
    let named = |err: &Error| {
        let text = err.to_string();
        assert!(
            text.contains("Failed to resolve 'no-such-host.invalid:9092'"),
            "{text}"
        );
    };
    let err = within(10, "create_topic", t.create_topic(&TopicSpec::new("t", 1)))
        .await
        .unwrap_err();
    named(&err);
    let err = within(10, "partition_count", t.partition_count("t"))
        .await
        .unwrap_err();
    named(&err);
    let err = within(10, "send", t.send(ProducerRecord::new("t", "x")))
        .await
        .unwrap_err();
    named(&err);
    let mut a = t.assign(vec![tp("t", 0)]).await.unwrap();
    let err = within(10, "assign", a.poll()).await.unwrap_err();
    named(&err);
}
