//! Consumer groups on librdkafka's mock cluster: commits, resuming, two
//! members splitting partitions, hand-over on leave, and the revocation
//! handshake.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::*;
use faust_core::transport::{Consumer, ConsumerEvent, Transport};
use faust_core::{ProducerRecord, TopicPartition};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_a_new_member_resumes_at_the_committed_offset() {
    let mock = mock();
    let topic = topic(&mock, 1);
    let group = unique("g");
    let t = transport(&mock);
    for i in 0..10 {
        t.send(ProducerRecord::new(topic.clone(), format!("{i}")))
            .await
            .unwrap();
    }
    let mut c = subscribe(&t, &group, &[&topic]).await;
    assert_eq!(
        next(&mut c).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0)])
    );
    let mut got = Vec::new();
    while got.len() < 10 {
        match next(&mut c).await {
            ConsumerEvent::Records(r) => got.extend(r.into_iter().map(|r| r.offset)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    // Only the first six are "processed".
    c.commit(&[(tp(&topic, 0), 6)]).await.unwrap();
    assert_eq!(c.committed(&tp(&topic, 0)).await.unwrap(), Some(6));
    let started = Instant::now();
    within(15, "close", c.close(Duration::from_secs(10)))
        .await
        .unwrap();
    eprintln!("close took {:?}", started.elapsed());

    let mut c = subscribe(&t, &group, &[&topic]).await;
    assert_eq!(c.committed(&tp(&topic, 0)).await.unwrap(), Some(6));
    assert_eq!(
        next(&mut c).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0)])
    );
    match next(&mut c).await {
        ConsumerEvent::Records(r) => assert_eq!(r[0].offset, 6),
        other => panic!("unexpected {other:?}"),
    }
    c.close(Duration::from_secs(10)).await.unwrap();

    // Another group starts from the beginning.
    let mut other = subscribe(&t, &unique("g"), &[&topic]).await;
    assert!(matches!(next(&mut other).await, ConsumerEvent::Assigned(_)));
    match next(&mut other).await {
        ConsumerEvent::Records(r) => assert_eq!(r[0].offset, 0),
        e => panic!("unexpected {e:?}"),
    }
    other.close(Duration::from_secs(10)).await.unwrap();
}

/// A member driven by the test: tracks its assignment, checks that no
/// record arrives for a partition it does not own, commits after every
/// batch and on revocation.
struct Member {
    name: &'static str,
    consumer: Box<dyn Consumer>,
    owned: BTreeSet<TopicPartition>,
    /// Next offset to commit per partition.
    position: BTreeMap<TopicPartition, i64>,
    seen: Vec<(TopicPartition, i64)>,
    assigned_events: usize,
    revoked_events: usize,
}

impl Member {
    fn new(name: &'static str, consumer: Box<dyn Consumer>) -> Self {
        Self {
            name,
            consumer,
            owned: BTreeSet::new(),
            position: BTreeMap::new(),
            seen: Vec::new(),
            assigned_events: 0,
            revoked_events: 0,
        }
    }

    /// Handle at most one event arriving within `d`.
    async fn step(&mut self, d: Duration) {
        let Some(event) = next_within(&mut self.consumer, d).await else {
            return;
        };
        match event {
            ConsumerEvent::Records(records) => {
                for r in &records {
                    let tp = r.topic_partition();
                    assert!(
                        self.owned.contains(&tp),
                        "{}: record {tp}@{} of a partition it does not own {:?}",
                        self.name,
                        r.offset,
                        self.owned
                    );
                    self.seen.push((tp.clone(), r.offset));
                    self.position.insert(tp, r.offset + 1);
                }
                let offsets: Vec<_> = self.position.iter().map(|(k, v)| (k.clone(), *v)).collect();
                if let Err(e) = self.consumer.commit(&offsets).await {
                    eprintln!("{}: commit failed: {e}", self.name);
                }
            }
            ConsumerEvent::Revoked(tps) => {
                self.revoked_events += 1;
                let offsets: Vec<_> = tps
                    .iter()
                    .filter_map(|tp| self.position.get(tp).map(|o| (tp.clone(), *o)))
                    .collect();
                // The mock cluster refuses commits while a joining member
                // waits (real Kafka accepts them until the rejoin): the test
                // commits everything before each rebalance it causes.
                if !offsets.is_empty() {
                    if let Err(e) = self.consumer.commit(&offsets).await {
                        eprintln!("{}: commit on revoke failed: {e}", self.name);
                    }
                }
                for tp in &tps {
                    assert!(
                        self.owned.remove(tp),
                        "{}: revoked {tp} it did not own",
                        self.name
                    );
                    self.position.remove(tp);
                }
            }
            ConsumerEvent::Assigned(tps) => {
                self.assigned_events += 1;
                for tp in tps {
                    assert!(
                        self.owned.insert(tp.clone()),
                        "{}: assigned {tp} twice",
                        self.name
                    );
                }
            }
        }
    }
}

async fn drive(
    members: &mut [&mut Member],
    secs: u64,
    what: &str,
    done: impl Fn(&[&mut Member]) -> bool,
) {
    within(secs, what, async {
        while !done(members) {
            for m in members.iter_mut() {
                m.step(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
}

fn all_partitions(topic: &str, n: i32) -> BTreeSet<TopicPartition> {
    (0..n).map(|p| tp(topic, p)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_partitions_and_hand_over_on_leave() {
    let mock = mock();
    let topic = topic(&mock, 4);
    let group = unique("g");
    // Small batches and a small mailbox, so that revocations find records
    // fetched but not yet handed out.
    let url = format!(
        "{}&faust.batch.max.records=5&faust.buffer.batches=2",
        url(&mock)
    );
    let t = faust_kafka::KafkaTransport::from_url(&url).unwrap();
    let produce = |from: usize, to: usize| {
        let t = &t;
        let topic = topic.clone();
        async move {
            for i in from..to {
                t.send(ProducerRecord {
                    partition: Some((i % 4) as i32),
                    ..ProducerRecord::new(topic.clone(), format!("{i}"))
                })
                .await
                .unwrap();
            }
        }
    };
    produce(0, 400).await;

    let started = Instant::now();
    let mut a = Member::new("a", subscribe(&t, &group, &[&topic]).await);
    drive(&mut [&mut a], 60, "a reads everything", |m| {
        m[0].owned.len() == 4 && m[0].seen.len() == 400
    })
    .await;
    eprintln!("a read 400 after {:?}", started.elapsed());
    // Everything a read is committed: a second member joins.
    let mut b = Member::new("b", subscribe(&t, &group, &[&topic]).await);
    drive(&mut [&mut a, &mut b], 60, "split", |m| {
        m[0].owned.len() == 2 && m[1].owned.len() == 2
    })
    .await;
    eprintln!("split after {:?}", started.elapsed());
    assert!(
        a.revoked_events >= 1,
        "a saw Revoked before its new assignment"
    );
    assert!(b.assigned_events >= 1);
    let union: BTreeSet<_> = a.owned.union(&b.owned).cloned().collect();
    assert_eq!(union, all_partitions(&topic, 4));
    assert!(a.owned.is_disjoint(&b.owned));

    produce(400, 600).await;
    drive(&mut [&mut a, &mut b], 60, "all 600 seen", |m| {
        m[0].seen.len() + m[1].seen.len() >= 600
    })
    .await;
    assert!(
        !a.seen[400..].is_empty() && !b.seen.is_empty(),
        "both members read"
    );
    eprintln!("600 read after {:?}", started.elapsed());

    // a leaves: b gets every partition after its own revocation.
    let b_revoked = b.revoked_events;
    let closing = Instant::now();
    let Member {
        consumer,
        seen: a_seen,
        ..
    } = a;
    within(20, "close a", consumer.close(Duration::from_secs(15)))
        .await
        .unwrap();
    eprintln!("a closed in {:?}", closing.elapsed());
    drive(&mut [&mut b], 60, "b owns all", |m| m[0].owned.len() == 4).await;
    assert!(
        b.revoked_events > b_revoked,
        "b saw Revoked first (eager rebalance)"
    );
    eprintln!("b owns all after {:?}", started.elapsed());
    produce(600, 800).await;
    drive(&mut [&mut b], 60, "all 800 seen", |m| {
        m[0].seen.len() + a_seen.len() >= 800
    })
    .await;
    eprintln!("hand-over done after {:?}", started.elapsed());

    // Exactly once: every record seen by exactly one member.
    let mut all: Vec<_> = a_seen.iter().chain(&b.seen).cloned().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no record delivered twice");
    assert_eq!(total, 800);
    let a_set: HashSet<_> = a_seen.iter().collect();
    assert!(b.seen.iter().all(|r| !a_set.contains(r)));
    b.consumer.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_waits_for_the_runtime_and_drops_buffered_records() {
    // `a` owns both partitions and has records waiting in its mailbox when
    // `b` joins. It does not poll for a while: the hand-over must wait for
    // it, and once it polls it gets `Revoked` with nothing of the revoked
    // partitions after it.
    let mock = mock();
    let topic = topic(&mock, 2);
    let group = unique("g");
    let url = format!(
        "{}&faust.batch.max.records=10&faust.buffer.batches=2",
        url(&mock)
    );
    let t = faust_kafka::KafkaTransport::from_url(&url).unwrap();
    for i in 0..200 {
        t.send(ProducerRecord {
            partition: Some(i % 2),
            ..ProducerRecord::new(topic.clone(), format!("{i}"))
        })
        .await
        .unwrap();
    }
    let mut a = subscribe(&t, &group, &[&topic]).await;
    assert_eq!(
        next(&mut a).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0), tp(&topic, 1)])
    );
    let first = match next(&mut a).await {
        ConsumerEvent::Records(r) => r,
        e => panic!("unexpected {e:?}"),
    };
    let last = first.last().unwrap().clone();
    a.commit(&[(last.topic_partition(), last.offset + 1)])
        .await
        .unwrap();
    let mut b = subscribe(&t, &group, &[&topic]).await;
    // b cannot get anything while a holds on (a does not poll). The mock
    // cluster elects a leader without a member that has not rejoined after
    // session.timeout.ms - 1 s (real Kafka waits max.poll.interval.ms):
    // hold for less than that.
    let b_waits = Instant::now();
    let b_first = next_within(&mut b, Duration::from_secs(2)).await;
    assert_eq!(b_first, None, "b got partitions before a released them");
    // a polls: buffered batches are dropped, Revoked comes first.
    let mut a_events = Vec::new();
    loop {
        let e = next(&mut a).await;
        let revoked = matches!(e, ConsumerEvent::Revoked(_));
        a_events.push(e);
        if revoked {
            break;
        }
        assert!(a_events.len() < 50, "no Revoked: {a_events:?}");
    }
    let before: usize = a_events
        .iter()
        .map(|e| match e {
            ConsumerEvent::Records(r) => r.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(
        a_events.last(),
        Some(&ConsumerEvent::Revoked(vec![tp(&topic, 0), tp(&topic, 1)]))
    );
    // The batches a had buffered were fetched before the revocation: dropped.
    assert_eq!(before, 0, "records handed out with the revocation pending");
    // Commit what a processed, then poll: that releases the partitions.
    // (The mock cluster refuses commits while a joining member waits, with
    // REBALANCE_IN_PROGRESS; real Kafka accepts them until the rejoin.)
    let committed = a.commit(&[(last.topic_partition(), last.offset + 1)]).await;
    eprintln!("commit on revoke: {committed:?}");
    let mut a_owned = BTreeSet::new();
    let mut b_owned = BTreeSet::new();
    let mut b_records = Vec::new();
    within(60, "split after release", async {
        while !(a_owned.len() == 1 && b_owned.len() == 1) {
            if let Some(e) = next_within(&mut a, Duration::from_millis(20)).await {
                match e {
                    ConsumerEvent::Assigned(tps) => a_owned.extend(tps),
                    ConsumerEvent::Records(r) => {
                        assert!(r.iter().all(|r| a_owned.contains(&r.topic_partition())))
                    }
                    // A slow rejoin on a busy machine makes the mock
                    // rebalance once more.
                    ConsumerEvent::Revoked(tps) => tps.iter().for_each(|tp| {
                        assert!(a_owned.remove(tp));
                    }),
                }
            }
            if let Some(e) = next_within(&mut b, Duration::from_millis(20)).await {
                match e {
                    ConsumerEvent::Assigned(tps) => b_owned.extend(tps),
                    ConsumerEvent::Records(r) => {
                        assert!(r.iter().all(|r| b_owned.contains(&r.topic_partition())));
                        b_records.extend(r)
                    }
                    ConsumerEvent::Revoked(tps) => {
                        tps.iter().for_each(|tp| {
                            assert!(b_owned.remove(tp));
                        });
                        b_records.clear();
                    }
                }
            }
        }
    })
    .await;
    eprintln!(
        "b waited {:?}; a got {before} more records before Revoked",
        b_waits.elapsed()
    );
    assert_eq!(a_owned.len(), 1);
    assert_eq!(b_owned.len(), 1);
    // b starts its partition at a's commit (or 0 for the other partition).
    let b_tp = b_owned.iter().next().unwrap().clone();
    let b_start = within(30, "b records", async {
        loop {
            if let Some(r) = b_records.first() {
                return r.offset;
            }
            if let ConsumerEvent::Records(r) = next(&mut b).await {
                b_records.extend(r);
            }
        }
    })
    .await;
    let expected = if b_tp == last.topic_partition() {
        last.offset + 1
    } else {
        0
    };
    assert_eq!(
        b_start, expected,
        "b resumes {b_tp} at the committed offset"
    );
    let _ = tokio::join!(
        a.close(Duration::from_secs(10)),
        b.close(Duration::from_secs(10))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_member_without_close_releases_its_partitions() {
    let mock = mock();
    let topic = topic(&mock, 2);
    let group = unique("g");
    let t = transport(&mock);
    let mut a = subscribe(&t, &group, &[&topic]).await;
    assert!(matches!(next(&mut a).await, ConsumerEvent::Assigned(_)));
    let mut b = subscribe(&t, &group, &[&topic]).await;
    // a never polls again and is dropped: b still gets everything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dropped = Instant::now();
    drop(a);
    assert!(
        dropped.elapsed() < Duration::from_millis(100),
        "drop does not block"
    );
    let mut owned = BTreeSet::new();
    within(60, "b owns all", async {
        while owned.len() < 2 {
            match next(&mut b).await {
                ConsumerEvent::Assigned(tps) => owned.extend(tps),
                ConsumerEvent::Revoked(tps) => tps.iter().for_each(|tp| {
                    owned.remove(tp);
                }),
                ConsumerEvent::Records(_) => {}
            }
        }
    })
    .await;
    b.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_consumer_reports_stopped_and_commands_fail_fast() {
    let mock = mock();
    let topic = topic(&mock, 1);
    let t = transport(&mock);
    let c = subscribe(&t, &unique("g"), &[&topic]).await;
    let started = Instant::now();
    c.close(Duration::from_secs(10)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}
