//! Producing, assigned consumers, topics and metadata on librdkafka's mock
//! cluster: what is particular to Kafka (what both transports share is the
//! conformance suite, tests/conformance.rs).

mod common;

use std::time::Duration;

use common::*;
use faust_core::transport::{TopicSpec, Transport};
use faust_core::{Error, ProducerRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigning_a_missing_partition_fails_clearly() {
    let mock = mock();
    let topic = topic(&mock, 1);
    let t = std::sync::Arc::new(
        faust_kafka::KafkaTransport::from_url(&format!(
            "{}&faust.operation.timeout.ms=1000",
            url(&mock)
        ))
        .unwrap(),
    );
    let mut c = t.assign(vec![tp(&topic, 5)]).await.unwrap();
    let err = within(10, "assign failure", c.poll()).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_on_the_mock_fails_for_missing_topics_saying_what_to_do() {
    // The mock cluster has no CreateTopics API (the real-broker suite
    // covers creation itself; the conformance suite what holds without
    // it): a missing topic is an error that says what to do.
    let mock = mock();
    let t = faust_kafka::KafkaTransport::from_url(&format!(
        "{}&faust.operation.timeout.ms=2000",
        url(&mock)
    ))
    .unwrap();
    let missing = unique("missing");
    let err = within(
        20,
        "create missing",
        t.create_topic(&TopicSpec::new(missing.clone(), 2)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Broker(_)), "{err}");
    assert!(err.to_string().contains(&missing), "{err}");
    assert!(err.to_string().contains("beforehand"), "{err}");
    assert_eq!(t.partition_count(&missing).await.unwrap(), None);
}

#[test]
fn factory_builds_from_urls_and_rejects_bad_ones() {
    let t = faust_kafka::factory("kafka://127.0.0.1:9092,127.0.0.1:9093?linger.ms=2").unwrap();
    assert_eq!(t.url(), "kafka://127.0.0.1:9092,127.0.0.1:9093?linger.ms=2");
    assert!(format!("{t:?}").contains("127.0.0.1:9093"));
    let err =
        faust_kafka::factory("kafka://127.0.0.1:9092?sasl.password=secret&no.such=1").unwrap_err();
    assert!(matches!(err, Error::BrokerUrl { .. }), "{err}");
    let b = faust_kafka::KafkaTransport::builder("127.0.0.1:9092")
        .set("producer.linger.ms", "0")
        .operation_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(b.url(), "kafka://127.0.0.1:9092");
    assert_eq!(b.bootstrap_servers(), "127.0.0.1:9092");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_wait_for_room_in_a_full_producer_queue() {
    let mock = mock();
    let topic = topic(&mock, 2);
    // Room for one record: every other send finds the queue full and waits
    // for a delivery report.
    let t = std::sync::Arc::new(
        faust_kafka::KafkaTransport::from_url(&format!(
            "{}&producer.queue.buffering.max.messages=1&producer.linger.ms=5",
            url(&mock)
        ))
        .unwrap(),
    );
    let sends = (0..40).map(|i| {
        let (t, topic) = (t.clone(), topic.clone());
        tokio::spawn(async move { t.send(ProducerRecord::new(topic, format!("v{i}"))).await })
    });
    let sends: Vec<_> = sends.collect();
    let mut offsets = Vec::new();
    within(30, "40 sends", async {
        for s in sends {
            let md = s.await.unwrap().unwrap();
            offsets.push((md.partition, md.offset));
        }
    })
    .await;
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), 40, "every record delivered once");
}
