//! Commits never hold up delivery: a commit in flight lets records already
//! fetched reach their agents, a failed commit is offered again (with the
//! newest offset), and `memory://` commits a burst on its 20 ms cadence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use faust_core::transport::memory::MemoryBroker;
use faust_core::transport::{
    CommitFuture, Consumer, ConsumerEvent, SubscribeOptions, TopicSpec, Transport,
};
use faust_core::{AgentSpec, App, Error, ProducerRecord, RecordMetadata, Result, TopicPartition};
use tokio::sync::watch;

/// How a test's consumer commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The embedded broker's own consumer.
    Plain,
    /// Commits wait until `Control::open` is set, then succeed.
    Stall,
    /// Commits fail while `Control::fail` is set, else succeed.
    Fail,
}

/// What a test controls and observes of its transport.
struct Control {
    broker: Arc<MemoryBroker>,
    mode: Mode,
    open: watch::Sender<bool>,
    fail: watch::Sender<bool>,
    /// Every commit asked for: (offset of partition 0, succeeded).
    calls: watch::Sender<Vec<(i64, bool)>>,
}

fn controls() -> &'static Mutex<HashMap<String, Arc<Control>>> {
    static C: OnceLock<Mutex<HashMap<String, Arc<Control>>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

fn control(url: &str, mode: Mode) -> Arc<Control> {
    let c = Arc::new(Control {
        broker: Arc::new(MemoryBroker::new()),
        mode,
        open: watch::channel(false).0,
        fail: watch::channel(false).0,
        calls: watch::channel(Vec::new()).0,
    });
    controls()
        .lock()
        .unwrap()
        .insert(url.to_string(), c.clone());
    c
}

/// The embedded broker, with the consumer commits of its [`Control`].
#[derive(Debug)]
struct Wrapped {
    url: String,
    broker: Arc<MemoryBroker>,
}

fn wrapped(url: &str) -> Result<Arc<dyn Transport>> {
    let c = controls().lock().unwrap().get(url).cloned();
    let c = c.ok_or_else(|| Error::Broker(format!("no control for {url}")))?;
    Ok(Arc::new(Wrapped {
        url: url.to_string(),
        broker: c.broker.clone(),
    }))
}

#[async_trait]
impl Transport for Wrapped {
    fn url(&self) -> &str {
        &self.url
    }
    async fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        self.broker.create_topic(spec).await
    }
    async fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        self.broker.partition_count(topic).await
    }
    async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.broker.send(record).await
    }
    async fn flush(&self, timeout: Duration) -> Result<()> {
        self.broker.flush(timeout).await
    }
    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Consumer>> {
        let inner = self.broker.subscribe(options).await?;
        let c = controls().lock().unwrap().get(&self.url).cloned();
        match c {
            Some(c) if c.mode != Mode::Plain => Ok(Box::new(Commits { inner, c })),
            _ => Ok(inner),
        }
    }
    async fn assign(&self, tps: Vec<TopicPartition>) -> Result<Box<dyn Consumer>> {
        self.broker.assign(tps).await
    }
}

/// A memory consumer whose commits go through its [`Control`] (and are not
/// passed on: only the offsets asked for are observed).
struct Commits {
    inner: Box<dyn Consumer>,
    c: Arc<Control>,
}

impl Commits {
    fn begin(&self, offsets: &[(TopicPartition, i64)]) -> CommitFuture {
        let offset = offsets
            .iter()
            .find(|(tp, _)| tp.partition == 0)
            .map_or(-1, |(_, o)| *o);
        let c = self.c.clone();
        let failing = *c.fail.borrow();
        if c.mode == Mode::Fail {
            c.calls.send_modify(|v| v.push((offset, !failing)));
            return Box::pin(async move {
                if failing {
                    Err(Error::Broker("commit refused (test)".into()))
                } else {
                    Ok(())
                }
            });
        }
        c.calls.send_modify(|v| v.push((offset, true)));
        let mut open = c.open.subscribe();
        Box::pin(async move {
            let _ = open.wait_for(|o| *o).await;
            Ok(())
        })
    }
}

#[async_trait]
impl Consumer for Commits {
    async fn poll(&mut self) -> Result<ConsumerEvent> {
        self.inner.poll().await
    }
    fn rebalance_pending(&self) -> bool {
        self.inner.rebalance_pending()
    }
    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.begin(offsets).await
    }
    fn start_commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Option<CommitFuture> {
        Some(self.begin(offsets))
    }
    async fn committed(&mut self, tp: &TopicPartition) -> Result<Option<i64>> {
        self.inner.committed(tp).await
    }
    async fn close(self: Box<Self>, timeout: Duration) -> Result<()> {
        self.inner.close(timeout).await
    }
}

/// An app on `url` with a one-partition handler agent `count` on topic
/// `in`, started; returns it, the agent and the number of events seen.
async fn counting_app(
    id: &str,
    url: &str,
    commit_interval: Duration,
) -> (App, faust_core::Agent, watch::Receiver<u64>) {
    let scheme: &'static str = Box::leak(url.split("://").next().unwrap().to_string().into());
    let app = App::builder(id)
        .broker(url)
        .scheme(scheme, wrapped)
        .commit_interval(commit_interval)
        .stop_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (seen_tx, seen) = watch::channel(0u64);
    let seen_tx = Arc::new(seen_tx);
    let agent = app
        .add_agent(
            AgentSpec::handler("count", move |x: u64| {
                seen_tx.send_modify(|n| *n += 1);
                async move { Ok::<_, Error>(x) }
            })
            .topic("in")
            .partitions(1),
        )
        .unwrap();
    app.start().await.unwrap();
    (app, agent, seen)
}

async fn send(agent: &faust_core::Agent, range: std::ops::Range<u64>) {
    for i in range {
        agent.send(&i).await.unwrap();
    }
}

async fn wait_seen(seen: &mut watch::Receiver<u64>, n: u64, within: Duration, what: &str) {
    let ok = tokio::time::timeout(within, seen.wait_for(|s| *s >= n))
        .await
        .is_ok();
    assert!(ok, "{what}: {} of {n} events processed", *seen.borrow());
}

async fn wait_calls(
    c: &Control,
    what: &str,
    within: Duration,
    done: impl Fn(&[(i64, bool)]) -> bool,
) {
    let mut calls = c.calls.subscribe();
    let r = tokio::time::timeout(within, calls.wait_for(|v| done(v))).await;
    assert!(r.is_ok(), "{what}: commits asked {:?}", *c.calls.borrow());
}

#[tokio::test(start_paused = true)]
async fn records_keep_flowing_while_a_commit_hangs() {
    let url = "stall://flowing";
    let c = control(url, Mode::Stall);
    let (app, agent, mut seen) = counting_app("flowing", url, Duration::from_millis(100)).await;
    send(&agent, 0..10).await;
    wait_seen(&mut seen, 10, Duration::from_secs(5), "first batch").await;
    wait_calls(&c, "a commit starts", Duration::from_secs(5), |v| {
        v.contains(&(10, true))
    })
    .await;
    // The commit hangs: events keep being processed meanwhile.
    send(&agent, 10..30).await;
    wait_seen(
        &mut seen,
        30,
        Duration::from_millis(500),
        "while a commit hangs",
    )
    .await;
    // Several cadences later, still one commit in flight.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        *c.calls.borrow(),
        vec![(10, true)],
        "one commit in flight at a time"
    );
    c.open.send_replace(true);
    wait_calls(
        &c,
        "the next commit carries the newer offset",
        Duration::from_secs(1),
        |v| v.contains(&(30, true)),
    )
    .await;
    app.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_is_offered_again_with_the_newest_offset() {
    let url = "fail://again";
    let c = control(url, Mode::Fail);
    c.fail.send_replace(true);
    let (app, agent, mut seen) = counting_app("again", url, Duration::from_millis(100)).await;
    send(&agent, 0..5).await;
    wait_seen(&mut seen, 5, Duration::from_secs(5), "first batch").await;
    wait_calls(&c, "a commit fails", Duration::from_secs(5), |v| {
        v.contains(&(5, false))
    })
    .await;
    // Nothing newer: the same offset is offered again.
    c.fail.send_replace(false);
    wait_calls(
        &c,
        "the failed offset is committed later",
        Duration::from_secs(1),
        |v| v.contains(&(5, true)),
    )
    .await;
    // Newer events while commits fail: the retry carries the newest offset.
    c.fail.send_replace(true);
    send(&agent, 5..10).await;
    wait_seen(&mut seen, 10, Duration::from_secs(5), "second batch").await;
    wait_calls(&c, "a commit of 10 fails", Duration::from_secs(5), |v| {
        v.contains(&(10, false))
    })
    .await;
    send(&agent, 10..15).await;
    wait_seen(&mut seen, 15, Duration::from_secs(5), "third batch").await;
    c.fail.send_replace(false);
    wait_calls(
        &c,
        "the newest offset is committed",
        Duration::from_secs(1),
        |v| v.contains(&(15, true)),
    )
    .await;
    let calls = c.calls.borrow().clone();
    assert!(
        calls.windows(2).all(|w| w[0].0 <= w[1].0),
        "never an older offset after a newer one: {calls:?}"
    );
    app.stop().await.unwrap();
}

/// `memory://` asks for a commit every 20 ms: a burst's last offset is
/// committed within a few cadences of its processing, not after the app's
/// `commit_interval` (1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_commits_a_burst_on_its_cadence() {
    const N: u64 = 200;
    let url = "plain://cadence";
    let c = control(url, Mode::Plain);
    let (app, agent, mut seen) = counting_app("cadence", url, Duration::from_secs(1)).await;
    let tp = TopicPartition::new("in", 0);
    // Warm up (the group is joined, a first commit is made).
    send(&agent, 0..1).await;
    wait_seen(&mut seen, 1, Duration::from_secs(5), "warm-up").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    send(&agent, 1..N).await;
    wait_seen(&mut seen, N, Duration::from_secs(5), "the burst").await;
    let processed = std::time::Instant::now();
    let deadline = processed + Duration::from_secs(2);
    while c.broker.committed_offset("cadence", &tp) != Some(N as i64) {
        assert!(std::time::Instant::now() < deadline, "never committed");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let after = processed.elapsed();
    println!("burst committed {after:?} after its last event was processed");
    assert!(
        after < Duration::from_millis(300),
        "the burst was committed {after:?} after its processing; memory:// commits every 20 ms"
    );
    app.stop().await.unwrap();
}
