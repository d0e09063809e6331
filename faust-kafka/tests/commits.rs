//! A commit waiting for the group coordinator never holds up records: on
//! librdkafka's mock cluster, the coordinator's broker goes down while the
//! partition's leader stays up.

mod common;

use std::time::Duration;

use common::*;
use faust_core::transport::{ConsumerEvent, Transport};
use faust_core::ProducerRecord;
use rdkafka::mocking::{MockCluster, MockCoordinator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_keep_coming_while_a_commit_waits_for_the_coordinator() {
    init_tracing();
    let mock = MockCluster::new(2).expect("mock cluster");
    let topic = unique("t");
    mock.create_topic(&topic, 1, 1).unwrap();
    mock.partition_leader(&topic, 0, Some(1)).unwrap();
    let group = unique("g");
    mock.coordinator(MockCoordinator::Group(group.clone()), 2)
        .unwrap();
    let t = transport(&mock);
    let mut c = subscribe(&t, &group, &[&topic]).await;
    assert_eq!(
        next(&mut c).await,
        ConsumerEvent::Assigned(vec![tp(&topic, 0)])
    );
    let send = |i: i64| {
        let (t, topic) = (t.clone(), topic.clone());
        async move {
            let mut record = ProducerRecord::new(topic, format!("{i}"));
            record.partition = Some(0);
            t.send(record).await.unwrap()
        }
    };
    send(0).await;
    let ConsumerEvent::Records(first) = next(&mut c).await else {
        panic!("records expected");
    };
    assert_eq!(first.len(), 1);

    // The coordinator is gone: a commit waits for it.
    mock.broker_down(2).unwrap();
    let mut commit = c.start_commit(&[(tp(&topic, 0), 1)]).expect("started");
    for i in 1..4 {
        send(i).await;
    }
    let mut got = 0;
    while got < 3 {
        match next_within(&mut c, Duration::from_secs(2)).await {
            Some(ConsumerEvent::Records(r)) => got += r.len(),
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("records held up while a commit waits: {got} of 3 arrived"),
        }
    }
    let pending = tokio::time::timeout(Duration::from_millis(10), &mut commit).await;
    assert!(pending.is_err(), "the commit waited for the coordinator");

    // The coordinator is back: the commit (or its retry) lands.
    mock.broker_up(2).unwrap();
    if within(20, "the commit ends", &mut commit).await.is_err() {
        within(20, "the retried commit", c.commit(&[(tp(&topic, 0), 4)]))
            .await
            .unwrap();
    }
    within(20, "close", c.close(Duration::from_secs(10)))
        .await
        .unwrap();
}
