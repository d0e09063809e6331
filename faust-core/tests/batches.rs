//! Stream operations through real agents on the embedded broker: batches
//! (`take_batch`, `take_batch_events`, the batch handler form), manual acks (`noack`),
//! `events()`, and combinators, each checked against what gets committed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faust_core::transport::memory::MemoryBroker;
use faust_core::{AgentSpec, App, Error, Event, Stream, SupervisorStrategy, TopicPartition};
use futures::StreamExt as _;
use tokio::sync::{mpsc, Notify};

use common::{nothing_more, take, within};

/// A private named embedded broker: its URL and the broker, to read the
/// committed offsets.
fn broker(id: &str) -> (String, Arc<MemoryBroker>) {
    let name = format!("batches-{id}-{}", uuid::Uuid::new_v4());
    let broker = MemoryBroker::shared(&name);
    (format!("memory://{name}"), broker)
}

/// An app `id` on `url`, with commits every 20 ms (the embedded broker's
/// cadence) and a short stop timeout.
fn app_on(id: &str, url: &str) -> App {
    App::builder(id)
        .broker(url)
        .stop_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// The offset `group` committed for partition 0 of `topic`.
fn committed(broker: &MemoryBroker, group: &str, topic: &str) -> Option<i64> {
    broker.committed_offset(group, &TopicPartition::new(topic, 0))
}

/// Wait (at most 5 s) until `group` committed `offset` of `topic`.
async fn wait_committed(broker: &MemoryBroker, group: &str, topic: &str, offset: i64) {
    let reached = tokio::time::timeout(Duration::from_secs(5), async {
        while committed(broker, group, topic) != Some(offset) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "offset {offset} never committed; committed: {:?}",
        committed(broker, group, topic)
    );
}

/// Several commit cadences pass: whatever could be committed has been.
async fn some_commit_cadences() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn send_all(agent: &faust_core::Agent, values: std::ops::Range<i64>) {
    for v in values {
        agent.send(&v).await.unwrap();
    }
}

// ----- take ------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn take_batch_gives_full_batches_then_what_arrived_within_the_time() {
    let app = common::app("take-size").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("batcher", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(batch) = s.take_batch(4, Duration::from_secs(5)).await {
                        let _ = tx.send((batch, tokio::time::Instant::now()));
                    }
                    Ok::<_, Error>(())
                }
            })
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    let sent = tokio::time::Instant::now();
    send_all(&agent, 0..10).await;
    let got = take(&mut rx, 3).await;
    let batches: Vec<Vec<i64>> = got.iter().map(|(b, _)| b.clone()).collect();
    assert_eq!(
        batches,
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
    assert!(
        got[1].1 - sent < Duration::from_secs(1),
        "full batches come at once"
    );
    assert!(
        got[2].1 - sent >= Duration::from_secs(5),
        "the short batch waits `within` for more"
    );
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn take_batch_events_closes_a_batch_within_the_time_after_its_first_event() {
    let app = common::app("take-within").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("batcher", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(batch) = s.take_batch_events(100, Duration::from_secs(1)).await {
                        let seen: Vec<(i64, i64)> = batch
                            .iter()
                            .map(|e: &Event<i64>| (e.value, e.message().offset()))
                            .collect();
                        let _ = tx.send((seen, tokio::time::Instant::now()));
                    }
                    Ok::<_, Error>(())
                }
            })
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    let sent = tokio::time::Instant::now();
    send_all(&agent, 10..13).await;
    let (first, at) = take(&mut rx, 1).await.remove(0);
    assert_eq!(first, vec![(10, 0), (11, 1), (12, 2)]);
    let waited = at - sent;
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(2),
        "closed one `within` after its first event, not at `max`: {waited:?}"
    );
    // Nothing arrives for a long while: no empty batch, the stream waits.
    nothing_more(&mut rx).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    send_all(&agent, 13..15).await;
    let (second, _) = take(&mut rx, 1).await.remove(0);
    assert_eq!(second, vec![(13, 3), (14, 4)]);
    app.stop().await.unwrap();
}

/// The batch's events are committed only once the function asks for the
/// next batch, never while it processes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_not_committed_before_the_function_is_done_with_it() {
    let (url, broker) = broker("uncommitted");
    let app = app_on("uncommitted", &url);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let agent = app
        .add_agent(
            AgentSpec::consumer("slow-batches", move |mut s: Stream<i64>| {
                let (tx, gate) = (tx.clone(), gate.clone());
                async move {
                    while let Some(batch) = s.take_batch(5, Duration::from_secs(30)).await {
                        let _ = tx.send(batch);
                        gate.notified().await;
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic("rows")
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    send_all(&agent, 0..10).await;
    assert_eq!(take(&mut rx, 1).await, vec![vec![0, 1, 2, 3, 4]]);
    some_commit_cadences().await;
    let now = committed(&broker, "uncommitted", "rows");
    assert!(
        now.unwrap_or(0) == 0,
        "committed {now:?} while the first batch is processed"
    );
    release.notify_one();
    assert_eq!(take(&mut rx, 1).await, vec![vec![5, 6, 7, 8, 9]]);
    wait_committed(&broker, "uncommitted", "rows", 5).await;
    some_commit_cadences().await;
    assert_eq!(
        committed(&broker, "uncommitted", "rows"),
        Some(5),
        "the second batch is not committed while it is processed"
    );
    release.notify_one();
    wait_committed(&broker, "uncommitted", "rows", 10).await;
    app.stop().await.unwrap();
}

/// The batching a user wrote by hand (a timeout around `next()`) acked
/// each event as the next was read and lost 5 of 20 events to a crash in
/// the middle of a batch. With `take`, the restarted actor gets the whole
/// batch again, nothing is committed past it meanwhile, and all 20 are
/// processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_batch_processes_the_whole_batch_again_and_loses_nothing() {
    let (url, broker) = broker("crash");
    let app = app_on("crash", &url);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let crashed = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let errs = errors.clone();
    let b = broker.clone();
    let agent = app
        .add_agent(
            AgentSpec::consumer("loader", move |mut s: Stream<i64>| {
                let (tx, crashed, broker) = (tx.clone(), crashed.clone(), b.clone());
                async move {
                    while let Some(batch) = s.take_batch(5, Duration::from_secs(30)).await {
                        let seen = committed(&broker, "crash", "loads");
                        let _ = tx.send((batch.clone(), seen));
                        if batch.contains(&7) && !crashed.swap(true, Ordering::SeqCst) {
                            return Err(Error::config("the database went away"));
                        }
                    }
                    Ok(())
                }
            })
            .topic("loads")
            .partitions(1)
            .on_error(move |_, err| errs.lock().unwrap().push(err.to_string())),
        )
        .unwrap();
    app.start().await.unwrap();
    send_all(&agent, 0..20).await;
    let got = take(&mut rx, 5).await;
    let batches: Vec<Vec<i64>> = got.iter().map(|(b, _)| b.clone()).collect();
    assert_eq!(
        batches,
        vec![
            vec![0, 1, 2, 3, 4],
            vec![5, 6, 7, 8, 9],
            vec![5, 6, 7, 8, 9],
            vec![10, 11, 12, 13, 14],
            vec![15, 16, 17, 18, 19],
        ],
        "the crashed batch comes again, whole and first"
    );
    let (_, seen_on_retry) = got[2];
    assert!(
        seen_on_retry.unwrap_or(0) <= 5,
        "committed {seen_on_retry:?} past the unfinished batch"
    );
    wait_committed(&broker, "crash", "loads", 20).await;
    assert_eq!(agent.stats().restarts(), 1);
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "the crash is reported once: {errors:?}");
    assert!(errors[0].contains("the database went away"), "{errors:?}");
    nothing_more(&mut rx).await;
    app.stop().await.unwrap();
}

/// No actor takes over (a forfeiting supervisor): the unfinished batch is
/// never committed, and the next run of the app processes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_left_by_a_crash_is_processed_by_the_next_run_of_the_app() {
    let (url, broker) = broker("forfeit");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let loader = move |run: &'static str| {
        let tx = tx.clone();
        AgentSpec::consumer("loader", move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while let Some(batch) = s.take_batch(5, Duration::from_secs(30)).await {
                    let _ = tx.send((run, batch.clone()));
                    if run == "first" && batch.contains(&7) {
                        return Err(Error::config("crash"));
                    }
                }
                Ok(())
            }
        })
        .topic("loads")
        .partitions(1)
        .supervisor(SupervisorStrategy::ForfeitOneForOne)
    };
    let first = app_on("forfeit", &url);
    let agent = first.add_agent(loader("first")).unwrap();
    first.start().await.unwrap();
    send_all(&agent, 0..10).await;
    assert_eq!(
        take(&mut rx, 2).await,
        vec![
            ("first", vec![0, 1, 2, 3, 4]),
            ("first", vec![5, 6, 7, 8, 9])
        ]
    );
    wait_committed(&broker, "forfeit", "loads", 5).await;
    within(5, "the actor forfeited", async {
        while agent.actor_count() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    some_commit_cadences().await;
    assert_eq!(committed(&broker, "forfeit", "loads"), Some(5));
    first.stop().await.unwrap();
    drop(first);

    let second = app_on("forfeit", &url);
    second.add_agent(loader("second")).unwrap();
    second.start().await.unwrap();
    assert_eq!(
        take(&mut rx, 1).await,
        vec![("second", vec![5, 6, 7, 8, 9])]
    );
    wait_committed(&broker, "forfeit", "loads", 10).await;
    second.stop().await.unwrap();
}

// ----- the batch handler -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ask_to_a_batch_handler_gets_its_own_result() {
    let app = common::app("batch-asks").build().unwrap();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = sizes.clone();
    let agent = app
        .add_agent(
            AgentSpec::batch_handler(
                "square",
                10,
                Duration::from_millis(500),
                move |xs: Vec<i64>| {
                    seen.lock().unwrap().push(xs.len());
                    async move { Ok::<_, Error>(xs.iter().map(|x| x * x).collect::<Vec<i64>>()) }
                },
            )
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    let asks = (0..25i64).map(|x| {
        let agent = agent.clone();
        async move { (x, agent.ask::<_, i64>(&x).await) }
    });
    let answers = within(10, "every ask answered", futures::future::join_all(asks)).await;
    for (x, answer) in answers {
        assert_eq!(answer.unwrap(), x * x, "the answer to {x}");
    }
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 25);
    assert!(sizes.iter().all(|n| *n <= 10), "{sizes:?}");
    assert!(sizes.iter().any(|n| *n > 1), "asks were batched: {sizes:?}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_handler_with_too_few_results_answers_every_ask_with_an_error() {
    let (url, broker) = broker("mismatch");
    let app = app_on("mismatch", &url);
    let errors = Arc::new(Mutex::new(Vec::new()));
    let errs = errors.clone();
    let agent = app
        .add_agent(
            AgentSpec::batch_handler(
                "forgetful",
                10,
                Duration::from_millis(500),
                |xs: Vec<i64>| async move {
                    // One result short.
                    Ok::<_, Error>(xs.into_iter().skip(1).collect::<Vec<i64>>())
                },
            )
            .topic("forgetful")
            .partitions(1)
            .on_error(move |_, err| errs.lock().unwrap().push(err.to_string())),
        )
        .unwrap();
    app.start().await.unwrap();
    let asks = (0..6i64).map(|x| {
        let agent = agent.clone();
        async move { agent.ask::<_, i64>(&x).await }
    });
    let answers = within(10, "every ask answered", futures::future::join_all(asks)).await;
    for answer in answers {
        let err = answer.expect_err("no result, no success");
        assert!(
            matches!(&err, Error::Remote { message, .. } if message.contains("one result per event")),
            "{err}"
        );
    }
    let errors = errors.lock().unwrap().clone();
    assert!(!errors.is_empty() && errors.len() <= 6, "{errors:?}");
    assert!(errors[0].contains("results for a batch of"), "{errors:?}");
    // The failed events are settled (answered, acked), not left hanging.
    wait_committed(&broker, "mismatch", "forgetful", 6).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_handler_answers_every_ask_with_its_error() {
    let app = common::app("batch-error").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::batch_handler(
            "refuses",
            10,
            Duration::from_millis(200),
            |_: Vec<i64>| async move { Err::<Vec<i64>, _>(Error::config("no capacity")) },
        ))
        .unwrap();
    app.start().await.unwrap();
    let asks = (0..4i64).map(|x| {
        let agent = agent.clone();
        async move { agent.ask::<_, i64>(&x).await }
    });
    for answer in within(10, "every ask answered", futures::future::join_all(asks)).await {
        let err = answer.expect_err("the handler failed");
        assert!(err.to_string().contains("no capacity"), "{err}");
    }
    assert_eq!(agent.stats().crashes(), 0, "an error is not a crash");
    app.stop().await.unwrap();
}

// ----- manual acks -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_noack_events_are_committed_only_once_acked() {
    let (url, broker) = broker("noack");
    let app = app_on("noack", &url);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let step = Arc::new(Notify::new());
    let next_step = step.clone();
    let agent = app
        .add_agent(
            AgentSpec::consumer("manual", move |s: Stream<i64>| {
                let (tx, step) = (tx.clone(), next_step.clone());
                async move {
                    let mut s = s.noack();
                    let mut held = Vec::new();
                    while held.len() < 3 {
                        held.extend(s.next_event().await);
                    }
                    let _ = tx.send("read three");
                    step.notified().await;
                    assert!(s.ack_event(&held[2]), "the third is held");
                    assert!(!s.ack_event(&held[2]), "acked once");
                    let _ = tx.send("acked the third");
                    step.notified().await;
                    s.ack_event(&held[0]);
                    s.ack_event(&held[1]);
                    let _ = tx.send("acked all");
                    while s.next().await.is_some() {
                        s.ack();
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic("manual")
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    send_all(&agent, 0..3).await;
    assert_eq!(take(&mut rx, 1).await, vec!["read three"]);
    some_commit_cadences().await;
    assert!(
        committed(&broker, "noack", "manual").unwrap_or(0) == 0,
        "nothing acked, nothing committed"
    );
    step.notify_one();
    assert_eq!(take(&mut rx, 1).await, vec!["acked the third"]);
    some_commit_cadences().await;
    assert!(
        committed(&broker, "noack", "manual").unwrap_or(0) == 0,
        "not past the unacked first and second"
    );
    step.notify_one();
    assert_eq!(take(&mut rx, 1).await, vec!["acked all"]);
    wait_committed(&broker, "noack", "manual", 3).await;
    send_all(&agent, 3..5).await;
    wait_committed(&broker, "noack", "manual", 5).await;
    app.stop().await.unwrap();
}

// ----- events() and combinators ----------------------------------------------

#[tokio::test]
async fn events_gives_each_event_with_its_message() {
    let app = common::app("events").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("described", move |mut s: Stream<String>| {
                let tx = tx.clone();
                async move {
                    let mut events = s.events();
                    while let Some(event) = events.next().await {
                        let key: Option<String> = event.key()?;
                        let m = event.message();
                        let _ =
                            tx.send((event.value.clone(), key, m.topic().to_string(), m.offset()));
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic("described")
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    agent.send_keyed(&"k1", &"a").await.unwrap();
    agent.send_keyed(&"k2", &"b").await.unwrap();
    let got = take(&mut rx, 2).await;
    assert_eq!(
        got,
        vec![
            ("a".into(), Some("k1".into()), "described".into(), 0),
            ("b".into(), Some("k2".into()), "described".into(), 1),
        ]
    );
    app.stop().await.unwrap();
}

/// `filter` and `enumerate` (of `futures::StreamExt`) read one event at a
/// time: a skipped event is acked when the next is read, and the event
/// being processed is not committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_and_enumerate_keep_acks_right() {
    let (url, broker) = broker("enumerate");
    let app = app_on("enumerate", &url);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let agent = app
        .add_agent(
            AgentSpec::consumer("evens", move |s: Stream<i64>| {
                let (tx, gate) = (tx.clone(), gate.clone());
                async move {
                    let mut evens = s.filter(|v| std::future::ready(v % 2 == 0)).enumerate();
                    while let Some((i, v)) = evens.next().await {
                        let _ = tx.send((i, v));
                        if v == 8 {
                            gate.notified().await;
                        }
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic("numbers")
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    send_all(&agent, 0..10).await;
    assert_eq!(
        take(&mut rx, 5).await,
        vec![(0, 0), (1, 2), (2, 4), (3, 6), (4, 8)]
    );
    // 8 is being processed: committed up to it, not past it.
    wait_committed(&broker, "enumerate", "numbers", 8).await;
    some_commit_cadences().await;
    assert_eq!(committed(&broker, "enumerate", "numbers"), Some(8));
    release.notify_one();
    // 9 is skipped, and acked when the filter asks for the next event.
    wait_committed(&broker, "enumerate", "numbers", 10).await;
    app.stop().await.unwrap();
}
