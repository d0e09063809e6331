//! The checks of the conformance suite.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::record::{now_millis, Headers, ProducerRecord, Record};
use crate::transport::partitioner::partition_for_key;
use crate::transport::{CleanupPolicy, ConsumerEvent, Enqueued, OffsetReset, TopicSpec};

use super::member::settle;
use super::{
    assert_each_record_once, drive_until, event_within, join, next_event, send, sizes, tp, unique,
    within, Check, Harness, Member,
};

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check of the suite, in the order [`run_all`](super::run_all) runs them.
        pub const CHECKS: &[Check] = &[
            $(Check { name: stringify!($name), run: |h| Box::pin($name(h)) },)*
        ];
    };
}

crate::for_each_conformance_check!(checks);

/// A member of a check, with the harness' tolerance of refused commits.
fn member(h: &dyn Harness, name: &str, c: Box<dyn crate::transport::Consumer>) -> Member {
    let mut m = Member::new(name, c);
    m.tolerate_refused_commits = h.refuses_commits_during_rebalance();
    m
}

/// A member of `group` on `topic` (from the oldest record), tolerant of
/// refused commits as the harness says.
async fn joined(h: &dyn Harness, name: &str, group: &str, topic: &str) -> Member {
    member(
        h,
        name,
        join(&*h.transport(), group, topic, OffsetReset::Earliest).await,
    )
}

/// Members `m1` and `m2` of `group`, joined together on the 8 partitions of
/// `topic` and driven until they own 4 each.
async fn two_members_splitting_8(h: &dyn Harness, group: &str, topic: &str) -> (Member, Member) {
    let mut m1 = joined(h, "m1", group, topic).await;
    let mut m2 = joined(h, "m2", group, topic).await;
    drive_until(&mut [&mut m1, &mut m2], h.deadline(), "a 4/4 split", |ms| {
        sizes(ms) == [4, 4]
    })
    .await;
    (m1, m2)
}

/// Read records until `n` arrived, failing on anything but records.
async fn read(
    h: &dyn Harness,
    c: &mut Box<dyn crate::transport::Consumer>,
    n: usize,
) -> Vec<Record> {
    let mut out = Vec::new();
    within(h.deadline(), &format!("{n} records"), async {
        while out.len() < n {
            match next_event(c, h.deadline()).await {
                ConsumerEvent::Records(rs) => {
                    assert!(!rs.is_empty(), "an empty Records event");
                    out.extend(rs)
                }
                other => panic!("expected records, got {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(out.len(), n, "more records than sent");
    out
}

fn all_partitions(topic: &str, n: i32) -> BTreeSet<crate::record::TopicPartition> {
    (0..n).map(|p| tp(topic, p)).collect()
}

/// `create_topic` of an existing topic succeeds and changes nothing;
/// `partition_count` of a missing topic is `None` and does not create it;
/// [`TopicSpec::validate`] errors (no partitions, an empty name) are
/// returned before anything is created. Where the broker creates topics
/// ([`Harness::creates_topics`]), a created topic has the partitions asked
/// for at once.
pub async fn topics_are_created_idempotently_and_validated(h: &dyn Harness) {
    let t = h.transport();
    let d = h.deadline();
    let missing = unique("missing");
    assert_eq!(t.partition_count(&missing).await.unwrap(), None);
    assert_eq!(
        t.partition_count(&missing).await.unwrap(),
        None,
        "looking a topic up created it"
    );
    let name = if h.creates_topics() {
        let name = unique("created");
        within(
            d,
            "create",
            t.create_topic(&TopicSpec::new(name.clone(), 5)),
        )
        .await
        .unwrap_or_else(|e| panic!("create_topic failed: {e}"));
        name
    } else {
        h.topic(5).await
    };
    assert_eq!(t.partition_count(&name).await.unwrap(), Some(5));
    within(
        d,
        "create again",
        t.create_topic(&TopicSpec::new(name.clone(), 2)),
    )
    .await
    .unwrap_or_else(|e| panic!("create_topic of an existing topic failed: {e}"));
    assert_eq!(
        t.partition_count(&name).await.unwrap(),
        Some(5),
        "creating an existing topic changed it"
    );
    let zero = unique("zero");
    let err = t
        .create_topic(&TopicSpec::new(zero.clone(), 0))
        .await
        .expect_err("a topic without partitions was accepted");
    assert!(matches!(err, Error::Broker(_)), "{err:?}");
    assert!(err.to_string().contains("at least 1"), "{err}");
    assert_eq!(t.partition_count(&zero).await.unwrap(), None);
    let err = t
        .create_topic(&TopicSpec::new("", 1))
        .await
        .expect_err("an empty topic name was accepted");
    assert!(matches!(err, Error::Broker(_)), "{err:?}");
}

/// `describe_topic` of a missing topic is `None` and does not create it.
/// Where the broker creates topics ([`Harness::creates_topics`]), a topic created compacted with a retention and a
/// replication of 1 is described with exactly these settings, and
/// creating it again with other settings changes none of them.
pub async fn topics_are_described_with_their_settings(h: &dyn Harness) {
    let t = h.transport();
    let d = h.deadline();
    let missing = unique("missing");
    let found = within(d, "describe a missing topic", t.describe_topic(&missing))
        .await
        .unwrap_or_else(|e| panic!("describe_topic of a missing topic failed: {e}"));
    assert_eq!(found, None, "a missing topic was described");
    assert_eq!(
        t.partition_count(&missing).await.unwrap(),
        None,
        "describing a topic created it"
    );
    if !h.creates_topics() {
        return;
    }
    let name = unique("described");
    let spec = TopicSpec {
        retention: Some(Duration::from_secs(3600)),
        cleanup_policy: CleanupPolicy::Compact,
        configs: vec![("segment.ms".into(), "600000".into())],
        ..TopicSpec::new(name.clone(), 3)
    };
    within(d, "create", t.create_topic(&spec))
        .await
        .unwrap_or_else(|e| panic!("create_topic failed: {e}"));
    let wanted = TopicSpec {
        configs: Vec::new(),
        ..spec
    };
    let described = within(d, "describe", t.describe_topic(&name))
        .await
        .unwrap_or_else(|e| panic!("describe_topic failed: {e}"));
    assert_eq!(described.as_ref(), Some(&wanted), "described settings");
    within(
        d,
        "create again",
        t.create_topic(&TopicSpec::new(name.clone(), 1)),
    )
    .await
    .unwrap_or_else(|e| panic!("create_topic of an existing topic failed: {e}"));
    let again = within(d, "describe again", t.describe_topic(&name))
        .await
        .unwrap_or_else(|e| panic!("describe_topic failed: {e}"));
    assert_eq!(
        again.as_ref(),
        Some(&wanted),
        "creating an existing topic changed its settings"
    );
}

/// Where the broker has the admin API ([`Harness::creates_topics`]):
/// deleting a missing topic is not an error, and a deleted topic is gone
/// (the broker may take a moment to say so).
pub async fn topics_are_deleted(h: &dyn Harness) {
    if !h.creates_topics() {
        return;
    }
    let t = h.transport();
    let d = h.deadline();
    within(
        d,
        "delete a missing topic",
        t.delete_topic(&unique("missing")),
    )
    .await
    .unwrap_or_else(|e| panic!("delete_topic of a missing topic failed: {e}"));
    let name = h.topic(1).await;
    within(d, "send", t.send(ProducerRecord::new(name.clone(), "v")))
        .await
        .unwrap_or_else(|e| panic!("send failed: {e}"));
    within(d, "delete", t.delete_topic(&name))
        .await
        .unwrap_or_else(|e| panic!("delete_topic failed: {e}"));
    // Deletion is asynchronous on Kafka: look until the topic is gone.
    within(d, "the deleted topic to go", async {
        while t.partition_count(&name).await.ok().flatten().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// Records sent to a partition get consecutive offsets from 0 in the
/// metadata of their sends; an assigned consumer first reports `Assigned`,
/// then hands them out in that order with their topic, partition and value;
/// then nothing until a record sent while it waits wakes it.
pub async fn produce_then_consume_in_order_with_offsets(h: &dyn Harness) {
    let t = h.transport();
    let topic = h.topic(1).await;
    for i in 0..10 {
        let md = send(&*t, &topic, None, None, &format!("v{i}")).await;
        assert_eq!(
            (&*md.topic, md.partition, md.offset),
            (topic.as_str(), 0, i),
            "metadata of send {i}"
        );
    }
    let mut c = t.assign(vec![tp(&topic, 0)]).await.unwrap();
    assert_eq!(
        next_event(&mut c, h.deadline()).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0)])
    );
    let rs = read(h, &mut c, 10).await;
    let got: Vec<(i64, Bytes)> = rs
        .iter()
        .map(|r| (r.offset, r.value.clone().unwrap()))
        .collect();
    let want: Vec<(i64, Bytes)> = (0..10).map(|i| (i, Bytes::from(format!("v{i}")))).collect();
    assert_eq!(got, want);
    assert!(rs.iter().all(|r| *r.topic == *topic && r.partition == 0));
    // Nothing more; a record sent while the consumer waits wakes it.
    let waiting = c.poll();
    tokio::pin!(waiting);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut waiting)
            .await
            .is_err(),
        "an event without a record"
    );
    let md = send(&*t, &topic, None, None, "late").await;
    assert_eq!(md.offset, 10);
    let ev = within(h.deadline(), "the late record", &mut waiting)
        .await
        .unwrap();
    let ConsumerEvent::Records(rs) = ev else {
        panic!("expected records, got {ev:?}")
    };
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].offset, 10);
    assert_eq!(rs[0].value.as_deref(), Some(&b"late"[..]));
}

/// Records sent to several partitions, interleaved, are handed out with
/// each partition's records in send order at consecutive offsets.
pub async fn each_partition_keeps_its_order(h: &dyn Harness) {
    let t = h.transport();
    let topic = h.topic(3).await;
    for i in 0..60 {
        let p = i % 3;
        let md = send(&*t, &topic, Some(p), None, &format!("{p}-{}", i / 3)).await;
        assert_eq!((md.partition, md.offset), (p, i64::from(i / 3)));
    }
    let mut c = t
        .assign((0..3).map(|p| tp(&topic, p)).collect())
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut c, h.deadline()).await,
        ConsumerEvent::Assigned((0..3).map(|p| tp(&topic, p)).collect())
    );
    let rs = read(h, &mut c, 60).await;
    let mut next = [0i64; 3];
    for r in &rs {
        let p = r.partition as usize;
        assert_eq!(r.offset, next[p], "offsets of partition {p}");
        assert_eq!(
            r.value.as_deref(),
            Some(format!("{p}-{}", next[p]).as_bytes())
        );
        next[p] += 1;
    }
    assert_eq!(next, [20, 20, 20]);
}

/// A keyed record goes to the partition of Kafka's default partitioner
/// (murmur2 of the key, as the Java client and Python Faust), every time.
pub async fn keyed_records_use_the_kafka_partitioner(h: &dyn Harness) {
    let t = h.transport();
    let topic = h.topic(8).await;
    assert_eq!(send(&*t, &topic, None, Some("21"), "a").await.partition, 4);
    let mut partitions = BTreeSet::new();
    for key in ["foobar", "abc", "a-little-bit-long-string", "user-17", ""]
        .into_iter()
        .map(String::from)
        .chain((0..10).map(|k| format!("key-{k}")))
    {
        let p = send(&*t, &topic, None, Some(&key), "a").await.partition;
        assert_eq!(
            p,
            partition_for_key(key.as_bytes(), 8),
            "partition of {key:?}"
        );
        partitions.insert(p);
        for _ in 0..3 {
            assert_eq!(
                send(&*t, &topic, None, Some(&key), "b").await.partition,
                p,
                "key {key:?} moved"
            );
        }
    }
    assert!(partitions.len() > 1, "keys spread over partitions");
}

/// Keys, values, headers (order, repeated names, empty values) and
/// explicit timestamps come back as sent, with their topic, partition and
/// offset; a missing value stays missing (a tombstone, with or without
/// key); a record without timestamp is stamped with the time of its send.
///
/// The send's [`RecordMetadata::timestamp`](crate::record::RecordMetadata)
/// is the record's own, except where [`Harness::reports_log_append_time`].
pub async fn headers_keys_and_timestamps_round_trip(h: &dyn Harness) {
    let t = h.transport();
    let topic = h.topic(2).await;
    let headers: Headers = vec![
        ("b".into(), Bytes::from_static(b"1")),
        ("a".into(), Bytes::from_static(b"2")),
        ("b".into(), Bytes::from_static(b"3")),
        ("empty".into(), Bytes::new()),
    ];
    let sent = ProducerRecord {
        topic: topic.as_str().into(),
        partition: Some(1),
        key: Some(Bytes::from_static(b"k")),
        value: None,
        headers: headers.clone(),
        timestamp: Some(1_600_000_000_123),
    };
    let md = within(h.deadline(), "send", t.send(sent)).await.unwrap();
    assert_eq!((md.partition, md.offset), (1, 0));
    if !h.reports_log_append_time() {
        assert_eq!(md.timestamp, 1_600_000_000_123);
    }
    let before = now_millis();
    let md2 = send(&*t, &topic, Some(1), None, "now").await;
    let md3 = within(
        h.deadline(),
        "send a tombstone",
        t.send(ProducerRecord {
            topic: topic.as_str().into(),
            partition: Some(1),
            ..ProducerRecord::default()
        }),
    )
    .await
    .unwrap();
    let after = now_millis();
    assert_eq!((md2.offset, md3.offset), (1, 2));
    let both = ProducerRecord {
        topic: topic.as_str().into(),
        partition: Some(1),
        key: Some(Bytes::from_static(b"k1")),
        value: Some(Bytes::from_static(b"v1")),
        headers: vec![("a".into(), Bytes::from_static(b"1"))],
        timestamp: None,
    };
    let md4 = within(h.deadline(), "send", t.send(both)).await.unwrap();
    assert_eq!(md4.offset, 3);
    let mut c = t.assign(vec![tp(&topic, 1)]).await.unwrap();
    assert_eq!(
        next_event(&mut c, h.deadline()).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 1)])
    );
    let rs = read(h, &mut c, 4).await;
    assert_eq!(
        rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(rs.iter().all(|r| *r.topic == *topic && r.partition == 1));
    assert_eq!(rs[0].headers, headers);
    assert_eq!(rs[0].timestamp, 1_600_000_000_123);
    assert_eq!(rs[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(rs[0].value, None);
    // Stamped from a clock of the transport: within a few ticks of ours.
    assert!(
        rs[1].timestamp >= before - 50 && rs[1].timestamp <= after + 50,
        "{before} <= {} <= {after}",
        rs[1].timestamp
    );
    if !h.reports_log_append_time() {
        assert_eq!(rs[1].timestamp, md2.timestamp);
    }
    assert_eq!(rs[1].key, None);
    assert_eq!(rs[1].value.as_deref(), Some(&b"now"[..]));
    assert!(rs[1].headers.is_empty());
    assert_eq!((rs[2].key.clone(), rs[2].value.clone()), (None, None));
    assert!(rs[2].headers.is_empty());
    assert_eq!(rs[3].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(rs[3].value.as_deref(), Some(&b"v1"[..]));
    assert_eq!(rs[3].headers, vec![("a".into(), Bytes::from_static(b"1"))]);
    assert!(rs[3].timestamp >= before - 50, "{}", rs[3].timestamp);
}

/// Sending to a partition the topic does not have is an
/// [`Error::Broker`] naming the partition (with `send`, and with
/// `try_enqueue`/`enqueue`, whichever reports it).
pub async fn sending_to_a_missing_partition_fails(h: &dyn Harness) {
    let t = h.transport();
    let topic = h.topic(2).await;
    let mut r = ProducerRecord::new(topic.as_str(), "x");
    r.partition = Some(9);
    let err = within(
        h.deadline(),
        "a send to a missing partition",
        t.send(r.clone()),
    )
    .await
    .expect_err("a send to a missing partition succeeded");
    assert!(matches!(err, Error::Broker(_)), "{err:?}");
    assert!(err.to_string().contains("partition 9"), "{err}");
    let delivered = match t.try_enqueue(r) {
        Err(e) => Err(e),
        Ok(Enqueued::Delivered(md)) => Ok(md),
        Ok(Enqueued::Queued(d)) => within(h.deadline(), "delivery", d).await,
        Ok(Enqueued::WouldWait(r)) => match t.enqueue(r).await {
            Ok(d) => within(h.deadline(), "delivery", d).await,
            Err(e) => Err(e),
        },
        Ok(Enqueued::Reported) => panic!("try_enqueue said Reported: it was given no group"),
    };
    let err = delivered.expect_err("an enqueued record to a missing partition was delivered");
    assert!(matches!(err, Error::Broker(_)), "{err:?}");
}

/// Records handed to `try_enqueue` or `enqueue` in order are delivered in
/// that order per partition; `flush` waits for all of them.
pub async fn enqueue_keeps_order_and_flush_delivers(h: &dyn Harness) {
    let t = h.transport();
    let topic = h.topic(1).await;
    let mut deliveries = Vec::new();
    let mut immediate = Vec::new();
    for i in 0..100 {
        let mut r = ProducerRecord::new(topic.as_str(), format!("{i}"));
        r.partition = Some(0);
        match t.try_enqueue(r).unwrap() {
            Enqueued::Delivered(md) => immediate.push((i, md.offset)),
            Enqueued::Queued(d) => deliveries.push((i, d)),
            Enqueued::WouldWait(r) => deliveries.push((i, t.enqueue(r).await.unwrap())),
            Enqueued::Reported => panic!("try_enqueue said Reported: it was given no group"),
        }
    }
    within(h.deadline(), "flush", t.flush(h.deadline()))
        .await
        .unwrap();
    for (i, d) in deliveries {
        let md = within(h.deadline(), "a delivery", d).await.unwrap();
        immediate.push((i, md.offset));
    }
    immediate.sort_unstable();
    for (i, offset) in immediate {
        assert_eq!(offset, i, "record {i} delivered out of order");
    }
}

/// A transport that [reports deliveries](crate::transport::Transport::reports_deliveries)
/// reports each record handed to `try_enqueue_reported` to its group, once:
/// when the group is done, every record is in the topic; a record it cannot
/// deliver (a missing partition) fails its group with an [`Error::Broker`]
/// naming the partition. A transport that does not report passes trivially.
pub async fn reported_deliveries_reach_their_group(h: &dyn Harness) {
    use crate::transport::{DeliveryGroup, Latency};
    let t = h.transport();
    if !t.reports_deliveries() {
        return;
    }
    let topic = h.topic(1).await;
    let group = DeliveryGroup::new();
    let mut given_back = Vec::new();
    for i in 0..50 {
        let mut r = ProducerRecord::new(topic.as_str(), format!("{i}"));
        r.partition = Some(0);
        let latency = if i % 2 == 0 {
            Latency::Batched
        } else {
            Latency::Immediate
        };
        group.expect_one();
        match t.try_enqueue_reported(r, latency, &group).unwrap() {
            Enqueued::Reported => {}
            Enqueued::Delivered(_) => group.not_taken(),
            Enqueued::Queued(d) => {
                group.not_taken();
                given_back.push(d);
            }
            Enqueued::WouldWait(r) => {
                group.not_taken();
                given_back.push(t.enqueue(r).await.unwrap());
            }
        }
    }
    within(
        h.deadline(),
        "the group's deliveries",
        group.close_and_wait(),
    )
    .await
    .expect("a group's records were not delivered");
    for d in given_back {
        within(h.deadline(), "a delivery", d).await.unwrap();
    }
    let mut c = t.assign(vec![tp(&topic, 0)]).await.unwrap();
    assert_eq!(
        next_event(&mut c, h.deadline()).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0)])
    );
    let mut values: Vec<i64> = read(h, &mut c, 50)
        .await
        .iter()
        .map(|r| {
            std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..50).collect::<Vec<_>>());
    within(h.deadline(), "close", c.close(Duration::from_secs(10)))
        .await
        .unwrap();
    let mut r = ProducerRecord::new(topic.as_str(), "x");
    r.partition = Some(9);
    let group = DeliveryGroup::new();
    group.expect_one();
    let failed = match t.try_enqueue_reported(r, Latency::Batched, &group) {
        Ok(Enqueued::Reported) => {
            within(h.deadline(), "a failed group", group.close_and_wait()).await
        }
        Ok(other) => {
            group.not_taken();
            match other {
                Enqueued::Queued(d) => within(h.deadline(), "delivery", d).await.map(|_| ()),
                Enqueued::WouldWait(r) => t.send(r).await.map(|_| ()),
                Enqueued::Delivered(_) | Enqueued::Reported => Ok(()),
            }
        }
        Err(e) => Err(e),
    };
    let err = failed.expect_err("a record to a missing partition was delivered");
    assert!(matches!(err, Error::Broker(_)), "{err:?}");
    assert!(err.to_string().contains("partition 9"), "{err}");
}

/// `assign` without a group: `Assigned` with the partitions once each
/// (repetitions dropped), then every record of those partitions from the
/// oldest one, records sent later, and nothing of other partitions.
/// Commits are accepted and ignored (`committed` stays `None`). No
/// partitions at all is an error.
pub async fn assign_reads_exactly_its_partitions_from_the_oldest_record(h: &dyn Harness) {
    let t = h.transport();
    let topic = h.topic(3).await;
    for i in 0..5 {
        send(&*t, &topic, Some(2), None, &format!("early-{i}")).await;
    }
    let mut c = t.assign(vec![tp(&topic, 2), tp(&topic, 2)]).await.unwrap();
    assert_eq!(
        next_event(&mut c, h.deadline()).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 2)])
    );
    send(&*t, &topic, Some(0), None, "other").await;
    send(&*t, &topic, Some(2), None, "late").await;
    let rs = read(h, &mut c, 6).await;
    assert!(rs.iter().all(|r| r.partition == 2), "{rs:?}");
    assert_eq!(
        rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    assert_eq!(rs[0].value.as_deref(), Some(&b"early-0"[..]));
    assert_eq!(rs[5].value.as_deref(), Some(&b"late"[..]));
    assert_eq!(event_within(&mut c, Duration::from_millis(100)).await, None);
    c.commit(&[(tp(&topic, 2), 5)]).await.unwrap();
    assert_eq!(c.committed(&tp(&topic, 2)).await.unwrap(), None);
    within(h.deadline(), "close", c.close(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(t.assign(Vec::new()).await.is_err(), "assign of nothing");
}

/// The only member of a group gets every partition of its topic in one
/// `Assigned`, then every record from the oldest (`Earliest`).
pub async fn one_member_gets_every_partition(h: &dyn Harness) {
    let t = h.transport();
    let topic = h.topic(4).await;
    for i in 0..20 {
        send(&*t, &topic, Some(i % 4), None, &format!("{i}")).await;
    }
    let mut c = join(&*t, &h.group(), &topic, OffsetReset::Earliest).await;
    let ev = next_event(&mut c, h.deadline()).await;
    let ConsumerEvent::Assigned(tps) = ev else {
        panic!("expected Assigned, got {ev:?}")
    };
    assert_eq!(
        tps.into_iter().collect::<BTreeSet<_>>(),
        all_partitions(&topic, 4)
    );
    let rs = read(h, &mut c, 20).await;
    let mut next = [0i64; 4];
    for r in &rs {
        assert_eq!(r.offset, next[r.partition as usize]);
        next[r.partition as usize] += 1;
    }
    within(h.deadline(), "close", c.close(Duration::from_secs(10)))
        .await
        .unwrap();
}

/// A second member joins a member owning all 8 partitions: the first is
/// revoked some partitions before the second is assigned them (never owned
/// by both), they end with 4 each, and 1000 keyed records are each seen
/// exactly once, by both members, and nothing after.
pub async fn second_member_splits_partitions_and_each_record_is_seen_once(h: &dyn Harness) {
    let t = h.transport();
    let d = h.deadline();
    let topic = h.topic(8).await;
    let group = h.group();
    let mut m1 = joined(h, "m1", &group, &topic).await;
    drive_until(&mut [&mut m1], d, "m1 owns all", |ms| sizes(ms) == [8]).await;
    let mut m2 = joined(h, "m2", &group, &topic).await;
    drive_until(&mut [&mut m1, &mut m2], d, "a 4/4 split", |ms| {
        sizes(ms) == [4, 4]
    })
    .await;
    assert!(m1.revocations() >= 1, "m1 lost partitions without Revoked");
    assert!(m1.assigned.is_disjoint(&m2.assigned));
    let union: BTreeSet<_> = m1.assigned.union(&m2.assigned).cloned().collect();
    assert_eq!(union, all_partitions(&topic, 8));
    for i in 0..1000 {
        send(&*t, &topic, None, Some(&format!("key-{i}")), "v").await;
    }
    drive_until(&mut [&mut m1, &mut m2], d, "1000 records seen", |ms| {
        ms.iter().map(|m| m.seen.len()).sum::<usize>() >= 1000
    })
    .await;
    assert!(!m1.seen.is_empty() && !m2.seen.is_empty(), "both read");
    assert_each_record_once(&[&mut m1, &mut m2], 1000);
    // Nothing more for anybody.
    assert!(!m1.step(Duration::from_millis(30)).await, "m1: more events");
    assert!(!m2.step(Duration::from_millis(30)).await, "m2: more events");
}

/// The revocation handshake: `a` owns both partitions, has read
/// everything and committed offset 3 of each; `c` joins. `c` gets nothing
/// before `a` polls; `a`'s next event is `Revoked` (no records of revoked
/// partitions first); `c` still gets nothing while `a` has not polled
/// again; `a` commits offset 6 of every revoked partition and polls; then
/// `c` is assigned one partition and reads it from the committed offset,
/// which `committed` reports.
///
/// Where [`Harness::refuses_commits_during_rebalance`], `a`'s commit on
/// revocation may be refused: `c` then starts at 3, the last commit the
/// broker accepted.
pub async fn handoff_waits_for_revocation_and_starts_at_the_committed_offset(h: &dyn Harness) {
    let t = h.transport();
    let d = h.deadline();
    let topic = h.topic(2).await;
    let group = h.group();
    for i in 0..20 {
        send(&*t, &topic, Some(i % 2), None, &format!("v{i}")).await;
    }
    let mut a = join(&*t, &group, &topic, OffsetReset::Earliest).await;
    assert_eq!(
        next_event(&mut a, d).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0), tp(&topic, 1)])
    );
    let rs = read(h, &mut a, 20).await;
    assert_eq!(rs.len(), 20);
    let early: Vec<_> = (0..2).map(|p| (tp(&topic, p), 3)).collect();
    within(d, "commit", a.commit(&early)).await.unwrap();
    let mut c = join(&*t, &group, &topic, OffsetReset::Earliest).await;
    // `a` has not revoked yet: `c` gets nothing.
    assert_eq!(event_within(&mut c, h.quiet_window()).await, None);
    let ev = next_event(&mut a, d).await;
    let ConsumerEvent::Revoked(revoked) = ev else {
        panic!("a: expected Revoked, got {ev:?}")
    };
    assert!(!revoked.is_empty());
    // `a` is still revoking (has not polled again): still nothing for `c`.
    assert_eq!(event_within(&mut c, h.quiet_window()).await, None);
    let late: Vec<_> = revoked.iter().map(|tp| (tp.clone(), 6)).collect();
    let accepted = match within(d, "commit on revoke", a.commit(&late)).await {
        Ok(()) => true,
        Err(_) if h.refuses_commits_during_rebalance() => false,
        Err(e) => panic!("a: commit on revoke failed: {e}"),
    };
    let start = if accepted { 6 } else { 3 };
    // Both poll until the group settles on one partition each.
    let mut a_owned: BTreeSet<_> = (0..2).map(|p| tp(&topic, p)).collect();
    for tp in &revoked {
        a_owned.remove(tp);
    }
    let mut c_owned = BTreeSet::new();
    let mut c_records: BTreeMap<_, Vec<i64>> = BTreeMap::new();
    within(d, "a 1/1 split", async {
        // Until `c` has read its partition to the end (offset 9).
        while !(a_owned.len() == 1
            && c_owned.len() == 1
            && c_records.values().any(|o| o.last() == Some(&9)))
        {
            if let Some(ev) = event_within(&mut a, Duration::from_millis(5)).await {
                match ev {
                    ConsumerEvent::Assigned(tps) => a_owned.extend(tps),
                    ConsumerEvent::Revoked(tps) => tps
                        .iter()
                        .for_each(|tp| assert!(a_owned.remove(tp), "a: revoked {tp} not owned")),
                    ConsumerEvent::Records(rs) => assert!(
                        rs.iter().all(|r| a_owned.contains(&r.topic_partition())),
                        "a: records of a revoked partition"
                    ),
                }
            }
            if let Some(ev) = event_within(&mut c, Duration::from_millis(5)).await {
                match ev {
                    ConsumerEvent::Assigned(tps) => c_owned.extend(tps),
                    ConsumerEvent::Revoked(tps) => {
                        for tp in tps {
                            assert!(c_owned.remove(&tp), "c: revoked {tp} not owned");
                            c_records.remove(&tp);
                        }
                    }
                    ConsumerEvent::Records(rs) => {
                        for r in rs {
                            let tp = r.topic_partition();
                            assert!(c_owned.contains(&tp), "c: record of {tp} not owned");
                            c_records.entry(tp).or_default().push(r.offset);
                        }
                    }
                }
            }
            assert!(a_owned.is_disjoint(&c_owned), "a partition owned twice");
        }
    })
    .await;
    let (c_tp, offsets) = c_records.into_iter().next().unwrap();
    assert_eq!(
        offsets,
        (start..10).collect::<Vec<_>>(),
        "c reads {c_tp} from the committed offset"
    );
    assert_eq!(
        within(d, "committed", c.committed(&c_tp)).await.unwrap(),
        Some(start)
    );
    let _ = tokio::join!(
        a.close(Duration::from_secs(10)),
        c.close(Duration::from_secs(10))
    );
}

/// Two members own 4 of 8 partitions each and are reading 800 records
/// when a third joins: the group ends with 3/3/2 partitions, members that
/// lose partitions see `Revoked` first, the newcomer's first event is
/// `Assigned`, and the 800 records plus 800 more are each seen exactly
/// once (see [`assert_each_record_once`] for the tolerance of refused
/// commits), the newcomer reading some of them; then nothing more.
pub async fn third_member_triggers_revoke_then_assign_without_loss_or_duplicates(h: &dyn Harness) {
    let t = h.transport();
    let d = h.deadline();
    let topic = h.topic(8).await;
    let group = h.group();
    let (mut m1, mut m2) = two_members_splitting_8(h, &group, &topic).await;
    for i in 0..800 {
        send(&*t, &topic, Some(i % 8), None, &format!("a{i}")).await;
    }
    // Consume part of it, commit, then a third member joins mid-stream.
    drive_until(&mut [&mut m1, &mut m2], d, "100 records seen", |ms| {
        ms.iter().map(|m| m.seen.len()).sum::<usize>() >= 100
    })
    .await;
    m1.commit_all().await;
    m2.commit_all().await;
    let (r1, r2) = (m1.revocations(), m2.revocations());
    let mut m3 = joined(h, "m3", &group, &topic).await;
    drive_until(&mut [&mut m1, &mut m2, &mut m3], d, "a 3/3/2 split", |ms| {
        let mut s = sizes(ms);
        s.sort_unstable();
        s == [2, 3, 3]
    })
    .await;
    assert!(m1.revocations() > r1, "m1 lost partitions without Revoked");
    assert!(m2.revocations() > r2, "m2 lost partitions without Revoked");
    assert!(
        m3.events[0].starts_with("assigned"),
        "m3's first event: {:?}",
        m3.events
    );
    for i in 0..800 {
        send(&*t, &topic, Some(i % 8), None, &format!("b{i}")).await;
    }
    let d3 = d * 2;
    drive_until(&mut [&mut m1, &mut m2, &mut m3], d3, "1600 records", |ms| {
        ms.iter()
            .flat_map(|m| m.distinct())
            .collect::<BTreeSet<_>>()
            .len()
            >= 1600
    })
    .await;
    settle(
        &mut [&mut m1, &mut m2, &mut m3],
        Duration::from_millis(50),
        d,
    )
    .await;
    for m in [&mut m1, &mut m2, &mut m3] {
        assert!(
            !m.step(Duration::from_millis(20)).await,
            "{}: more events",
            m.name
        );
    }
    assert_each_record_once(&[&mut m1, &mut m2, &mut m3], 1600);
    assert!(!m3.seen.is_empty(), "m3 read nothing");
}

/// See [`closing_member_releases_its_partitions`] and
/// [`dropped_member_releases_its_partitions`].
async fn leaving_member_releases_its_partitions(h: &dyn Harness, by_drop: bool) {
    let t = h.transport();
    let d = h.deadline();
    let topic = h.topic(8).await;
    let group = h.group();
    let (mut m1, mut m2) = two_members_splitting_8(h, &group, &topic).await;
    for i in 0..80 {
        send(&*t, &topic, Some(i % 8), None, &format!("{i}")).await;
    }
    drive_until(&mut [&mut m1, &mut m2], d, "80 records seen", |ms| {
        ms.iter().map(|m| m.seen.len()).sum::<usize>() >= 80
    })
    .await;
    m2.commit_all().await;
    let seen_by_m2 = m2.distinct();
    assert_eq!(seen_by_m2.len(), m2.seen.len(), "m2 saw duplicates");
    if by_drop {
        drop(m2);
    } else {
        within(d, "close", m2.consumer.close(Duration::from_secs(10)))
            .await
            .unwrap();
    }
    drive_until(&mut [&mut m1], d, "m1 owns all", |ms| sizes(ms) == [8]).await;
    for i in 0..80 {
        send(&*t, &topic, Some(i % 8), None, &format!("{i}")).await;
    }
    let want = 160 - seen_by_m2.len();
    drive_until(&mut [&mut m1], d, "the rest seen by m1", |ms| {
        ms[0].distinct().len() >= want
    })
    .await;
    settle(&mut [&mut m1], Duration::from_millis(50), d).await;
    assert!(
        !m1.step(Duration::from_millis(20)).await,
        "m1: more events (re-delivered records?)"
    );
    let mine = m1.distinct();
    assert!(
        mine.is_disjoint(&seen_by_m2),
        "records m2 committed were delivered again"
    );
    assert_eq!(mine.len(), want);
    assert_each_record_once(&[&mut m1], want);
}

/// A member leaving by `close` releases its partitions: the remaining
/// member gets all 8, reads exactly what the leaver had not committed and
/// everything sent later, and nothing twice.
pub async fn closing_member_releases_its_partitions(h: &dyn Harness) {
    leaving_member_releases_its_partitions(h, false).await
}

/// Like [`closing_member_releases_its_partitions`], the member being
/// dropped without `close`.
pub async fn dropped_member_releases_its_partitions(h: &dyn Harness) {
    leaving_member_releases_its_partitions(h, true).await
}

/// A member that committed offset 6 of 10 and closed: a new member of the
/// group sees `committed` = 6 and reads from 6; a new group reads from 0.
pub async fn rejoining_group_resumes_at_the_committed_offset(h: &dyn Harness) {
    let t = h.transport();
    let d = h.deadline();
    let topic = h.topic(1).await;
    let group = h.group();
    for i in 0..10 {
        send(&*t, &topic, None, None, &format!("{i}")).await;
    }
    let mut c = join(&*t, &group, &topic, OffsetReset::Earliest).await;
    assert_eq!(
        next_event(&mut c, d).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0)])
    );
    let rs = read(h, &mut c, 10).await;
    assert_eq!(
        rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    within(d, "commit", c.commit(&[(tp(&topic, 0), 6)]))
        .await
        .unwrap();
    assert_eq!(c.committed(&tp(&topic, 0)).await.unwrap(), Some(6));
    within(d, "close", c.close(Duration::from_secs(10)))
        .await
        .unwrap();

    let mut c = join(&*t, &group, &topic, OffsetReset::Earliest).await;
    assert_eq!(
        within(d, "committed", c.committed(&tp(&topic, 0)))
            .await
            .unwrap(),
        Some(6)
    );
    assert_eq!(
        next_event(&mut c, d).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0)])
    );
    let rs = read(h, &mut c, 4).await;
    assert_eq!(
        rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![6, 7, 8, 9]
    );
    within(d, "close", c.close(Duration::from_secs(10)))
        .await
        .unwrap();
    // Another group starts from the beginning.
    let mut other = join(&*t, &h.group(), &topic, OffsetReset::Earliest).await;
    assert!(matches!(
        next_event(&mut other, d).await,
        ConsumerEvent::Assigned(_)
    ));
    assert_eq!(read(h, &mut other, 10).await[0].offset, 0);
    within(d, "close", other.close(Duration::from_secs(10)))
        .await
        .unwrap();
}

/// A new group with [`OffsetReset::Earliest`] reads the records sent
/// before it joined; one with [`OffsetReset::Latest`] never does: it
/// reads only records sent after its `Assigned`.
///
/// Kafka resolves `latest` with an offset lookup after the assignment, so
/// a record sent right after `Assigned` may fall before the consumer's
/// position: marker records are sent one by one until one arrives, and
/// what arrives must be markers only, in order, each after the first.
/// (The embedded broker takes its position at the assignment: it reads
/// the first marker.)
pub async fn new_groups_start_at_earliest_or_latest(h: &dyn Harness) {
    let t = h.transport();
    let d = h.deadline();
    let topic = h.topic(2).await;
    send(&*t, &topic, Some(0), None, "old").await;
    let mut earliest = join(&*t, &h.group(), &topic, OffsetReset::Earliest).await;
    assert!(
        matches!(next_event(&mut earliest, d).await, ConsumerEvent::Assigned(v) if v.len() == 2)
    );
    let rs = read(h, &mut earliest, 1).await;
    assert_eq!(rs[0].value.as_deref(), Some(&b"old"[..]));

    let mut latest = join(&*t, &h.group(), &topic, OffsetReset::Latest).await;
    assert!(matches!(next_event(&mut latest, d).await, ConsumerEvent::Assigned(v) if v.len() == 2));
    assert_eq!(
        event_within(&mut latest, Duration::from_millis(50)).await,
        None
    );
    let mut markers = Vec::new();
    let mut got: Vec<Record> = Vec::new();
    within(d, "a marker record for the latest group", async {
        while got.is_empty() {
            let value = format!("new-{}", markers.len());
            send(&*t, &topic, Some(0), None, &value).await;
            markers.push(value);
            if let Some(ev) = event_within(&mut latest, Duration::from_millis(500)).await {
                match ev {
                    ConsumerEvent::Records(rs) => got.extend(rs),
                    other => panic!("latest: unexpected {other:?}"),
                }
            }
        }
    })
    .await;
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let first = markers
        .iter()
        .position(|m| *m == values[0])
        .unwrap_or_else(|| panic!("latest read a record sent before it joined: {values:?}"));
    assert_eq!(
        values,
        markers[first..first + values.len()],
        "latest read {values:?}"
    );
    let _ = tokio::join!(
        earliest.close(Duration::from_secs(10)),
        latest.close(Duration::from_secs(10))
    );
}

/// Two groups on one topic each see all 200 records, each exactly once.
pub async fn two_groups_each_see_every_record(h: &dyn Harness) {
    let t = h.transport();
    let d = h.deadline();
    let topic = h.topic(4).await;
    let mut g1 = joined(h, "g1", &h.group(), &topic).await;
    let mut g2 = joined(h, "g2", &h.group(), &topic).await;
    for i in 0..200 {
        send(&*t, &topic, None, Some(&i.to_string()), "v").await;
    }
    let mut groups = [&mut g1, &mut g2];
    let start = std::time::Instant::now();
    while groups.iter().any(|m| m.seen.len() < 200) {
        assert!(start.elapsed() < d, "timed out: {groups:?}");
        for m in groups.iter_mut() {
            m.step(Duration::from_millis(5)).await;
        }
    }
    assert_each_record_once(&[&mut g1], 200);
    assert_each_record_once(&[&mut g2], 200);
}

/// Once a partition has moved to another member, the old owner's commits
/// of it are refused and leave the group's offset alone, so that a late
/// commit of a member that lost a partition cannot move the new owner's
/// position.
///
/// Kafka's brokers fence commits by group generation only (a late commit
/// of the old owner would be accepted and overwrite the group's offset):
/// a transport checks ownership itself, as the Kafka transport does.
pub async fn commits_of_a_partition_moved_away_are_refused(h: &dyn Harness) {
    let d = h.deadline();
    let topic = h.topic(2).await;
    let group = h.group();
    let mut a = joined(h, "a", &group, &topic).await;
    drive_until(&mut [&mut a], d, "a owns all", |ms| sizes(ms) == [2]).await;
    let mut c = joined(h, "c", &group, &topic).await;
    drive_until(&mut [&mut a, &mut c], d, "a 1/1 split", |ms| {
        sizes(ms) == [1, 1]
    })
    .await;
    let moved = c.assigned.iter().next().unwrap().clone();
    let before = within(d, "committed", c.consumer.committed(&moved))
        .await
        .unwrap();
    let late = within(d, "a late commit", a.consumer.commit(&[(moved.clone(), 5)])).await;
    assert!(
        late.is_err(),
        "a's commit of {moved}, owned by c, was accepted"
    );
    assert_eq!(
        within(d, "committed", c.consumer.committed(&moved))
            .await
            .unwrap(),
        before,
        "a's late commit moved the group's offset of {moved}"
    );
}
