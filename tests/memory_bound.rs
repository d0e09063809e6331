//! The embedded broker's memory bound (`memory://?max_bytes=`), through the
//! public API: a producer far ahead of its agent is held back at the bound
//! and loses nothing, agents' own outputs are never held back, a send that
//! finds no room in time fails with a clear error, and bad settings are
//! refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faust::transport::memory::MemoryBroker;
use faust::{AgentSpec, App, Error, Sink};
use tokio::sync::watch;

/// A unique broker name per test (brokers are process-wide by name).
fn broker_name(test: &str) -> String {
    format!("memory-bound-{test}-{}", std::process::id())
}

/// Fail the test instead of hanging.
async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// ~100 bytes of JSON per event.
fn body(i: u64) -> String {
    format!("{i:0>90}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_far_ahead_of_its_agent_waits_at_max_bytes_and_nothing_is_lost() {
    const MAX: usize = 1 << 20;
    const EVENTS: u64 = 50_000; // ~10 MB of records: ten times the bound
    let name = broker_name("held");
    let app = App::builder("held")
        .broker(format!("memory://{name}?max_bytes=1MiB"))
        .build()
        .unwrap();
    let broker = MemoryBroker::shared(&name);
    assert_eq!(broker.max_bytes(), MAX);

    // The agent waits for the gate before its first event.
    let (open, gate) = watch::channel(false);
    let seen = Arc::new(AtomicU64::new(0));
    let sum = Arc::new(AtomicU64::new(0));
    let (s, t) = (seen.clone(), sum.clone());
    let agent = app
        .add_agent(AgentSpec::handler("slow", move |v: String| {
            let (s, t, mut gate) = (s.clone(), t.clone(), gate.clone());
            async move {
                gate.wait_for(|open| *open).await.expect("gate kept");
                t.fetch_add(v.parse::<u64>().unwrap(), Ordering::Relaxed);
                s.fetch_add(1, Ordering::Relaxed);
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    app.start().await.unwrap();

    let sender = agent.clone();
    let producer = tokio::spawn(async move {
        for i in 0..EVENTS {
            sender.send(&body(i)).await?;
        }
        Ok::<_, Error>(())
    });
    // The producer fills the broker up to the bound, then waits.
    within("the broker fills to its bound", 20, async {
        while broker.retained_bytes() < MAX {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // Slack: each of the 8 partitions counts its newest records in steps
    // of 64 KiB, and one record may pass the check before the count.
    let slack = 8 * 64 * 1024 + 1024;
    for _ in 0..20 {
        assert!(
            broker.retained_bytes() <= MAX + slack,
            "{} bytes retained, bound {MAX}",
            broker.retained_bytes()
        );
        assert!(!producer.is_finished(), "the producer was not held back");
        tokio::task::yield_now().await;
    }

    open.send(true).unwrap();
    within("the producer finishes", 60, producer)
        .await
        .unwrap()
        .unwrap();
    within("the agent sees every event", 60, async {
        while seen.load(Ordering::Relaxed) < EVENTS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(seen.load(Ordering::Relaxed), EVENTS);
    assert_eq!(sum.load(Ordering::Relaxed), EVENTS * (EVENTS - 1) / 2);
    within("the broker frees what was committed", 10, async {
        while broker.retained_bytes() >= MAX {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_of_agents_go_through_a_full_broker() {
    // A bound far below what is in flight: only external sends wait, so
    // the chain keeps moving (holding the relay's outputs would deadlock:
    // its input could not be committed to free room).
    const EVENTS: u64 = 20_000;
    let name = broker_name("chain");
    let app = App::builder("chain")
        .broker(format!("memory://{name}?max_bytes=64KiB"))
        .build()
        .unwrap();
    let counted = Arc::new(AtomicU64::new(0));
    let c = counted.clone();
    app.add_agent(
        AgentSpec::handler("count", move |_: String| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                Ok::<_, Error>(())
            }
        })
        .topic("chain-out"),
    )
    .unwrap();
    let relay = app
        .add_agent(
            AgentSpec::handler("relay", |v: String| async move { Ok::<_, Error>(v) }).sink(Sink::<
                String,
            >::topic(
                "chain-out",
            )),
        )
        .unwrap();
    app.start().await.unwrap();
    within("every event is sent", 60, async {
        for i in 0..EVENTS {
            relay.send(&body(i)).await.unwrap();
        }
    })
    .await;
    within("every event reaches the end of the chain", 60, async {
        while counted.load(Ordering::Relaxed) < EVENTS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_send_that_finds_no_room_in_time_fails_naming_the_bound() {
    // Nobody reads the topic, so its records are all kept.
    let name = broker_name("block");
    let app = App::builder("block")
        .broker(format!("memory://{name}?max_bytes=16KiB&max_block_ms=100"))
        .build()
        .unwrap();
    let mut sent = 0u32;
    let err = within("the send gives up", 10, async {
        loop {
            match app.send_to("unread", &body(sent.into())).await {
                Ok(_) => sent += 1,
                Err(e) => break e,
            }
        }
    })
    .await;
    assert!(sent > 0, "nothing was sent before the broker filled");
    let text = err.to_string();
    assert!(
        matches!(err, Error::Timeout { .. }) && text.contains("max_bytes=16384"),
        "{text}"
    );
    assert!(text.contains("topic `unread`"), "{text}");
}

#[test]
fn bad_memory_settings_are_refused() {
    for (url, says) in [
        ("memory://?max_bytes=lots", "`max_bytes=lots` is not a size"),
        ("memory://?max_bytes=5TB", "`max_bytes=5TB` is not a size"),
        (
            "memory://?max_block_ms=-1",
            "`max_block_ms=-1` is not a number",
        ),
        ("memory://x?maxbytes=1", "unknown setting `maxbytes`"),
    ] {
        let err = App::builder("bad").broker(url).build().err();
        let err = match err {
            Some(e) => e,
            None => {
                // Apps connect when they start.
                let rt = tokio::runtime::Runtime::new().unwrap();
                let app = App::builder("bad").broker(url).build().unwrap();
                rt.block_on(app.start()).expect_err(url)
            }
        };
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
}
