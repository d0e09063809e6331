//! Tests of the embedded broker.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use tokio::time::timeout;

use crate::record::{Headers, Record};
use crate::transport::{ConsumerEvent, OffsetReset};

const WAIT: Duration = Duration::from_secs(5);

fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

fn broker() -> Arc<MemoryBroker> {
    Arc::new(MemoryBroker::new())
}

async fn poll(c: &mut Box<dyn Consumer>) -> ConsumerEvent {
    timeout(WAIT, c.poll())
        .await
        .expect("poll timed out")
        .expect("poll failed")
}

/// Poll for `d`; `None` if nothing came.
async fn poll_for(c: &mut Box<dyn Consumer>, d: Duration) -> Option<ConsumerEvent> {
    timeout(d, c.poll())
        .await
        .ok()
        .map(|r| r.expect("poll failed"))
}

async fn send(b: &MemoryBroker, topic: &str, key: Option<&str>, value: &str) -> RecordMetadata {
    let mut r = ProducerRecord::new(topic, value.to_string());
    r.key = key.map(|k| Bytes::from(k.to_string()));
    b.send(r).await.expect("send")
}

async fn send_to(b: &MemoryBroker, topic: &str, partition: i32, value: &str) -> RecordMetadata {
    let mut r = ProducerRecord::new(topic, value.to_string());
    r.partition = Some(partition);
    b.send(r).await.expect("send")
}

async fn join(b: &MemoryBroker, group: &str, topic: &str) -> Box<dyn Consumer> {
    b.subscribe(SubscribeOptions {
        group: group.into(),
        topics: vec![topic.into()],
        offset_reset: OffsetReset::Earliest,
    })
    .await
    .expect("subscribe")
}

/// A group member driven by the tests, checking the protocol as it goes.
struct M {
    c: Box<dyn Consumer>,
    assigned: BTreeSet<TopicPartition>,
    next: BTreeMap<TopicPartition, i64>,
    seen: Vec<Record>,
    events: Vec<String>,
    commit_on_revoke: bool,
}

impl M {
    fn new(c: Box<dyn Consumer>) -> Self {
        Self {
            c,
            assigned: BTreeSet::new(),
            next: BTreeMap::new(),
            seen: Vec::new(),
            events: Vec::new(),
            commit_on_revoke: true,
        }
    }

    /// Poll once for at most `d`; true if an event came.
    async fn step(&mut self, d: Duration) -> bool {
        let Some(ev) = poll_for(&mut self.c, d).await else {
            return false;
        };
        match ev {
            ConsumerEvent::Records(rs) => {
                assert!(!rs.is_empty());
                for r in rs {
                    let tp = r.topic_partition();
                    assert!(self.assigned.contains(&tp), "record of unassigned {tp}");
                    if let Some(n) = self.next.get(&tp) {
                        assert_eq!(r.offset, *n, "offsets of {tp} not consecutive");
                    }
                    self.next.insert(tp, r.offset + 1);
                    self.seen.push(r);
                }
            }
            ConsumerEvent::Revoked(tps) => {
                self.events.push(format!("revoked {tps:?}"));
                assert!(!tps.is_empty());
                let mut offsets = Vec::new();
                for tp in &tps {
                    assert!(self.assigned.remove(tp), "revoked {tp} not assigned");
                    if let Some(n) = self.next.remove(tp) {
                        offsets.push((tp.clone(), n));
                    }
                }
                if self.commit_on_revoke {
                    self.c.commit(&offsets).await.expect("commit on revoke");
                }
            }
            ConsumerEvent::Assigned(tps) => {
                self.events.push(format!("assigned {tps:?}"));
                assert!(!tps.is_empty());
                for tp in tps {
                    assert!(self.assigned.insert(tp.clone()), "{tp} assigned twice");
                }
            }
        }
        true
    }

    async fn commit_all(&mut self) {
        let offsets: Vec<_> = self.next.iter().map(|(t, o)| (t.clone(), *o)).collect();
        self.c.commit(&offsets).await.expect("commit");
    }
}

/// Step every member in turn until `done` holds (panics after 10 s).
async fn drive(ms: &mut [&mut M], done: impl Fn(&[&mut M]) -> bool) {
    let start = std::time::Instant::now();
    while !done(ms) {
        assert!(start.elapsed() < Duration::from_secs(10), "drive timed out");
        for m in ms.iter_mut() {
            m.step(Duration::from_millis(5)).await;
        }
    }
}

fn sizes(ms: &[&mut M]) -> Vec<usize> {
    ms.iter().map(|m| m.assigned.len()).collect()
}

fn total_seen(ms: &[&mut M]) -> usize {
    ms.iter().map(|m| m.seen.len()).sum()
}

/// Every (partition, offset) of `ms` exactly once, and all of `expected`.
fn assert_exactly_once(ms: &[&mut M], expected: usize) {
    let mut all = BTreeSet::new();
    for m in ms {
        for r in &m.seen {
            assert!(
                all.insert((r.partition, r.offset)),
                "duplicate {}@{}",
                r.partition,
                r.offset
            );
        }
    }
    assert_eq!(all.len(), expected);
}

#[test]
fn murmur2_matches_kafka() {
    assert_eq!(murmur2(b"21"), -973932308);
    assert_eq!(murmur2(b"foobar"), -790332482);
    assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
    assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
    assert_eq!(
        murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
        -58897971
    );
    assert_eq!(murmur2(b"abc"), 479470107);
    // 1173551340 % 8
    assert_eq!(partition_for_key(b"21", 8), 4);
}

#[tokio::test]
async fn produce_consume_in_order_with_offsets() {
    let b = broker();
    b.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
    for i in 0..10 {
        let md = send(&b, "t", None, &format!("v{i}")).await;
        assert_eq!((&*md.topic, md.partition, md.offset), ("t", 0, i));
    }
    let mut c = b.assign(vec![tp("t", 0)]).await.unwrap();
    assert_eq!(
        poll(&mut c).await,
        ConsumerEvent::Assigned(vec![tp("t", 0)])
    );
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    let got: Vec<(i64, Bytes)> = rs
        .iter()
        .map(|r| (r.offset, r.value.clone().unwrap()))
        .collect();
    let want: Vec<(i64, Bytes)> = (0..10).map(|i| (i, Bytes::from(format!("v{i}")))).collect();
    assert_eq!(got, want);
    assert!(rs.iter().all(|r| &*r.topic == "t" && r.partition == 0));
    // Nothing more, then a later record wakes the waiting consumer.
    assert!(poll_for(&mut c, Duration::from_millis(50)).await.is_none());
    let b2 = b.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        send(&b2, "t", None, "late").await
    });
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].offset, 10);
    assert_eq!(producer.await.unwrap().offset, 10);
    assert_eq!(b.end_offset(&tp("t", 0)), Some(11));
}

#[tokio::test]
async fn topics_are_created_idempotently_or_automatically() {
    let b = Arc::new(MemoryBroker::new().with_default_partitions(3));
    assert_eq!(b.partition_count("x").await.unwrap(), None);
    b.create_topic(&TopicSpec::new("x", 5)).await.unwrap();
    b.create_topic(&TopicSpec::new("x", 2)).await.unwrap();
    assert_eq!(b.partition_count("x").await.unwrap(), Some(5));
    assert!(b.create_topic(&TopicSpec::new("bad", 0)).await.is_err());
    send(&b, "auto", None, "v").await;
    assert_eq!(b.partition_count("auto").await.unwrap(), Some(3));
    assert_eq!(broker().partition_count("auto").await.unwrap(), None);
    let mut r = ProducerRecord::new("x", "v");
    r.partition = Some(5);
    assert!(matches!(b.send(r).await, Err(Error::Broker(_))));
    assert_eq!(b.topics(), vec!["auto".to_string(), "x".to_string()]);
}

#[tokio::test]
async fn keyed_records_use_kafka_partitioner() {
    let b = broker();
    b.create_topic(&TopicSpec::new("k", 8)).await.unwrap();
    assert_eq!(send(&b, "k", Some("21"), "a").await.partition, 4);
    for key in ["foobar", "abc", "a-little-bit-long-string", "user-17", ""] {
        let p = send(&b, "k", Some(key), "a").await.partition;
        assert_eq!(p, ((murmur2(key.as_bytes()) & 0x7fffffff) % 8));
        for _ in 0..3 {
            assert_eq!(
                send(&b, "k", Some(key), "b").await.partition,
                p,
                "key {key} moved"
            );
        }
    }
}

#[tokio::test]
async fn keyless_records_are_round_robin() {
    let b = broker();
    b.create_topic(&TopicSpec::new("rr", 4)).await.unwrap();
    let parts: Vec<i32> = {
        let mut v = Vec::new();
        for _ in 0..12 {
            v.push(send(&b, "rr", None, "v").await.partition);
        }
        v
    };
    for w in parts.windows(2) {
        assert_eq!(w[1], (w[0] + 1) % 4);
    }
    for p in 0..4 {
        assert_eq!(parts.iter().filter(|x| **x == p).count(), 3);
        assert_eq!(b.end_offset(&tp("rr", p)), Some(3));
    }
}

#[tokio::test]
async fn headers_and_timestamps_are_preserved() {
    let b = broker();
    let headers: Headers = vec![
        ("b".into(), Bytes::from_static(b"1")),
        ("a".into(), Bytes::from_static(b"2")),
        ("b".into(), Bytes::from_static(b"3")),
        ("empty".into(), Bytes::new()),
    ];
    let r = ProducerRecord {
        topic: "h".into(),
        partition: Some(0),
        key: Some(Bytes::from_static(b"k")),
        value: None,
        headers: headers.clone(),
        timestamp: Some(1_234_567),
    };
    let md = b.send(r).await.unwrap();
    assert_eq!(md.timestamp, 1_234_567);
    // Stamped from the coarse clock: within a few ticks of the precise one.
    let before = crate::record::now_millis();
    let md2 = send_to(&b, "h", 0, "now").await;
    let after = crate::record::now_millis();
    assert!(
        md2.timestamp >= before - 50 && md2.timestamp <= after + 50,
        "{before} <= {} <= {after}",
        md2.timestamp
    );
    let mut c = b.assign(vec![tp("h", 0)]).await.unwrap();
    poll(&mut c).await;
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    assert_eq!(rs[0].headers, headers);
    assert_eq!(rs[0].timestamp, 1_234_567);
    assert_eq!(rs[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(rs[0].value, None);
    assert_eq!(rs[1].timestamp, md2.timestamp);
    assert!(rs[1].headers.is_empty());
}

#[tokio::test]
async fn two_members_split_partitions_and_see_each_record_once() {
    let b = broker();
    b.create_topic(&TopicSpec::new("s", 8)).await.unwrap();
    let mut m1 = M::new(join(&b, "g", "s").await);
    // m1 takes everything first, so m2 must wait for m1's revocation.
    drive(&mut [&mut m1], |ms| sizes(ms) == [8]).await;
    let mut m2 = M::new(join(&b, "g", "s").await);
    drive(&mut [&mut m1, &mut m2], |ms| sizes(ms) == [4, 4]).await;
    assert!(m1.assigned.is_disjoint(&m2.assigned));
    assert_eq!(m1.assigned, (0..4).map(|p| tp("s", p)).collect());
    assert_eq!(m2.assigned, (4..8).map(|p| tp("s", p)).collect());
    assert_eq!(
        m1.events[1],
        format!(
            "revoked {:?}",
            (4..8).map(|p| tp("s", p)).collect::<Vec<_>>()
        )
    );
    for i in 0..1000 {
        send(&b, "s", Some(&format!("key-{i}")), "v").await;
    }
    drive(&mut [&mut m1, &mut m2], |ms| total_seen(ms) == 1000).await;
    assert!(!m1.seen.is_empty() && !m2.seen.is_empty());
    assert_exactly_once(&[&mut m1, &mut m2], 1000);
    // Nothing more for anybody.
    assert!(!m1.step(Duration::from_millis(30)).await);
    assert!(!m2.step(Duration::from_millis(30)).await);
}

#[tokio::test]
async fn handoff_waits_for_revocation_and_starts_at_committed_offset() {
    let b = broker();
    b.create_topic(&TopicSpec::new("h", 2)).await.unwrap();
    for i in 0..10 {
        send_to(&b, "h", 1, &format!("v{i}")).await;
    }
    let mut a = join(&b, "g", "h").await;
    assert_eq!(
        poll(&mut a).await,
        ConsumerEvent::Assigned(vec![tp("h", 0), tp("h", 1)])
    );
    let ConsumerEvent::Records(rs) = poll(&mut a).await else {
        panic!("expected records")
    };
    assert_eq!(rs.len(), 10);
    let mut c = join(&b, "g", "h").await;
    // A has not revoked yet: C gets nothing.
    assert_eq!(poll_for(&mut c, Duration::from_millis(100)).await, None);
    assert_eq!(poll(&mut a).await, ConsumerEvent::Revoked(vec![tp("h", 1)]));
    // A is still revoking (has not polled again): still nothing for C.
    assert_eq!(poll_for(&mut c, Duration::from_millis(100)).await, None);
    a.commit(&[(tp("h", 1), 6)]).await.unwrap();
    assert_eq!(poll_for(&mut a, Duration::from_millis(20)).await, None);
    assert_eq!(
        poll(&mut c).await,
        ConsumerEvent::Assigned(vec![tp("h", 1)])
    );
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    assert_eq!(
        rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![6, 7, 8, 9]
    );
    assert_eq!(c.committed(&tp("h", 1)).await.unwrap(), Some(6));
    assert_eq!(b.committed_offset("g", &tp("h", 1)), Some(6));
    // A no longer owns it: its commits are refused.
    assert!(a.commit(&[(tp("h", 1), 7)]).await.is_err());
}

#[tokio::test]
async fn rebalance_deadline_hands_over_and_fences_the_old_owner() {
    let b = Arc::new(MemoryBroker::new().with_rebalance_timeout(Duration::from_millis(200)));
    b.create_topic(&TopicSpec::new("d", 2)).await.unwrap();
    let mut a = join(&b, "g", "d").await;
    assert_eq!(
        poll(&mut a).await,
        ConsumerEvent::Assigned(vec![tp("d", 0), tp("d", 1)])
    );
    let mut c = join(&b, "g", "d").await;
    let started = std::time::Instant::now();
    // A never polls: C gets partition 1 after the deadline.
    assert_eq!(
        poll(&mut c).await,
        ConsumerEvent::Assigned(vec![tp("d", 1)])
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(a.commit(&[(tp("d", 1), 1)]).await.is_err());
    assert_eq!(poll(&mut a).await, ConsumerEvent::Revoked(vec![tp("d", 1)]));
    send_to(&b, "d", 1, "x").await;
    send_to(&b, "d", 0, "y").await;
    let ConsumerEvent::Records(rs) = poll(&mut a).await else {
        panic!("expected records")
    };
    assert_eq!((rs.len(), rs[0].partition), (1, 0));
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    assert_eq!((rs.len(), rs[0].partition), (1, 1));
}

#[tokio::test]
async fn third_member_triggers_revoke_then_assign_without_loss_or_duplicates() {
    let b = broker();
    b.create_topic(&TopicSpec::new("j", 8)).await.unwrap();
    let mut m1 = M::new(join(&b, "g", "j").await);
    let mut m2 = M::new(join(&b, "g", "j").await);
    drive(&mut [&mut m1, &mut m2], |ms| sizes(ms) == [4, 4]).await;
    for i in 0..800 {
        send(&b, "j", None, &format!("a{i}")).await;
    }
    // Consume part of it, commit, then a third member joins mid-stream.
    drive(&mut [&mut m1, &mut m2], |ms| total_seen(ms) >= 100).await;
    m1.commit_all().await;
    m2.commit_all().await;
    let mut m3 = M::new(join(&b, "g", "j").await);
    drive(&mut [&mut m1, &mut m2, &mut m3], |ms| {
        sizes(ms) == [3, 3, 2]
    })
    .await;
    assert_eq!(m1.assigned, (0..3).map(|p| tp("j", p)).collect());
    assert_eq!(m2.assigned, (3..6).map(|p| tp("j", p)).collect());
    assert_eq!(m3.assigned, (6..8).map(|p| tp("j", p)).collect());
    // m2 lost 6 and 7, then gained 3: revoke strictly before assign.
    let tail: Vec<&String> = m2.events.iter().rev().take(2).collect();
    assert_eq!(
        tail[1],
        &format!("revoked {:?}", vec![tp("j", 6), tp("j", 7)])
    );
    assert_eq!(tail[0], &format!("assigned {:?}", vec![tp("j", 3)]));
    assert_eq!(
        m3.events,
        vec![format!("assigned {:?}", vec![tp("j", 6), tp("j", 7)])]
    );
    for i in 0..800 {
        send(&b, "j", None, &format!("b{i}")).await;
    }
    drive(&mut [&mut m1, &mut m2, &mut m3], |ms| {
        total_seen(ms) >= 1600
    })
    .await;
    for m in [&mut m1, &mut m2, &mut m3] {
        assert!(!m.step(Duration::from_millis(20)).await);
    }
    assert_exactly_once(&[&mut m1, &mut m2, &mut m3], 1600);
    assert!(!m3.seen.is_empty());
}

#[tokio::test]
async fn leaving_members_release_their_partitions() {
    for by_drop in [false, true] {
        let b = broker();
        b.create_topic(&TopicSpec::new("l", 8)).await.unwrap();
        let mut m1 = M::new(join(&b, "g", "l").await);
        let mut m2 = M::new(join(&b, "g", "l").await);
        drive(&mut [&mut m1, &mut m2], |ms| sizes(ms) == [4, 4]).await;
        for i in 0..80 {
            send(&b, "l", None, &format!("{i}")).await;
        }
        drive(&mut [&mut m1, &mut m2], |ms| total_seen(ms) == 80).await;
        m2.commit_all().await;
        let seen_by_m2 = m2.seen.len();
        if by_drop {
            drop(m2);
        } else {
            m2.c.close(Duration::from_secs(1)).await.unwrap();
        }
        drive(&mut [&mut m1], |ms| sizes(ms) == [8]).await;
        for i in 0..80 {
            send(&b, "l", None, &format!("{i}")).await;
        }
        drive(&mut [&mut m1], |ms| total_seen(ms) == 80 - seen_by_m2 + 80).await;
        assert!(
            !m1.step(Duration::from_millis(20)).await,
            "re-delivered records"
        );
        assert_eq!(m1.seen.len(), 160 - seen_by_m2);
    }
}

#[tokio::test]
async fn two_groups_each_see_every_record() {
    let b = broker();
    let mut g1 = M::new(join(&b, "g1", "two").await);
    let mut g2 = M::new(join(&b, "g2", "two").await);
    for i in 0..200 {
        send(&b, "two", Some(&i.to_string()), "v").await;
    }
    drive(&mut [&mut g1, &mut g2], |ms| {
        ms.iter().all(|m| m.seen.len() >= 200)
    })
    .await;
    assert_exactly_once(&[&mut g1], 200);
    assert_exactly_once(&[&mut g2], 200);
}

#[tokio::test]
async fn subscribe_creates_topic_and_latest_skips_old_records() {
    let b = broker();
    let mut c = join(&b, "g", "late").await;
    assert_eq!(
        b.partition_count("late").await.unwrap(),
        Some(DEFAULT_PARTITIONS)
    );
    assert!(matches!(poll(&mut c).await, ConsumerEvent::Assigned(v) if v.len() == 8));
    send(&b, "late", None, "hello").await;
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    assert_eq!(rs[0].value.as_deref(), Some(&b"hello"[..]));

    let mut latest = b
        .subscribe(SubscribeOptions {
            group: "other".into(),
            topics: vec!["late".into()],
            offset_reset: OffsetReset::Latest,
        })
        .await
        .unwrap();
    assert!(matches!(
        poll(&mut latest).await,
        ConsumerEvent::Assigned(_)
    ));
    assert_eq!(poll_for(&mut latest, Duration::from_millis(50)).await, None);
    send(&b, "late", None, "new").await;
    let ConsumerEvent::Records(rs) = poll(&mut latest).await else {
        panic!("expected records")
    };
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].value.as_deref(), Some(&b"new"[..]));
}

#[tokio::test]
async fn assigned_consumer_reads_from_zero_without_group() {
    let b = broker();
    for i in 0..5 {
        send_to(&b, "a", 2, &i.to_string()).await;
    }
    let mut c = b.assign(vec![tp("a", 2)]).await.unwrap();
    assert_eq!(
        poll(&mut c).await,
        ConsumerEvent::Assigned(vec![tp("a", 2)])
    );
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    assert_eq!(
        rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    c.commit(&[(tp("a", 2), 5)]).await.unwrap();
    assert_eq!(c.committed(&tp("a", 2)).await.unwrap(), None);
    // A missing topic is created with enough partitions.
    let mut r = b.assign(vec![tp("reply", 11)]).await.unwrap();
    assert_eq!(b.partition_count("reply").await.unwrap(), Some(12));
    assert_eq!(
        poll(&mut r).await,
        ConsumerEvent::Assigned(vec![tp("reply", 11)])
    );
    send_to(&b, "reply", 11, "r").await;
    assert!(matches!(poll(&mut r).await, ConsumerEvent::Records(v) if v.len() == 1));
}

#[tokio::test]
async fn try_enqueue_appends_at_once() {
    let b = broker();
    b.create_topic(&TopicSpec::new("q", 1)).await.unwrap();
    let mut r = ProducerRecord::new("q", "v");
    r.partition = Some(0);
    match b.try_enqueue(r).unwrap() {
        Enqueued::Delivered(md) => assert_eq!((md.partition, md.offset), (0, 0)),
        other => panic!("expected Delivered, got {other:?}"),
    }
    assert_eq!(b.end_offset(&tp("q", 0)), Some(1));
    let mut bad = ProducerRecord::new("q", "v");
    bad.partition = Some(3);
    assert!(
        b.try_enqueue(bad).is_err(),
        "a missing partition is an error"
    );
}

/// Read records of one partition until `n` were seen; returns the offsets.
async fn drain(c: &mut Box<dyn Consumer>, n: usize) -> Vec<i64> {
    let mut offsets = Vec::new();
    while offsets.len() < n {
        match poll(c).await {
            ConsumerEvent::Records(rs) => offsets.extend(rs.iter().map(|r| r.offset)),
            ConsumerEvent::Assigned(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    offsets
}

#[tokio::test]
async fn committed_records_are_freed_in_chunks() {
    let b = broker();
    b.create_topic(&TopicSpec::new("r", 1)).await.unwrap();
    let total = 3 * RETENTION_CHUNK + 10;
    for i in 0..total {
        send_to(&b, "r", 0, &i.to_string()).await;
    }
    let mut c = join(&b, "g", "r").await;
    assert_eq!(c.commit_interval(), Some(COMMIT_INTERVAL));
    drain(&mut c, total).await;
    // Read but not committed: everything is kept.
    assert_eq!(b.start_offset(&tp("r", 0)), Some(0));
    let half = (RETENTION_CHUNK + RETENTION_CHUNK / 2) as i64;
    c.commit(&[(tp("r", 0), half)]).await.unwrap();
    assert_eq!(b.start_offset(&tp("r", 0)), Some(RETENTION_CHUNK as i64));
    c.commit(&[(tp("r", 0), total as i64)]).await.unwrap();
    // The newest chunk stays, whole chunks below the commit go.
    assert_eq!(
        b.start_offset(&tp("r", 0)),
        Some(3 * RETENTION_CHUNK as i64)
    );
    assert_eq!(b.end_offset(&tp("r", 0)), Some(total as i64));
    drop(c);
    // The same group resumes at its commit; a new group starts at the
    // oldest retained record, as after Kafka's retention.
    send_to(&b, "r", 0, "next").await;
    let mut again = join(&b, "g", "r").await;
    assert_eq!(drain(&mut again, 1).await, vec![total as i64]);
    let mut late = join(&b, "late", "r").await;
    let offsets = drain(&mut late, 11).await;
    assert_eq!(offsets[0], 3 * RETENTION_CHUNK as i64);
}

#[tokio::test]
async fn records_are_kept_for_every_group_and_assigned_reader() {
    let b = broker();
    b.create_topic(&TopicSpec::new("k", 1)).await.unwrap();
    let total = 2 * RETENTION_CHUNK + 1;
    for i in 0..total {
        send_to(&b, "k", 0, &i.to_string()).await;
    }
    let mut fast = join(&b, "fast", "k").await;
    let _slow = join(&b, "slow", "k").await; // never reads nor commits
    drain(&mut fast, total).await;
    fast.commit(&[(tp("k", 0), total as i64)]).await.unwrap();
    assert_eq!(b.start_offset(&tp("k", 0)), Some(0), "`slow` needs them");

    // Without groups, an assigned reader frees what it has read.
    b.create_topic(&TopicSpec::new("a", 1)).await.unwrap();
    for i in 0..total {
        send_to(&b, "a", 0, &i.to_string()).await;
    }
    assert_eq!(b.start_offset(&tp("a", 0)), Some(0), "no reader yet: kept");
    let mut reader = b.assign(vec![tp("a", 0)]).await.unwrap();
    drain(&mut reader, total).await;
    assert_eq!(
        b.start_offset(&tp("a", 0)),
        Some(2 * RETENTION_CHUNK as i64)
    );
}

#[tokio::test]
async fn batches_are_bounded_and_fair() {
    let b = broker();
    b.create_topic(&TopicSpec::new("f", 2)).await.unwrap();
    for _ in 0..2000 {
        send_to(&b, "f", 0, "busy").await;
    }
    for _ in 0..10 {
        send_to(&b, "f", 1, "quiet").await;
    }
    let mut c = b.assign(vec![tp("f", 0), tp("f", 1)]).await.unwrap();
    poll(&mut c).await;
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    assert_eq!(rs.len(), MAX_BATCH);
    assert_eq!(rs.iter().filter(|r| r.partition == 1).count(), 10);
    let mut next = [0i64; 2];
    let mut total = rs.len();
    for r in &rs {
        assert_eq!(r.offset, next[r.partition as usize]);
        next[r.partition as usize] += 1;
    }
    while total < 2010 {
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        assert!(rs.len() <= MAX_BATCH);
        for r in &rs {
            assert_eq!(r.offset, next[r.partition as usize]);
            next[r.partition as usize] += 1;
        }
        total += rs.len();
    }
    assert_eq!(next, [2000, 10]);
}

#[tokio::test]
async fn named_brokers_are_shared_by_name() {
    let a1 = MemoryBroker::shared("memtest-a");
    let a2 = MemoryBroker::shared("memtest-a");
    let other = MemoryBroker::shared("memtest-b");
    assert!(Arc::ptr_eq(&a1, &a2));
    assert!(!Arc::ptr_eq(&a1, &other));
    assert_eq!(a1.url(), "memory://memtest-a");
    assert_eq!(MemoryBroker::named("").url(), "memory://");
    let via_url = super::super::connect("memory://memtest-a", &[]).unwrap();
    let via_named = MemoryBroker::named("memtest-a");
    assert_eq!(
        Arc::as_ptr(&via_url) as *const (),
        Arc::as_ptr(&a1) as *const ()
    );
    assert_eq!(
        Arc::as_ptr(&via_named) as *const (),
        Arc::as_ptr(&a1) as *const ()
    );
    via_url
        .create_topic(&TopicSpec::new("only-a", 3))
        .await
        .unwrap();
    assert_eq!(a2.partition_count("only-a").await.unwrap(), Some(3));
    let b_url = super::super::connect("memory://memtest-b", &[]).unwrap();
    assert_eq!(b_url.partition_count("only-a").await.unwrap(), None);
    assert_ne!(MemoryBroker::new().url(), MemoryBroker::new().url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_producers_and_group_consumers() {
    let b = broker();
    b.create_topic(&TopicSpec::new("c", 8)).await.unwrap();
    // Both consumers commit after every batch, like an app, and run
    // until the group as a whole has seen everything.
    let total = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let mut c = join(&b, "g", "c").await;
        let total = total.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let start = std::time::Instant::now();
            while total.load(Ordering::SeqCst) < 20_000 {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "consumer timed out"
                );
                match timeout(Duration::from_millis(20), c.poll()).await {
                    Ok(Ok(ConsumerEvent::Records(rs))) => {
                        total.fetch_add(rs.len(), Ordering::SeqCst);
                        let mut next = BTreeMap::new();
                        for r in rs {
                            next.insert(r.topic_partition(), r.offset + 1);
                            seen.push((r.partition, r.offset));
                        }
                        let offsets: Vec<_> = next.into_iter().collect();
                        c.commit(&offsets).await.unwrap();
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => panic!("{e}"),
                    Err(_) => {}
                }
            }
            (c, seen)
        }));
    }
    let mut producers = Vec::new();
    for t in 0..4 {
        let b = b.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..5000 {
                send(&b, "c", Some(&format!("{t}-{i}")), "v").await;
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let mut all = BTreeSet::new();
    let mut consumers = Vec::new();
    for t in tasks {
        let (c, seen) = timeout(Duration::from_secs(15), t).await.unwrap().unwrap();
        assert!(!seen.is_empty(), "one consumer got nothing");
        consumers.push(c);
        for s in seen {
            assert!(all.insert(s), "duplicate {s:?}");
        }
    }
    assert_eq!(all.len(), 20_000);
}
