//! Producing, assigned consumers, topics and metadata on librdkafka's mock
//! cluster.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use faust_core::transport::{ConsumerEvent, TopicSpec, Transport};
use faust_core::{Error, ProducerRecord, Record};

/// Read `n` records from an assigned consumer (after its `Assigned`).
async fn read(c: &mut Box<dyn faust_core::transport::Consumer>, n: usize) -> Vec<Record> {
    let mut out = Vec::new();
    within(30, "records", async {
        while out.len() < n {
            match next(c).await {
                ConsumerEvent::Records(r) => out.extend(r),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_keeps_key_value_headers_timestamp_and_partition() {
    let mock = mock();
    let topic = topic(&mock, 3);
    let t = transport(&mock);
    let sent = ProducerRecord {
        topic: topic.as_str().into(),
        partition: Some(2),
        key: Some(Bytes::from_static(b"k1")),
        value: Some(Bytes::from_static(b"v1")),
        headers: vec![
            ("a".into(), Bytes::from_static(b"1")),
            ("b".into(), Bytes::from_static(b"")),
            ("a".into(), Bytes::from_static(b"2")),
        ],
        timestamp: Some(1_600_000_000_123),
    };
    let md = within(30, "send", t.send(sent.clone())).await.unwrap();
    assert_eq!(
        (&*md.topic, md.partition, md.offset),
        (topic.as_str(), 2, 0)
    );
    // The mock cluster answers every produce with a log-append time of
    // 1234; a real broker with CreateTime topics returns the record's own.
    assert!(
        md.timestamp == 1_600_000_000_123 || md.timestamp == 1234,
        "{md:?}"
    );
    // A tombstone without key, to partition 2 too.
    let md2 = t
        .send(ProducerRecord {
            topic: topic.as_str().into(),
            partition: Some(2),
            ..ProducerRecord::default()
        })
        .await
        .unwrap();
    assert_eq!(md2.offset, 1);

    let mut c = t.assign(vec![tp(&topic, 2)]).await.unwrap();
    assert_eq!(
        next(&mut c).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 2)])
    );
    let got = read(&mut c, 2).await;
    let r = &got[0];
    assert_eq!((&*r.topic, r.partition, r.offset), (topic.as_str(), 2, 0));
    assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(r.value.as_deref(), Some(&b"v1"[..]));
    assert_eq!(r.headers, sent.headers);
    assert_eq!(r.timestamp, 1_600_000_000_123);
    let tomb = &got[1];
    assert_eq!(
        (tomb.offset, tomb.key.clone(), tomb.value.clone()),
        (1, None, None)
    );
    assert!(tomb.headers.is_empty());
    assert!(
        tomb.timestamp > 1_600_000_000_123,
        "default timestamp is now"
    );
    within(10, "close", c.close(Duration::from_secs(5)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_use_the_java_partitioner() {
    let mock = mock();
    let topic = topic(&mock, 8);
    let t = transport(&mock);
    let mut seen = std::collections::HashMap::new();
    for round in 0..3 {
        for k in 0..10 {
            let key = format!("key-{k}");
            let md = t
                .send(ProducerRecord {
                    topic: topic.as_str().into(),
                    key: Some(Bytes::from(key.clone())),
                    value: Some(Bytes::from(format!("{round}"))),
                    ..ProducerRecord::default()
                })
                .await
                .unwrap();
            let p = *seen.entry(key.clone()).or_insert(md.partition);
            assert_eq!(p, md.partition, "{key} moved");
            // The Java client's partitioner, as Python Faust and the
            // in-memory broker.
            assert_eq!(
                md.partition,
                faust_core::transport::memory::partition_for_key(key.as_bytes(), 8)
            );
        }
    }
    let distinct: std::collections::HashSet<_> = seen.values().collect();
    assert!(distinct.len() > 1, "keys spread over partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_reads_from_the_beginning_after_reporting_assigned() {
    let mock = mock();
    let topic = topic(&mock, 2);
    let t = transport(&mock);
    for i in 0..5 {
        t.send(ProducerRecord {
            partition: Some(1),
            ..ProducerRecord::new(topic.clone(), format!("early-{i}"))
        })
        .await
        .unwrap();
    }
    let mut c = t.assign(vec![tp(&topic, 1), tp(&topic, 1)]).await.unwrap();
    assert_eq!(
        next(&mut c).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 1)])
    );
    t.send(ProducerRecord {
        partition: Some(1),
        ..ProducerRecord::new(topic.clone(), "late")
    })
    .await
    .unwrap();
    // Nothing of partition 0 is read.
    t.send(ProducerRecord {
        partition: Some(0),
        ..ProducerRecord::new(topic.clone(), "other")
    })
    .await
    .unwrap();
    let got = read(&mut c, 6).await;
    let values: Vec<_> = got.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values[0], "early-0");
    assert_eq!(values[5], "late");
    assert!(got.iter().all(|r| r.partition == 1));
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    assert!(next_within(&mut c, Duration::from_millis(300))
        .await
        .is_none());
    // No group: commits are accepted and ignored.
    c.commit(&[(tp(&topic, 1), 3)]).await.unwrap();
    assert_eq!(c.committed(&tp(&topic, 1)).await.unwrap(), None);
    c.close(Duration::from_secs(5)).await.unwrap();
}

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
async fn create_topic_on_the_mock_succeeds_for_existing_topics_only() {
    // The mock cluster has no CreateTopics API (the real-broker suite
    // covers creation itself): an existing topic is success, a missing
    // one is an error that says what to do.
    let mock = mock();
    let existing = topic(&mock, 3);
    let t = faust_kafka::KafkaTransport::from_url(&format!(
        "{}&faust.operation.timeout.ms=2000",
        url(&mock)
    ))
    .unwrap();
    within(
        20,
        "create existing",
        t.create_topic(&TopicSpec::new(existing.clone(), 3)),
    )
    .await
    .unwrap();
    assert_eq!(t.partition_count(&existing).await.unwrap(), Some(3));
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
    // Looking a topic up never creates it.
    assert_eq!(t.partition_count(&missing).await.unwrap(), None);
    assert_eq!(t.partition_count(&missing).await.unwrap(), None);
    let err = t.create_topic(&TopicSpec::new("x", 0)).await.unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_bad_partition() {
    let mock = mock();
    let topic = topic(&mock, 2);
    let t = transport(&mock);
    t.send(ProducerRecord::new(topic.clone(), "x"))
        .await
        .unwrap();
    t.flush(Duration::from_secs(5)).await.unwrap();
    let err = within(
        40,
        "send to a missing partition",
        t.send(ProducerRecord {
            partition: Some(9),
            ..ProducerRecord::new(topic.clone(), "x")
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Broker(_)), "{err}");
    assert!(err.to_string().contains("partition 9"), "{err}");
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
