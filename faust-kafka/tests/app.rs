//! A faust-core app with agents on librdkafka's mock cluster, through
//! `faust_kafka::factory`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use faust_core::{AgentSpec, App, Error, Stream};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_with_agents_runs_on_kafka() {
    let mock = mock();
    let reply_to = unique("f-reply");
    mock.create_topic(&reply_to, 1, 1).unwrap();
    let app = App::builder(unique("app"))
        .broker(url(&mock))
        .scheme("kafka", faust_kafka::factory)
        .reply_to(&reply_to)
        .topic_partitions(4)
        .commit_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let double = app
        .add_agent(AgentSpec::handler("double", |x: i64| async move {
            Ok::<_, Error>(x * 2)
        }))
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counter = app
        .add_agent(AgentSpec::consumer("count", move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while let Some(v) = s.next().await {
                    let _ = tx.send(v);
                }
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    // The mock cluster has no CreateTopics: the app finds them existing.
    mock.create_topic(double.topic(), 4, 1).unwrap();
    mock.create_topic(counter.topic(), 4, 1).unwrap();

    let started = Instant::now();
    within(60, "start", app.start()).await.unwrap();
    eprintln!("started in {:?}", started.elapsed());
    let asked = Instant::now();
    let answer: i64 = within(60, "ask", double.ask(&21i64)).await.unwrap();
    assert_eq!(answer, 42);
    eprintln!("first ask answered in {:?}", asked.elapsed());
    let asked = Instant::now();
    for i in 0..20i64 {
        let r: i64 = within(30, "ask", double.ask(&i)).await.unwrap();
        assert_eq!(r, 2 * i);
    }
    eprintln!("20 more asks in {:?}", asked.elapsed());

    const N: i64 = 500;
    let sent = Instant::now();
    for i in 0..N {
        counter.send(&i).await.unwrap();
    }
    let mut seen = HashSet::new();
    within(60, "N events", async {
        while seen.len() < N as usize {
            let v = rx.recv().await.unwrap();
            assert!(seen.insert(v), "{v} processed twice");
        }
    })
    .await;
    eprintln!("{N} events sent and processed in {:?}", sent.elapsed());
    // Nothing more (no duplicates) after a while.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "an event was processed twice");

    let stopping = Instant::now();
    within(30, "stop", app.stop()).await.unwrap();
    eprintln!("stopped in {:?}", stopping.elapsed());

    // Committed on stop: a new app in the same group gets nothing again.
    let again = App::builder(app.id())
        .broker(url(&mock))
        .scheme("kafka", faust_kafka::factory)
        .reply_to(&reply_to)
        .build()
        .unwrap();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let counter2 = again
        .add_agent(AgentSpec::consumer("count", move |mut s: Stream<i64>| {
            let tx = tx2.clone();
            async move {
                while let Some(v) = s.next().await {
                    let _ = tx.send(v);
                }
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    assert_eq!(counter2.topic(), counter.topic());
    within(60, "restart", again.start()).await.unwrap();
    counter2.send(&-1i64).await.unwrap();
    let first = within(30, "new event", rx2.recv()).await.unwrap();
    assert_eq!(first, -1, "old events were not committed");
    within(30, "stop", again.stop()).await.unwrap();
}
