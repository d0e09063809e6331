//! Broker faults as the runtime sees them, on a transport that wraps the
//! embedded broker: deliveries that fail, a producer that stalls, a reply
//! topic that never comes up. Nothing is lost, no deadline is overrun.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use faust_core::transport::memory::MemoryBroker;
use faust_core::transport::{
    Consumer, ConsumerEvent, DeliveryGroup, Enqueued, Latency, SubscribeOptions, TopicSpec,
    Transport,
};
use faust_core::{
    AgentSpec, App, Error, ProducerRecord, RecordMetadata, Result, SendOptions, Sink,
    TopicPartition,
};
use futures::StreamExt as _;

/// The embedded broker with faults switched on and off per topic.
#[derive(Debug, Default)]
struct Faulty {
    broker: Arc<MemoryBroker>,
    /// Deliveries to these topics fail (as librdkafka's do once it gives up).
    failing: Mutex<BTreeSet<String>>,
    /// Records to these topics are never delivered (a stalled broker).
    stalled: Mutex<BTreeSet<String>>,
    /// Creating topics never ends.
    stall_create: AtomicBool,
    /// Deliveries of agents' outputs are reported to their group (from a
    /// thread of their own, as librdkafka's are), not returned as futures.
    reports: bool,
    /// Groups of records that will never be reported (stalled).
    unreported: Mutex<Vec<Arc<DeliveryGroup>>>,
    /// With `reports`: the deliveries of records that reach the broker are
    /// reported too, from a reporting thread, as librdkafka's are.
    report_all: bool,
    /// The reporting thread's queue.
    reporter: OnceLock<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    /// Records with this value are not delivered.
    failing_value: Mutex<Option<Vec<u8>>>,
}

impl Faulty {
    fn fail(&self, topic: &str, on: bool) {
        set(&self.failing, topic, on);
    }
    fn stall(&self, topic: &str, on: bool) {
        set(&self.stalled, topic, on);
    }
    fn is(set: &Mutex<BTreeSet<String>>, topic: &str) -> bool {
        set.lock().unwrap().contains(topic)
    }
    fn fail_value(&self, value: Option<&[u8]>) {
        *self.failing_value.lock().unwrap() = value.map(<[u8]>::to_vec);
    }
    /// Run `report` on the reporting thread.
    fn report(&self, report: impl FnOnce() + Send + 'static) {
        let reporter = self.reporter.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
            std::thread::spawn(move || {
                for report in rx {
                    report();
                }
            });
            tx
        });
        reporter.send(Box::new(report)).unwrap();
    }
}

fn set(set: &Mutex<BTreeSet<String>>, topic: &str, on: bool) {
    let mut set = set.lock().unwrap();
    if on {
        set.insert(topic.to_string());
    } else {
        set.remove(topic);
    }
}

#[async_trait]
impl Transport for Faulty {
    fn url(&self) -> &str {
        "faulty://"
    }
    async fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        if self.stall_create.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.broker.create_topic(spec).await
    }
    async fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        self.broker.partition_count(topic).await
    }
    async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.enqueue(record).await?.await
    }
    async fn enqueue(
        &self,
        record: ProducerRecord,
    ) -> Result<faust_core::transport::DeliveryFuture> {
        match self.try_enqueue(record)? {
            Enqueued::Delivered(md) => Ok(Box::pin(std::future::ready(Ok(md)))),
            Enqueued::Queued(d) => Ok(d),
            Enqueued::WouldWait(r) => self.broker.enqueue(r).await,
            Enqueued::Reported => unreachable!("try_enqueue is given no group"),
        }
    }
    fn try_enqueue(&self, record: ProducerRecord) -> Result<Enqueued> {
        let topic = record.topic.to_string();
        if Faulty::is(&self.stalled, &topic) {
            return Ok(Enqueued::Queued(Box::pin(std::future::pending())));
        }
        if Faulty::is(&self.failing, &topic) {
            return Ok(Enqueued::Queued(Box::pin(async move {
                Err(Error::Broker(format!(
                    "cannot deliver a record to topic `{topic}`: Local: Message timed out"
                )))
            })));
        }
        self.broker.try_enqueue(record)
    }
    fn reports_deliveries(&self) -> bool {
        self.reports
    }
    fn try_enqueue_reported(
        &self,
        record: ProducerRecord,
        _latency: Latency,
        group: &Arc<DeliveryGroup>,
    ) -> Result<Enqueued> {
        let topic = record.topic.to_string();
        if Faulty::is(&self.stalled, &topic) {
            self.unreported.lock().unwrap().push(group.clone());
            return Ok(Enqueued::Reported);
        }
        let failing_value = self.failing_value.lock().unwrap().clone();
        if Faulty::is(&self.failing, &topic)
            || (failing_value.is_some() && record.value.as_deref() == failing_value.as_deref())
        {
            let group = group.clone();
            std::thread::spawn(move || {
                group.failed(Error::Broker(format!(
                    "cannot deliver a record to topic `{topic}`: Local: Message timed out"
                )))
            });
            return Ok(Enqueued::Reported);
        }
        match self.broker.try_enqueue(record)? {
            Enqueued::Delivered(md) if self.report_all => {
                let group = group.clone();
                self.report(move || group.delivered(|| md));
                Ok(Enqueued::Reported)
            }
            enqueued => Ok(enqueued),
        }
    }
    async fn flush(&self, timeout: Duration) -> Result<()> {
        self.broker.flush(timeout).await
    }
    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Consumer>> {
        self.broker.subscribe(options).await
    }
    async fn assign(&self, tps: Vec<TopicPartition>) -> Result<Box<dyn Consumer>> {
        self.broker.assign(tps).await
    }
}

/// The faulty brokers of this test binary, by URL (tests run in parallel).
fn brokers() -> &'static Mutex<HashMap<String, Arc<Faulty>>> {
    static BROKERS: OnceLock<Mutex<HashMap<String, Arc<Faulty>>>> = OnceLock::new();
    BROKERS.get_or_init(Mutex::default)
}

fn factory(url: &str) -> Result<Arc<dyn Transport>> {
    let broker = brokers()
        .lock()
        .unwrap()
        .get(url)
        .cloned()
        .ok_or_else(|| Error::config(format!("no faulty broker {url}")))?;
    Ok(broker)
}

/// A faulty broker of its own for one test, and an app builder on it.
fn faulty(name: &str) -> (Arc<Faulty>, impl Fn(&str) -> faust_core::AppBuilder) {
    faulty_with(name, Faulty::default())
}

/// [`faulty`] reporting the deliveries of agents' outputs to their groups.
fn faulty_reporting(name: &str) -> (Arc<Faulty>, impl Fn(&str) -> faust_core::AppBuilder) {
    faulty_with(
        name,
        Faulty {
            reports: true,
            ..Faulty::default()
        },
    )
}

/// [`faulty_reporting`] reporting every delivery, from a thread of its
/// own, as the Kafka transport does.
fn faulty_reporting_all(name: &str) -> (Arc<Faulty>, impl Fn(&str) -> faust_core::AppBuilder) {
    faulty_with(
        name,
        Faulty {
            reports: true,
            report_all: true,
            ..Faulty::default()
        },
    )
}

fn faulty_with(
    name: &str,
    broker: Faulty,
) -> (Arc<Faulty>, impl Fn(&str) -> faust_core::AppBuilder) {
    let url = format!("faulty://{name}");
    let broker = Arc::new(broker);
    brokers()
        .lock()
        .unwrap()
        .insert(url.clone(), broker.clone());
    let builder = move |id: &str| {
        App::builder(id)
            .broker(url.clone())
            .scheme("faulty", factory)
            .commit_interval(Duration::from_millis(20))
    };
    (broker, builder)
}

/// Every value of `topic` (one partition), read from the start.
async fn values_of(broker: &Faulty, topic: &str) -> Vec<u64> {
    let mut consumer = broker
        .assign(vec![TopicPartition::new(topic, 0)])
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Ok(Ok(event)) =
        tokio::time::timeout(Duration::from_millis(200), consumer.poll()).await
    {
        if let ConsumerEvent::Records(records) = event {
            out.extend(
                records
                    .iter()
                    .map(|r| serde_json::from_slice::<u64>(r.value.as_deref().unwrap()).unwrap()),
            );
        }
    }
    out
}

// ---- 1. an event whose outputs were not delivered is never committed ---------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_output_is_not_delivered_is_not_committed_and_comes_back() {
    let (broker, app) = faulty("undelivered");
    undelivered_outputs_come_back(broker, app).await;
}

/// The same, with the deliveries reported to the events' groups (how the
/// Kafka transport reports them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_reported_output_is_not_delivered_is_not_committed_and_comes_back() {
    let (broker, app) = faulty_reporting("undelivered-reported");
    undelivered_outputs_come_back(broker, app).await;
}

async fn undelivered_outputs_come_back(
    broker: Arc<Faulty>,
    app: impl Fn(&str) -> faust_core::AppBuilder,
) {
    const N: u64 = 50;
    broker
        .create_topic(&TopicSpec::new("relayed", 1))
        .await
        .unwrap();
    // The first run: the sink's deliveries fail from event 20 on.
    let first = app("relay-app").build().unwrap();
    let agent = first.add_agent(relay("relay-in", "relayed")).unwrap();
    first.start().await.unwrap();
    for i in 0..20 {
        agent.send(&i).await.unwrap();
    }
    common::within(10, "the first 20 outputs", async {
        while values_of(&broker, "relayed").await.len() < 20 {}
    })
    .await;
    broker.fail("relayed", true);
    for i in 20..N {
        agent.send(&i).await.unwrap();
    }
    let crash = common::within(
        10,
        "the app to stop on the lost output",
        first.wait_crashed(),
    )
    .await;
    match &*crash {
        Error::Undelivered {
            topic,
            partition,
            offset,
            reason,
        } => {
            assert_eq!((topic.as_str(), *partition), ("relay-in", 0));
            assert!(*offset >= 20, "offset {offset}");
            assert!(reason.contains("timed out"), "{reason}");
        }
        other => panic!("expected Error::Undelivered, got {other}"),
    }
    let _ = first.stop().await;
    assert!(agent.stats().errors() >= 1);
    drop(first);

    // The broker delivers again; the app is restarted: every value that
    // was not delivered is processed again and reaches the topic.
    broker.fail("relayed", false);
    let second = app("relay-app").build().unwrap();
    second.add_agent(relay("relay-in", "relayed")).unwrap();
    second.start().await.unwrap();
    let seen = common::within(10, "every value in the output topic", async {
        loop {
            let values = values_of(&broker, "relayed").await;
            let distinct: BTreeSet<u64> = values.iter().copied().collect();
            if distinct.len() as u64 == N {
                return distinct;
            }
        }
    })
    .await;
    assert_eq!(seen, (0..N).collect::<BTreeSet<u64>>(), "values missing");
    second.stop().await.unwrap();
}

// ---- 1b. events processed in a row are acked together ------------------------

/// Topics `input` and `output` (one partition each), and the values
/// `0..n` in `input` before any agent reads them.
async fn preload(broker: &Faulty, input: &str, output: &str, n: u64) {
    for topic in [input, output] {
        broker
            .create_topic(&TopicSpec::new(topic, 1))
            .await
            .unwrap();
    }
    for i in 0..n {
        let record = ProducerRecord::new(input.to_string(), serde_json::to_vec(&i).unwrap());
        broker.broker.send(record).await.unwrap();
    }
}

fn relay(input: &str, output: &str) -> AgentSpec {
    AgentSpec::handler("relay", |x: u64| async move { Ok::<_, Error>(x) })
        .topic(input.to_string())
        .partitions(1)
        .sink(Sink::<u64>::topic(output.to_string()))
}

/// An actor that never waits reports the deliveries of a run of events
/// together: the run is acked (and committed) once they are all reported,
/// and a stop waits for that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_events_is_acked_once_its_reported_outputs_are_delivered() {
    // Fewer than the embedded broker keeps per chunk: `values_of` reads
    // the output topic from its start more than once.
    const N: u64 = 1_000;
    let (broker, app) = faulty_reporting_all("run-acked");
    preload(&broker, "run-in", "run-out", N).await;
    let first = app("run-app").build().unwrap();
    first.add_agent(relay("run-in", "run-out")).unwrap();
    first.start().await.unwrap();
    common::within(10, "every output", async {
        while values_of(&broker, "run-out").await.len() < N as usize {}
    })
    .await;
    first.stop().await.unwrap();
    drop(first);

    // Everything was committed: a new member reads only what comes next.
    let second = app("run-app").build().unwrap();
    let agent = second.add_agent(relay("run-in", "run-out")).unwrap();
    second.start().await.unwrap();
    agent.send(&N).await.unwrap();
    let values = common::within(10, "the new value's output", async {
        loop {
            let values = values_of(&broker, "run-out").await;
            if values.contains(&N) {
                return values;
            }
        }
    })
    .await;
    assert_eq!(
        values,
        (0..=N).collect::<Vec<_>>(),
        "values processed again"
    );
    second.stop().await.unwrap();
}

/// One lost output among a run of events reported together: none of the
/// run is acked, the app stops, and after a restart every value arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_output_in_a_run_of_events_leaves_the_run_unacked() {
    const N: u64 = 1_000;
    const LOST: u64 = 700;
    let (broker, app) = faulty_reporting_all("run-lost");
    preload(&broker, "lost-in", "lost-out", N).await;
    broker.fail_value(Some(&serde_json::to_vec(&LOST).unwrap()));
    let first = app("lost-app").build().unwrap();
    first.add_agent(relay("lost-in", "lost-out")).unwrap();
    first.start().await.unwrap();
    let crash = common::within(
        10,
        "the app to stop on the lost output",
        first.wait_crashed(),
    )
    .await;
    match &*crash {
        Error::Undelivered { offset, reason, .. } => {
            assert!(*offset as u64 <= LOST, "offset {offset}");
            assert!(reason.contains("timed out"), "{reason}");
        }
        other => panic!("expected Error::Undelivered, got {other}"),
    }
    let _ = first.stop().await;
    drop(first);

    broker.fail_value(None);
    let second = app("lost-app").build().unwrap();
    second.add_agent(relay("lost-in", "lost-out")).unwrap();
    second.start().await.unwrap();
    let seen = common::within(10, "every value in the output topic", async {
        loop {
            let distinct: BTreeSet<u64> =
                values_of(&broker, "lost-out").await.into_iter().collect();
            if distinct.len() as u64 == N {
                return distinct;
            }
        }
    })
    .await;
    assert_eq!(seen, (0..N).collect::<BTreeSet<u64>>(), "values missing");
    second.stop().await.unwrap();
}

// ---- 7. a dead-letter topic never feeds itself --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reader_of_the_dead_letter_topic_does_not_copy_it_back() {
    let (broker, app) = faulty("dead-letter-loop");
    let app = app("dlq-app").dead_letter_topic("dlq").build().unwrap();
    // One agent fails every event (its failures go to `dlq`); one reads
    // `dlq` and fails too.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    app.add_agent(
        AgentSpec::handler("picky", |_: u64| async move {
            Err::<u64, _>(Error::config("refused"))
        })
        .topic("picky-in")
        .partitions(1),
    )
    .unwrap();
    app.add_agent(
        AgentSpec::handler("dlq-reader", move |x: u64| {
            let seen_tx = seen_tx.clone();
            async move {
                seen_tx.send(x).unwrap();
                Err::<u64, _>(Error::config("refused again"))
            }
        })
        .topic("dlq")
        .partitions(1),
    )
    .unwrap();
    app.start().await.unwrap();
    app.agent("picky").unwrap().send(&7u64).await.unwrap();
    assert_eq!(common::take(&mut seen, 1).await, vec![7]);
    common::nothing_more(&mut seen).await;
    assert_eq!(values_of(&broker, "dlq").await, vec![7]);
    app.stop().await.unwrap();
}

// ---- 2. asks keep their deadline, whatever part of the call stalls ------------

/// `(what, elapsed)` of an ask-like call that must time out after 2 s.
async fn times_out(what: &str, call: impl std::future::Future<Output = Result<()>>) {
    let t0 = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), call).await;
    let spent = t0.elapsed();
    let err = match outcome {
        Ok(Err(err)) => err,
        Ok(Ok(())) => panic!("{what}: succeeded on a stalled broker"),
        Err(_) => panic!("{what}: still waiting after 60 s"),
    };
    assert!(
        spent >= Duration::from_secs(2) && spent < Duration::from_millis(2100),
        "{what}: returned after {spent:?}"
    );
    match &err {
        Error::Timeout { after, .. } => {
            assert!(*after >= Duration::from_secs(2), "{what}: {err}");
            assert!(*after < Duration::from_millis(2100), "{what}: {err}");
        }
        other => panic!("{what}: expected a timeout, got {other}"),
    }
}

async fn stalled_asks(stall: impl FnOnce(&Faulty), name: &str, nobody_answers: bool) {
    let (broker, app) = faulty(name);
    let app = app("asker")
        .ask_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let agent = app
        .add_agent(
            AgentSpec::handler("double", |x: u64| async move { Ok::<_, Error>(x * 2) })
                .topic("double-in")
                .partitions(1),
        )
        .unwrap();
    broker
        .create_topic(&TopicSpec::new("double-in", 1))
        .await
        .unwrap();
    stall(&broker);
    let opts = || SendOptions::default().timeout(Duration::from_secs(2));
    times_out("ask", async {
        agent.ask_with::<_, u64>(&1u64, opts()).await.map(drop)
    })
    .await;
    if nobody_answers {
        // The request goes out: the promise is the caller's to wait for.
        let promise = agent.ask_nowait(&1u64, opts()).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(5), promise.wait())
            .await
            .is_err());
    } else {
        times_out("ask_nowait", async {
            agent.ask_nowait(&1u64, opts()).await.map(drop)
        })
        .await;
    }
    times_out("join", async {
        agent.join::<_, u64, _>([1u64, 2, 3]).await.map(drop)
    })
    .await;
    times_out("kvjoin", async {
        agent
            .kvjoin::<_, _, u64, _>([(Some("k"), 1u64)])
            .await
            .map(drop)
    })
    .await;
    times_out("map", async {
        let mut results = std::pin::pin!(agent.map::<_, u64, _>([1u64, 2]));
        match results.next().await {
            Some(r) => r.map(drop),
            None => Ok(()),
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn asks_keep_their_deadline_when_the_request_is_not_delivered() {
    stalled_asks(|b| b.stall("double-in", true), "stalled-produce", false).await;
}

#[tokio::test(start_paused = true)]
async fn asks_keep_their_deadline_when_the_reply_topic_never_comes_up() {
    stalled_asks(
        |b| b.stall_create.store(true, Ordering::SeqCst),
        "stalled-reply-topic",
        false,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn asks_keep_their_deadline_when_nobody_answers() {
    // The agent is declared but no worker runs it: the request is
    // delivered, the reply never comes.
    stalled_asks(|_| {}, "no-answer", true).await;
}
