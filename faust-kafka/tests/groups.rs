//! Consumer groups on librdkafka's mock cluster: what is particular to
//! Kafka's consumer (records buffered when a revocation comes, drop without
//! close, close times). Splitting, hand-over, commits and resuming are
//! checked by the conformance suite (tests/conformance.rs).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use faust_core::transport::{ConsumerEvent, Transport};
use faust_core::ProducerRecord;

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
