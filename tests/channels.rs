//! In-memory channels through the public API: agents reading a channel,
//! fed by `Channel::send`, by the reading agent's own RPC calls and by
//! sinks, next to topic agents; back-pressure, errors and what a stop does.
//! Kafka runs of the same shape are in the broker suite.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faust::{agent, AgentSpec, App, Error, SendOptions, Sink, Stream};
use tokio::sync::{mpsc, Barrier, Notify};

mod common;
use common::{app, within};

const SUITE: &str = "channels";

/// A handler agent answering `f(value)` that reports each value it gets.
fn reporting_handler<T: faust::Value + Clone, R: faust::Value>(
    name: &str,
    f: fn(T) -> R,
) -> (AgentSpec, mpsc::UnboundedReceiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let spec = AgentSpec::handler(name, move |x: T| {
        let tx = tx.clone();
        async move {
            tx.send(x.clone()).unwrap();
            Ok::<_, Error>(f(x))
        }
    });
    (spec, rx)
}

/// A value that cannot be encoded: it arrives only if nothing encodes it.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct Opaque(u32);

impl serde::Serialize for Opaque {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("Opaque is never encoded"))
    }
}

#[tokio::test]
async fn values_sent_to_a_channel_arrive_as_they_were_sent() {
    let app = app(SUITE, "as-sent");
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.add_agent(
        AgentSpec::consumer("read", move |mut s: Stream<Opaque>| {
            let tx = tx.clone();
            async move {
                while let Some(event) = s.next_event().await {
                    let m = event.message();
                    tx.send((
                        m.topic().to_string(),
                        m.partition(),
                        m.offset(),
                        event.value,
                    ))
                    .unwrap();
                }
                Ok::<_, Error>(())
            }
        })
        .channel("opaque"),
    )
    .unwrap();
    let channel = app.channel::<Opaque>("opaque").unwrap();
    assert_eq!(channel.readers(), ["read"]);
    within("start", app.start()).await.unwrap();
    for i in 0..3 {
        let meta = within("send", channel.send(Opaque(i))).await.unwrap();
        assert_eq!(
            (&*meta.topic, meta.partition, meta.offset),
            ("opaque", 0, i64::from(i))
        );
    }
    for i in 0..3 {
        let got = within("value", rx.recv()).await.unwrap();
        assert_eq!(got, ("opaque".to_string(), 0, i64::from(i), Opaque(i)));
    }
    let agent = app.agent("read").unwrap();
    assert!(agent.reads_channel());
    assert!(
        agent.get_topic_names().is_empty(),
        "a channel agent subscribes to no topic"
    );
    assert_eq!(agent.info().topic, "<LOCAL>");
    assert_eq!(agent.info().channel.as_deref(), Some("opaque"));
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn twelve_values_on_a_channel_with_concurrency_four_go_three_to_each_actor_in_order() {
    let app = app(SUITE, "c4");
    let barrier = Arc::new(Barrier::new(4));
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.add_agent(
        AgentSpec::consumer("work", move |mut stream: Stream<u32>| {
            let (barrier, tx) = (barrier.clone(), tx.clone());
            async move {
                while let Some(v) = stream.next().await {
                    tx.send((stream.concurrency_index().unwrap(), v)).unwrap();
                    // No actor takes a second value before each took one.
                    barrier.wait().await;
                }
                Ok::<_, Error>(())
            }
        })
        .channel("jobs")
        .concurrency(4),
    )
    .unwrap();
    let jobs = app.channel::<u32>("jobs").unwrap();
    within("start", app.start()).await.unwrap();
    for v in 0..12 {
        within("send", jobs.send(v)).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(within("all processed", rx.recv()).await.unwrap());
    }
    for index in 0..4 {
        let mine: Vec<u32> = seen
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(mine.len(), 3, "actor {index} got {mine:?} of {seen:?}");
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "in order: {mine:?}");
    }
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn a_channel_agent_answers_send_ask_and_join() {
    let app = app(SUITE, "rpc");
    let (double, mut rx) = reporting_handler("double", |x: i64| x * 2);
    app.add_agent(double.channel("numbers")).unwrap();
    within("start", app.start()).await.unwrap();
    let double = app.agent("double").unwrap();
    let answer: i64 = within("ask", double.ask(&21)).await.unwrap();
    assert_eq!(answer, 42);
    let all: Vec<i64> = within("join", double.join([1, 2, 3])).await.unwrap();
    assert_eq!(all, [2, 4, 6]);
    within("send", double.send(&5)).await.unwrap();
    within("cast", double.cast(&6)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(within("value", rx.recv()).await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3, 5, 6, 21]);
    let err = double
        .send_with(&1, SendOptions::default().partition(3))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no partitions"), "{err}");
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn every_agent_reading_a_channel_gets_every_value() {
    let app = app(SUITE, "fan-out");
    let (tx, mut rx) = mpsc::unbounded_channel();
    for name in ["a", "b"] {
        let tx = tx.clone();
        app.add_agent(
            AgentSpec::consumer(name, move |mut s: Stream<String>| {
                let tx = tx.clone();
                async move {
                    while let Some(v) = s.next().await {
                        tx.send((name, v)).unwrap();
                    }
                    Ok::<_, Error>(())
                }
            })
            .channel("news"),
        )
        .unwrap();
    }
    let news = app.channel::<String>("news").unwrap();
    within("start", app.start()).await.unwrap();
    within("send", news.send("hello".into())).await.unwrap();
    let mut got = vec![
        within("a or b", rx.recv()).await.unwrap(),
        within("a or b", rx.recv()).await.unwrap(),
    ];
    got.sort();
    assert_eq!(
        got,
        [("a", "hello".to_string()), ("b", "hello".to_string())]
    );
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn sinks_feed_a_channel_by_name_and_through_its_agent() {
    let app = app(SUITE, "sinks");
    let (total, mut rx) = reporting_handler("total", |x: u64| x);
    app.add_agent(total.channel("totals")).unwrap();
    // A topic agent whose results go to the channel, by name and by agent.
    app.add_agent(
        AgentSpec::handler("price", |x: u64| async move { Ok::<_, Error>(x * 10) })
            .sink(Sink::<u64>::channel("totals"))
            .sink(Sink::<u64>::agent("total")),
    )
    .unwrap();
    within("start", app.start()).await.unwrap();
    within("send", app.agent("price").unwrap().send(&4))
        .await
        .unwrap();
    assert_eq!(within("by name", rx.recv()).await.unwrap(), 40);
    assert_eq!(within("by agent", rx.recv()).await.unwrap(), 40);
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn a_sink_to_a_channel_that_does_not_exist_fails_the_start() {
    let app = app(SUITE, "no-channel");
    app.add_agent(
        AgentSpec::handler("price", |x: u64| async move { Ok::<_, Error>(x) })
            .sink(Sink::<u64>::channel("totlas")),
    )
    .unwrap();
    let err = within("start", app.start()).await.unwrap_err().to_string();
    assert!(err.contains("channel `totlas`"), "{err}");
}

#[tokio::test]
async fn bad_channel_declarations_are_refused_with_the_fix() {
    let app = app(SUITE, "bad");
    let reader = |name: &str| {
        AgentSpec::consumer(name, |mut s: Stream<u32>| async move {
            while s.next().await.is_some() {}
            Ok::<_, Error>(())
        })
    };
    let err = app
        .add_agent(reader("both").channel("c").topic("t"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot also have topics"), "{err}");
    let err = app
        .add_agent(reader("iso").channel("c").isolated_partitions(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("isolated partitions"), "{err}");
    let err = app
        .add_agent(
            reader("schema")
                .channel("c")
                .schema(faust::Schema::<String, u32>::new()),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot also have a schema"), "{err}");
    app.add_agent(reader("ok").channel("c")).unwrap();
    let err = app.channel::<String>("c").unwrap_err().to_string();
    assert!(
        err.contains("carries `u32`, not `alloc::string::String`"),
        "{err}"
    );
    // Sending before the app runs keeps nothing: an error, not a loss.
    let err = app.channel::<u32>("c").unwrap().send(1).await.unwrap_err();
    assert!(matches!(err, Error::Stopped(_)), "{err}");
    let err = app
        .channel::<u32>("nobody")
        .unwrap()
        .send(1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no agent reading it"), "{err}");
}

#[tokio::test]
async fn a_full_channel_blocks_the_sender_until_its_deadline_and_drops_nothing() {
    let app = App::builder("full")
        .broker(format!("memory://channels-full-{}", std::process::id()))
        .stream_buffer_maxsize(2)
        .build()
        .unwrap();
    let release = Arc::new(Notify::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = release.clone();
    app.add_agent(
        AgentSpec::handler("slow", move |x: u32| {
            let (release, tx) = (r.clone(), tx.clone());
            async move {
                tx.send(("taken", x)).unwrap();
                if x == 0 {
                    release.notified().await;
                }
                tx.send(("done", x)).unwrap();
                Ok::<_, Error>(())
            }
        })
        .channel("work"),
    )
    .unwrap();
    let work = app.channel::<u32>("work").unwrap();
    within("start", app.start()).await.unwrap();
    within("send 0", work.send(0)).await.unwrap();
    assert_eq!(within("taken", rx.recv()).await.unwrap(), ("taken", 0));
    // The actor is busy with 0: two values fill its queue...
    within("send 1", work.send(1)).await.unwrap();
    within("send 2", work.send(2)).await.unwrap();
    // ...and the third waits for room until its deadline.
    let opts = SendOptions::default().timeout(Duration::from_millis(100));
    let err = within("send 3", work.send_with(3, opts)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { what, .. } if what.contains("channel `work`")),
        "{err}"
    );
    release.notify_one();
    let mut done = Vec::new();
    while done.len() < 3 {
        if let ("done", x) = within("done", rx.recv()).await.unwrap() {
            done.push(x);
        }
    }
    assert_eq!(done, [0, 1, 2], "every value the channel took is processed");
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn values_left_in_a_channel_are_lost_when_the_app_stops() {
    let app = app(SUITE, "lost");
    let release = Arc::new(Notify::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = release.clone();
    app.add_agent(
        AgentSpec::handler("slow", move |x: u32| {
            let (release, tx) = (r.clone(), tx.clone());
            async move {
                tx.send(x).unwrap();
                if x == 0 {
                    release.notified().await;
                }
                Ok::<_, Error>(())
            }
        })
        .channel("work"),
    )
    .unwrap();
    let work = app.channel::<u32>("work").unwrap();
    within("start", app.start()).await.unwrap();
    within("send", work.send(0)).await.unwrap();
    assert_eq!(within("taken", rx.recv()).await.unwrap(), 0);
    for v in 1..=10 {
        within("send", work.send(v)).await.unwrap();
    }
    let stopping = tokio::spawn({
        let app = app.clone();
        async move { app.stop().await }
    });
    // Once the channel refuses values, the stop has dropped what waited.
    within("the channel refuses values", async {
        loop {
            match work.send(99).await {
                Err(Error::Stopped(_)) => break,
                Err(other) => panic!("{other}"),
                Ok(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    release.notify_one();
    within("stop", stopping).await.unwrap().unwrap();
    within("restart", app.start()).await.unwrap();
    within("send", work.send(100)).await.unwrap();
    assert_eq!(
        within("after restart", rx.recv()).await.unwrap(),
        100,
        "values queued at the stop are not delivered later"
    );
    within("stop", app.stop()).await.unwrap();
}

/// Counts to a channel agent declared with the macro.
#[agent(channel = "macro-counts")]
async fn count_in_channel(mut stream: Stream<u64>) -> faust::Result<()> {
    while let Some(n) = stream.next().await {
        COUNTED.fetch_add(n as usize, Ordering::Relaxed);
        COUNTED_SIGNAL.notify_one();
    }
    Ok(())
}

static COUNTED: AtomicUsize = AtomicUsize::new(0);
static COUNTED_SIGNAL: Notify = Notify::const_new();

#[tokio::test]
async fn the_macro_declares_a_channel_agent() {
    let app = app(SUITE, "macro");
    for d in faust::registered_agents().unwrap() {
        if d.name == "count_in_channel" {
            app.add_agent((d.build)()).unwrap();
        }
    }
    let counts = app.channel::<u64>("macro-counts").unwrap();
    within("start", app.start()).await.unwrap();
    within("send", counts.send(5)).await.unwrap();
    within("counted", async {
        while COUNTED.load(Ordering::Relaxed) < 5 {
            COUNTED_SIGNAL.notified().await;
        }
    })
    .await;
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn the_test_harness_runs_a_channel_agent() {
    let app = app(SUITE, "harness");
    let double = app
        .add_agent(
            AgentSpec::handler("double", |x: i64| async move { Ok::<_, Error>(x * 2) })
                .channel("numbers"),
        )
        .unwrap();
    let tc = within("test context", double.test_context()).await.unwrap();
    let event = within("put", tc.put(&21)).await.unwrap();
    assert_eq!(
        (event.topic.as_str(), event.partition, event.offset),
        ("numbers", 0, 0)
    );
    assert_eq!(
        event.value, None,
        "a channel value is passed as a value, not bytes"
    );
    assert_eq!(tc.results::<i64>().unwrap(), [42]);
    within("stop", tc.stop()).await.unwrap();
}

#[tokio::test]
async fn a_crashed_channel_actor_is_reported_restarted_and_reads_on() {
    let app = app(SUITE, "crash");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (etx, mut erx) = mpsc::unbounded_channel();
    app.add_agent(
        AgentSpec::consumer("fragile", move |mut s: Stream<String>| {
            let tx = tx.clone();
            async move {
                while let Some(v) = s.next().await {
                    if v == "boom" {
                        return Err(Error::config("boom"));
                    }
                    tx.send(v).unwrap();
                }
                Ok::<_, Error>(())
            }
        })
        .channel("words")
        .on_error(move |_, e| {
            let _ = etx.send(e.to_string());
        }),
    )
    .unwrap();
    let words = app.channel::<String>("words").unwrap();
    within("start", app.start()).await.unwrap();
    for w in ["a", "boom", "b"] {
        within("send", words.send(w.to_string())).await.unwrap();
    }
    assert_eq!(within("a", rx.recv()).await.unwrap(), "a");
    assert!(within("on_error", erx.recv())
        .await
        .unwrap()
        .contains("boom"));
    assert_eq!(
        within("b", rx.recv()).await.unwrap(),
        "b",
        "the restarted actor reads the same channel"
    );
    assert_eq!(app.agent("fragile").unwrap().stats().restarts(), 1);
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn ask_nowait_on_a_channel_agent_gives_a_promise_of_the_reply() {
    let app = app(SUITE, "nowait");
    app.add_agent(
        AgentSpec::handler("upper", |s: String| async move {
            Ok::<_, Error>(s.to_uppercase())
        })
        .channel("text"),
    )
    .unwrap();
    within("start", app.start()).await.unwrap();
    let upper = app.agent("upper").unwrap();
    let promise = within(
        "ask_nowait",
        upper.ask_nowait(&"hi", SendOptions::default().correlation_id("cid-1")),
    )
    .await
    .unwrap();
    assert_eq!(promise.correlation_id(), "cid-1");
    assert_eq!(promise.reply_to(), app.config().reply_to);
    let reply = within("reply", promise.wait()).await.unwrap();
    assert_eq!(reply, serde_json::json!("HI"));
    within("stop", app.stop()).await.unwrap();
}
