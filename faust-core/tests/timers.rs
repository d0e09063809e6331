//! Timers on the embedded broker: their cadence, failures, stop, and the
//! leader election of `on_leader`.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{app, within};
use faust_core::{App, Error, TimerSpec};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A timer sending the time of each of its runs.
fn ticking(name: &str, every: Duration, tx: mpsc::UnboundedSender<Instant>) -> TimerSpec {
    TimerSpec::new(name, every, move |_app: App| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Instant::now());
            Ok::<_, Error>(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_timer_runs_every_interval_from_one_interval_after_start() {
    let app = app("tick").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.add_timer(ticking("tick", Duration::from_secs(5), tx))
        .unwrap();
    let started = Instant::now();
    app.start().await.unwrap();
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(within(60, "a tick", rx.recv()).await.unwrap());
    }
    let after: Vec<u64> = runs
        .iter()
        .map(|t| t.duration_since(started).as_secs())
        .collect();
    assert_eq!(after, vec![5, 10, 15]);
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_or_panicking_run_is_reported_and_the_timer_runs_again() {
    let app = app("flaky").build().unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counted = runs.clone();
    app.add_timer(TimerSpec::new(
        "flaky",
        Duration::from_secs(1),
        move |_app: App| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                match n {
                    0 => Err(Error::config("first run fails")),
                    1 => panic!("second run panics"),
                    _ => {
                        let _ = tx.send(n);
                        Ok(())
                    }
                }
            }
        },
    ))
    .unwrap();
    app.start().await.unwrap();
    assert_eq!(within(60, "the third run", rx.recv()).await, Some(2));
    assert!(app.crash_reason().is_none());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_timer_failing_faster_than_the_restart_budget_crashes_the_app() {
    let app = app("failing")
        .max_restarts(3)
        .restart_window(Duration::from_secs(60))
        .build()
        .unwrap();
    app.add_timer(TimerSpec::new(
        "broken",
        Duration::from_millis(10),
        |_app: App| async { Err::<(), _>(Error::config("no database")) },
    ))
    .unwrap();
    app.start().await.unwrap();
    let reason = within(10, "the crash", app.wait_crashed()).await;
    let text = reason.to_string();
    assert!(
        text.contains("timer `broken` failed more than 3 times") && text.contains("no database"),
        "{text}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn stop_lets_a_running_tick_finish_and_no_tick_follows() {
    let app = app("slow").build().unwrap();
    let (began_tx, mut began) = mpsc::unbounded_channel();
    let finished = Arc::new(AtomicU32::new(0));
    let done = finished.clone();
    let release = Arc::new(tokio::sync::Notify::new());
    let go = release.clone();
    app.add_timer(TimerSpec::new(
        "slow",
        Duration::from_millis(20),
        move |_app: App| {
            let (began_tx, done, go) = (began_tx.clone(), done.clone(), go.clone());
            async move {
                let _ = began_tx.send(());
                go.notified().await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(())
            }
        },
    ))
    .unwrap();
    app.start().await.unwrap();
    within(10, "the first tick", began.recv()).await.unwrap();
    let stopping = tokio::spawn({
        let app = app.clone();
        async move { app.stop().await }
    });
    // The tick is still running: stop waits for it.
    tokio::task::yield_now().await;
    assert!(!stopping.is_finished());
    release.notify_one();
    within(10, "stop", stopping).await.unwrap().unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    assert!(began.try_recv().is_err(), "a tick began after stop");
}

#[tokio::test]
async fn an_on_leader_timer_runs_on_one_worker_and_moves_when_it_stops() {
    let url = format!("memory://leader-{}", uuid::Uuid::new_v4());
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let worker = |tag: &'static str| {
        let app = App::builder("elected").broker(&url).build().unwrap();
        let tx = tx.clone();
        app.add_timer(
            TimerSpec::new("lead", Duration::from_millis(20), move |_app: App| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(tag);
                    Ok::<_, Error>(())
                }
            })
            .on_leader(true),
        )
        .unwrap();
        app
    };
    let (a, b) = (worker("a"), worker("b"));
    a.start().await.unwrap();
    assert_eq!(within(10, "a's tick", rx.recv()).await, Some("a"));
    assert!(a.is_leader());
    b.start().await.unwrap();
    // Once the group settled, only the leader ticks.
    within(10, "one leader of two", async {
        while a.is_leader() == b.is_leader() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let leader = if a.is_leader() { "a" } else { "b" };
    while rx.try_recv().is_ok() {}
    for _ in 0..5 {
        assert_eq!(within(10, "a tick", rx.recv()).await, Some(leader));
    }
    let (stopped, other, left) = if leader == "a" {
        (&a, &b, "b")
    } else {
        (&b, &a, "a")
    };
    stopped.stop().await.unwrap();
    assert!(!stopped.is_leader());
    within(10, "the other worker's tick", async {
        while rx.recv().await != Some(left) {}
    })
    .await;
    assert!(other.is_leader());
    other.stop().await.unwrap();
}

#[tokio::test]
async fn timers_without_on_leader_do_not_join_a_leader_topic() {
    let app = app("plain").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.add_timer(ticking("plain", Duration::from_millis(10), tx))
        .unwrap();
    app.start().await.unwrap();
    within(10, "a tick", rx.recv()).await.unwrap();
    assert!(!app.is_leader());
    let leader_topic = app.transport().partition_count("plain-__assignor-__leader");
    assert_eq!(leader_topic.await.unwrap(), None);
    app.stop().await.unwrap();
}

#[test]
fn bad_timers_are_refused_with_a_reason() {
    let app = app("bad").build().unwrap();
    let noop = |_app: App| async { Ok::<_, Error>(()) };
    let err = app
        .add_timer(TimerSpec::new("zero", Duration::ZERO, noop))
        .unwrap_err();
    assert!(err.to_string().contains("greater than zero"), "{err}");
    app.add_timer(TimerSpec::new("once", Duration::from_secs(1), noop))
        .unwrap();
    let err = app
        .add_timer(TimerSpec::new("once", Duration::from_secs(2), noop))
        .unwrap_err();
    assert!(err.to_string().contains("already added"), "{err}");
    assert_eq!(app.timers().len(), 1);
}
