//! What `#[timer]` declares: registered timers, added to an app by
//! `registered_app`, run while it runs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use faust::App;

static TICKS: AtomicU32 = AtomicU32::new(0);

/// Counts its runs.
#[faust::timer(interval = "20ms")]
async fn counting() -> faust::Result<()> {
    TICKS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

static LED: AtomicU32 = AtomicU32::new(0);

/// Runs on the leader, given the app; named explicitly.
#[faust::timer(interval = 0.02, on_leader, name = "leading")]
async fn led(app: App) -> anyhow::Result<()> {
    anyhow::ensure!(app.is_leader(), "an on_leader timer ran off the leader");
    LED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[test]
fn timers_are_registered_with_their_settings() {
    let app = faust::app_builder("timers-registered")
        .broker(format!("memory://timers-registered-{}", std::process::id()))
        .build()
        .unwrap();
    faust::Registry::collect().unwrap().add_all(&app).unwrap();
    let timers: Vec<(String, Duration, bool)> = app
        .timers()
        .iter()
        .map(|t| (t.name().to_string(), t.interval(), t.is_on_leader()))
        .collect();
    assert_eq!(
        timers,
        vec![
            ("counting".into(), Duration::from_millis(20), false),
            ("leading".into(), Duration::from_millis(20), true),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_timers_run_while_the_app_runs() {
    let app = faust::app_builder("timers-run")
        .broker(format!("memory://timers-run-{}", std::process::id()))
        .build()
        .unwrap();
    faust::Registry::collect().unwrap().add_all(&app).unwrap();
    app.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while TICKS.load(Ordering::SeqCst) < 3 || LED.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both timers ran three times");
    assert!(app.crash_reason().is_none(), "{:?}", app.crash_reason());
    app.stop().await.unwrap();
}
