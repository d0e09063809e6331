//! App lifecycle on the embedded broker: group membership, commits,
//! graceful shutdown, restart from committed offsets, configuration errors.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{nothing_more, take, within};
use faust_core::{AgentSpec, App, Error, Stream};
use tokio::sync::{mpsc, Notify};

fn collector(name: &str, tx: mpsc::UnboundedSender<(String, i64)>, tag: &str) -> AgentSpec {
    let tag = tag.to_string();
    AgentSpec::consumer(name, move |mut s: Stream<i64>| {
        let tx = tx.clone();
        let tag = tag.clone();
        async move {
            while let Some(v) = s.next().await {
                let _ = tx.send((tag.clone(), v));
            }
            Ok::<_, Error>(())
        }
    })
    .topic("numbers")
}

fn broker() -> String {
    format!("memory://app-{}", uuid::Uuid::new_v4())
}

#[tokio::test]
async fn two_apps_in_one_group_split_the_partitions() {
    let url = broker();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = App::builder("grp").broker(&url).build().unwrap();
    let b = App::builder("grp").broker(&url).build().unwrap();
    let agent_a = a.add_agent(collector("c", tx.clone(), "a")).unwrap();
    b.add_agent(collector("c", tx, "b")).unwrap();
    a.start().await.unwrap();
    b.start().await.unwrap();
    within(10, "rebalanced to 4 partitions each", async {
        // Isolated actors are not used here; watch the group through events instead.
        loop {
            for i in 0..8 {
                agent_a
                    .send_with(&-1i64, faust_core::SendOptions::default().partition(i))
                    .await
                    .unwrap();
            }
            let got = take(&mut rx, 8).await;
            let from_a = got.iter().filter(|(t, _)| t == "a").count();
            if from_a == 4 {
                break;
            }
        }
    })
    .await;
    for i in 0..200i64 {
        agent_a
            .send_with(
                &i,
                faust_core::SendOptions::default().partition((i % 8) as i32),
            )
            .await
            .unwrap();
    }
    let got = take(&mut rx, 200).await;
    nothing_more(&mut rx).await;
    let values: HashSet<i64> = got.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        values.len(),
        200,
        "each event exactly once across both apps"
    );
    let from_a = got.iter().filter(|(t, _)| t == "a").count();
    assert_eq!(from_a, 100, "partitions split 4/4");
    b.stop().await.unwrap();
    // b left: a takes every partition.
    for i in 0..80i64 {
        agent_a
            .send_with(
                &(1000 + i),
                faust_core::SendOptions::default().partition((i % 8) as i32),
            )
            .await
            .unwrap();
    }
    let got = take(&mut rx, 80).await;
    assert!(got.iter().all(|(t, _)| t == "a"));
    a.stop().await.unwrap();
}

#[tokio::test]
async fn a_restarted_app_resumes_from_committed_offsets() {
    let url = broker();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = App::builder("resume").broker(&url).build().unwrap();
    let agent = first
        .add_agent(collector("c", tx.clone(), "first"))
        .unwrap();
    first.start().await.unwrap();
    for i in 0..50i64 {
        agent.send(&i).await.unwrap();
    }
    take(&mut rx, 50).await;
    first.stop().await.unwrap();

    let second = App::builder("resume").broker(&url).build().unwrap();
    let agent = second.add_agent(collector("c", tx, "second")).unwrap();
    for i in 50..60i64 {
        agent.send(&i).await.unwrap();
    }
    second.start().await.unwrap();
    let mut got: Vec<i64> = take(&mut rx, 10)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    got.sort();
    assert_eq!(
        got,
        (50..60).collect::<Vec<_>>(),
        "only what was not committed"
    );
    nothing_more(&mut rx).await;
    second.stop().await.unwrap();
}

#[tokio::test]
async fn stop_lets_the_in_flight_event_finish_and_commits_it() {
    let url = broker();
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = App::builder("graceful").broker(&url).build().unwrap();
    let (s2, r2) = (started.clone(), release.clone());
    let agent = app
        .add_agent(
            AgentSpec::consumer("slow", move |mut s: Stream<i64>| {
                let (started, release, tx) = (s2.clone(), r2.clone(), tx.clone());
                async move {
                    while let Some(v) = s.next().await {
                        started.notify_one();
                        release.notified().await;
                        let _ = tx.send(v);
                    }
                    Ok::<_, Error>(())
                }
            })
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    agent.send(&1).await.unwrap();
    within(5, "event in flight", started.notified()).await;
    let stopping = tokio::spawn({
        let app = app.clone();
        async move { app.stop().await }
    });
    tokio::task::yield_now().await;
    release.notify_one();
    within(10, "stop", stopping).await.unwrap().unwrap();
    assert_eq!(
        take(&mut rx, 1).await,
        vec![1],
        "the in-flight event finished"
    );

    // A new app in the group does not see it again.
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let again = App::builder("graceful").broker(&url).build().unwrap();
    let a2 = again
        .add_agent(
            AgentSpec::consumer("slow", move |mut s: Stream<i64>| {
                let tx = tx2.clone();
                async move {
                    while let Some(v) = s.next().await {
                        let _ = tx.send(v);
                    }
                    Ok::<_, Error>(())
                }
            })
            .partitions(1),
        )
        .unwrap();
    again.start().await.unwrap();
    a2.send(&2).await.unwrap();
    assert_eq!(take(&mut rx2, 1).await, vec![2]);
    nothing_more(&mut rx2).await;
    again.stop().await.unwrap();
}

#[tokio::test]
async fn no_commit_past_an_in_flight_event_with_concurrency() {
    // robinhood#682: offset 1 finished while offset 0 was still processing.
    let url = broker();
    let app = App::builder("inflight")
        .broker(&url)
        .stop_timeout(Duration::from_millis(200))
        .commit_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("pair", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(v) = s.next().await {
                        if v == 0 {
                            std::future::pending::<()>().await; // stuck forever
                        }
                        let _ = tx.send(v);
                    }
                    Ok::<_, Error>(())
                }
            })
            .concurrency(2)
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    agent.send(&0).await.unwrap();
    agent.send(&1).await.unwrap();
    assert_eq!(take(&mut rx, 1).await, vec![1]);
    app.stop().await.unwrap(); // aborts the stuck actor after 200 ms

    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let again = App::builder("inflight").broker(&url).build().unwrap();
    again
        .add_agent(
            AgentSpec::consumer("pair", move |mut s: Stream<i64>| {
                let tx = tx2.clone();
                async move {
                    while let Some(v) = s.next().await {
                        let _ = tx.send(v);
                    }
                    Ok::<_, Error>(())
                }
            })
            .partitions(1),
        )
        .unwrap();
    again.start().await.unwrap();
    let got: Vec<i64> = take(&mut rx2, 2).await;
    assert_eq!(
        got,
        vec![0, 1],
        "the commit stayed at the unfinished offset 0"
    );
    again.stop().await.unwrap();
}

#[tokio::test]
async fn bad_configuration_gives_clear_errors() {
    let err = App::builder("x")
        .broker("nats://localhost")
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("no transport for scheme `nats`"),
        "{err}"
    );
    let err = App::builder("x")
        .broker("localhost:9092")
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected `memory://` or `kafka://host:port`"),
        "{err}"
    );
    let err = App::builder(" ").build().unwrap_err();
    assert!(err.to_string().contains("app id must not be empty"));
    let err = App::builder("x").topic_partitions(0).build().unwrap_err();
    assert!(err.to_string().contains("topic_partitions"));
}

#[tokio::test]
async fn default_topic_is_app_id_dash_qualname() {
    let app = App::builder("shop").broker(broker()).build().unwrap();
    let a = app
        .add_agent(
            AgentSpec::handler("count", |x: i64| async move { Ok::<_, Error>(x) })
                .qualname("shop::agents::count"),
        )
        .unwrap();
    assert_eq!(a.topic(), "shop-shop.agents.count");
    let b = app
        .add_agent(AgentSpec::handler("plain", |x: i64| async move {
            Ok::<_, Error>(x)
        }))
        .unwrap();
    assert_eq!(b.topic(), "shop-plain");
    let info = b.info();
    assert_eq!(info.concurrency, 1);
    assert!(info.use_reply_headers);
    assert_eq!(info.help, "");
    assert_eq!(info.value_codec, "json");
    // to_spec() keeps everything, use_reply_headers included (Faust's clone loses it).
    let other = App::builder("other").broker(broker()).build().unwrap();
    let spec = a.to_spec().use_reply_headers(false).concurrency(3);
    let c = other.add_agent(spec).unwrap();
    assert_eq!(c.topic(), "shop-shop.agents.count");
    assert_eq!(c.concurrency(), 3);
    assert!(!c.use_reply_headers());
    let kept = other.add_agent(b.to_spec().with_name("plain2")).unwrap();
    assert!(kept.use_reply_headers());
    assert!(!a.label().is_empty());
    assert_eq!(a.get_topic_names(), vec!["shop-shop.agents.count"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_agent_with_a_full_queue_does_not_block_a_rebalance() {
    // The conductor keeps polling while a delivery waits for queue space, so
    // it sees the revocation at once (not after the broker's 10 s deadline).
    let url = broker();
    let stalled = App::builder("stall")
        .broker(&url)
        .stream_buffer_maxsize(2)
        .rebalance_timeout(Duration::from_millis(300))
        .stop_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let agent = stalled
        .add_agent(
            AgentSpec::consumer("c", |mut s: Stream<i64>| async move {
                s.next().await;
                std::future::pending::<()>().await;
                Ok::<_, Error>(())
            })
            .topic("stall-topic")
            .partitions(2),
        )
        .unwrap();
    stalled.start().await.unwrap();
    for i in 0..100i64 {
        agent
            .send_with(
                &i,
                faust_core::SendOptions::default().partition((i % 2) as i32),
            )
            .await
            .unwrap();
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let helper = App::builder("stall").broker(&url).build().unwrap();
    helper
        .add_agent(
            AgentSpec::consumer("c", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(ev) = s.next_event().await {
                        let _ = tx.send(ev.message().partition());
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic("stall-topic")
            .partitions(2),
        )
        .unwrap();
    helper.start().await.unwrap();
    // Well under the broker's 10 s forced hand-over.
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        let mut n = Vec::new();
        while n.len() < 50 {
            n.push(rx.recv().await.unwrap());
        }
        n
    })
    .await
    .expect("the helper got its partition's 50 events promptly");
    assert!(
        got.iter().all(|p| *p == got[0]),
        "one partition moved: {got:?}"
    );
    helper.stop().await.unwrap();
    stalled.stop().await.unwrap();
}
