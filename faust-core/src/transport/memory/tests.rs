//! Tests of the embedded broker.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use tokio::time::timeout;

use crate::transport::testkit::{drive_until, sizes, Member};
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
        patterns: Vec::new(),
        offset_reset: OffsetReset::Earliest,
    })
    .await
    .expect("subscribe")
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

/// The conformance suite on the embedded broker: one test per check.
mod conformance {
    use super::*;
    use crate::transport::testkit::{self, Harness};

    struct Memory(Arc<MemoryBroker>);

    impl Harness for Memory {
        fn transport(&self) -> Arc<dyn Transport> {
            self.0.clone()
        }

        fn deadline(&self) -> Duration {
            Duration::from_secs(10)
        }
    }

    macro_rules! checks {
        ($($name:ident),* $(,)?) => {
            $(
                #[tokio::test]
                async fn $name() {
                    testkit::$name(&Memory(broker())).await
                }
            )*
        };
    }

    crate::for_each_conformance_check!(checks);

    #[tokio::test]
    async fn run_all_runs_every_check() {
        testkit::run_all(&|| Memory(broker())).await;
    }
}

#[tokio::test]
async fn ready_records_come_in_one_batch_and_end_offsets_follow_sends() {
    let b = broker();
    b.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
    for i in 0..10 {
        send(&b, "t", None, &format!("v{i}")).await;
    }
    let mut c = b.assign(vec![tp("t", 0)]).await.unwrap();
    poll(&mut c).await;
    let ConsumerEvent::Records(rs) = poll(&mut c).await else {
        panic!("expected records")
    };
    assert_eq!(rs.len(), 10, "everything ready comes at once");
    send(&b, "t", None, "late").await;
    assert_eq!(b.end_offset(&tp("t", 0)), Some(11));
}

#[tokio::test]
async fn topics_are_created_automatically() {
    let b = Arc::new(MemoryBroker::new().with_default_partitions(3));
    b.create_topic(&TopicSpec::new("x", 5)).await.unwrap();
    send(&b, "auto", None, "v").await;
    assert_eq!(b.partition_count("auto").await.unwrap(), Some(3));
    assert_eq!(broker().partition_count("auto").await.unwrap(), None);
    let mut r = ProducerRecord::new("x", "v");
    r.partition = Some(5);
    assert!(matches!(b.send(r).await, Err(Error::Broker(_))));
    assert_eq!(b.topics(), vec!["auto".to_string(), "x".to_string()]);
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

fn member(c: Box<dyn Consumer>) -> Member {
    Member::new("m", c)
}

/// The embedded broker's assignment: contiguous ranges in join order, and
/// only the partitions that move are revoked (the exact events).
#[tokio::test]
async fn range_assignment_moves_only_the_partitions_that_change_owner() {
    let b = broker();
    b.create_topic(&TopicSpec::new("s", 8)).await.unwrap();
    let d = Duration::from_secs(10);
    let mut m1 = member(join(&b, "g", "s").await);
    drive_until(&mut [&mut m1], d, "m1 owns all", |ms| sizes(ms) == [8]).await;
    let mut m2 = member(join(&b, "g", "s").await);
    drive_until(&mut [&mut m1, &mut m2], d, "4/4", |ms| sizes(ms) == [4, 4]).await;
    assert_eq!(m1.assigned, (0..4).map(|p| tp("s", p)).collect());
    assert_eq!(m2.assigned, (4..8).map(|p| tp("s", p)).collect());
    assert_eq!(
        m1.events[1],
        format!(
            "revoked {:?}",
            (4..8).map(|p| tp("s", p)).collect::<Vec<_>>()
        )
    );
    let mut m3 = member(join(&b, "g", "s").await);
    drive_until(&mut [&mut m1, &mut m2, &mut m3], d, "3/3/2", |ms| {
        sizes(ms) == [3, 3, 2]
    })
    .await;
    assert_eq!(m1.assigned, (0..3).map(|p| tp("s", p)).collect());
    assert_eq!(m2.assigned, (3..6).map(|p| tp("s", p)).collect());
    assert_eq!(m3.assigned, (6..8).map(|p| tp("s", p)).collect());
    // m2 lost 6 and 7, then gained 3: revoke strictly before assign.
    let tail: Vec<&String> = m2.events.iter().rev().take(2).collect();
    assert_eq!(
        tail[1],
        &format!("revoked {:?}", vec![tp("s", 6), tp("s", 7)])
    );
    assert_eq!(tail[0], &format!("assigned {:?}", vec![tp("s", 3)]));
    assert_eq!(
        m3.events,
        vec![format!("assigned {:?}", vec![tp("s", 6), tp("s", 7)])]
    );
}

/// The hand-over of the embedded broker: only the moving partition is
/// revoked, the old owner gets nothing more, the commit is the group's,
/// and the old owner's commits of it are refused afterwards (Kafka fences
/// by generation only, not by partition).
#[tokio::test]
async fn handoff_revokes_only_the_moving_partition_and_fences_the_old_owner() {
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
    assert_eq!(poll_for(&mut c, Duration::from_millis(100)).await, None);
    assert_eq!(poll(&mut a).await, ConsumerEvent::Revoked(vec![tp("h", 1)]));
    a.commit(&[(tp("h", 1), 6)]).await.unwrap();
    assert_eq!(poll_for(&mut a, Duration::from_millis(20)).await, None);
    assert_eq!(
        poll(&mut c).await,
        ConsumerEvent::Assigned(vec![tp("h", 1)])
    );
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
async fn subscribe_creates_missing_topics_with_the_default_count() {
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
}

#[tokio::test]
async fn assign_creates_missing_topics_with_enough_partitions() {
    let b = broker();
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
