//! The real-broker suite: runs only when `FAUST_TEST_KAFKA` names a Kafka
//! broker (`host:port`), e.g. the one `scripts/kafka.sh start` runs:
//!
//! ```text
//! FAUST_TEST_KAFKA=$(scripts/kafka.sh bootstrap) cargo test -p faust-kafka --test real_broker
//! ```
//!
//! It covers what librdkafka's mock cluster cannot: topic creation through
//! the admin API, and commits during a rebalance (real Kafka accepts them
//! until the member rejoins), hence exactly-once hand-over under load. The
//! conformance suite (tests/conformance.rs) runs on this broker too.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{init_tracing, next_within, unique, within};
use faust_core::transport::{
    CleanupPolicy, Consumer, ConsumerEvent, SubscribeOptions, TopicSpec, Transport,
};
use faust_core::{AgentSpec, App, Error, ProducerRecord, Sink, Stream, Topic, TopicPartition};
use faust_kafka::KafkaTransport;
use tokio::sync::mpsc;

fn broker() -> Option<String> {
    init_tracing();
    match std::env::var("FAUST_TEST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            eprintln!("FAUST_TEST_KAFKA is not set: real-broker test skipped");
            None
        }
    }
}

fn url(bootstrap: &str) -> String {
    format!(
        "kafka://{bootstrap}?consumer.session.timeout.ms=6000&consumer.heartbeat.interval.ms=500"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_creates_with_settings() {
    let Some(b) = broker() else { return };
    let t = KafkaTransport::from_url(&url(&b)).unwrap();
    let name = unique("created");
    let spec = TopicSpec {
        name: name.clone(),
        partitions: 3,
        replication: 1,
        retention: Some(Duration::from_secs(3600)),
        cleanup_policy: CleanupPolicy::Delete,
        configs: Vec::new(),
    };
    within(30, "create", t.create_topic(&spec)).await.unwrap();
    assert_eq!(t.partition_count(&name).await.unwrap(), Some(3));
    // Usable at once: the metadata shows it.
    let md = t
        .send(ProducerRecord {
            partition: Some(2),
            ..ProducerRecord::new(name.clone(), "x")
        })
        .await
        .unwrap();
    assert_eq!((md.partition, md.offset), (2, 0));
    // A compacted topic.
    let compacted = TopicSpec {
        cleanup_policy: CleanupPolicy::Compact,
        ..TopicSpec::new(unique("compacted"), 1)
    };
    within(30, "create compacted", t.create_topic(&compacted))
        .await
        .unwrap();
    // Invalid: replication above the broker count.
    let err = within(
        30,
        "create invalid",
        t.create_topic(&TopicSpec {
            replication: 3,
            ..TopicSpec::new(unique("bad"), 1)
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Broker(_)), "{err}");
}

/// A member that commits after every batch and on revocation.
struct Member {
    consumer: Box<dyn Consumer>,
    owned: BTreeSet<TopicPartition>,
    position: BTreeMap<TopicPartition, i64>,
    seen: Vec<(TopicPartition, i64)>,
}

impl Member {
    fn new(consumer: Box<dyn Consumer>) -> Self {
        Self {
            consumer,
            owned: BTreeSet::new(),
            position: BTreeMap::new(),
            seen: Vec::new(),
        }
    }

    async fn step(&mut self) {
        let Some(event) = next_within(&mut self.consumer, Duration::from_millis(20)).await else {
            return;
        };
        match event {
            ConsumerEvent::Records(records) => {
                for r in records {
                    let tp = r.topic_partition();
                    assert!(self.owned.contains(&tp), "record of {tp} not owned");
                    self.seen.push((tp.clone(), r.offset));
                    self.position.insert(tp, r.offset + 1);
                }
                let offsets: Vec<_> = self.position.iter().map(|(k, v)| (k.clone(), *v)).collect();
                if let Err(e) = self.consumer.commit(&offsets).await {
                    eprintln!("commit failed: {e}");
                }
            }
            ConsumerEvent::Revoked(tps) => {
                let offsets: Vec<_> = tps
                    .iter()
                    .filter_map(|tp| self.position.get(tp).map(|o| (tp.clone(), *o)))
                    .collect();
                if !offsets.is_empty() {
                    self.consumer
                        .commit(&offsets)
                        .await
                        .expect("commit on revoke");
                }
                for tp in &tps {
                    assert!(self.owned.remove(tp));
                    self.position.remove(tp);
                }
            }
            ConsumerEvent::Assigned(tps) => self.owned.extend(tps),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_over_under_load_is_exactly_once() {
    let Some(b) = broker() else { return };
    hand_over(&b, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_over_with_cooperative_sticky_is_exactly_once() {
    let Some(b) = broker() else { return };
    hand_over(
        &b,
        "&consumer.partition.assignment.strategy=cooperative-sticky",
    )
    .await;
}

async fn hand_over(b: &str, extra: &str) {
    let t = Arc::new(
        KafkaTransport::from_url(&format!("{}&faust.batch.max.records=20{extra}", url(b))).unwrap(),
    );
    let topic = unique("load");
    t.create_topic(&TopicSpec::new(topic.clone(), 6))
        .await
        .unwrap();
    let group = unique("g");
    let join = |t: Arc<KafkaTransport>, group: String, topic: String| async move {
        t.subscribe(SubscribeOptions {
            group,
            topics: vec![topic],
            patterns: Vec::new(),
            offset_reset: Default::default(),
        })
        .await
        .unwrap()
    };
    // A producer running during the whole test.
    const TOTAL: usize = 3000;
    let producer = {
        let t = t.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            for i in 0..TOTAL {
                t.send(ProducerRecord {
                    key: Some(format!("k{i}").into()),
                    ..ProducerRecord::new(topic.clone(), format!("{i}"))
                })
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let started = Instant::now();
    let mut a = Member::new(join(t.clone(), group.clone(), topic.clone()).await);
    within(60, "a owns all", async {
        while a.owned.len() < 6 {
            a.step().await;
        }
    })
    .await;
    let mut bm = Member::new(join(t.clone(), group.clone(), topic.clone()).await);
    within(60, "split", async {
        while !(a.owned.len() == 3 && bm.owned.len() == 3) {
            a.step().await;
            bm.step().await;
        }
    })
    .await;
    eprintln!("split after {:?}", started.elapsed());
    assert!(a.owned.is_disjoint(&bm.owned));
    for _ in 0..50 {
        a.step().await;
        bm.step().await;
    }
    let Member {
        consumer,
        seen: a_seen,
        ..
    } = a;
    within(20, "close a", consumer.close(Duration::from_secs(15)))
        .await
        .unwrap();
    within(120, "b reads everything", async {
        while a_seen.len() + bm.seen.len() < TOTAL {
            bm.step().await;
        }
    })
    .await;
    producer.await.unwrap();
    eprintln!("all {TOTAL} read after {:?}", started.elapsed());
    let mut all: Vec<_> = a_seen.iter().chain(&bm.seen).cloned().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no record delivered twice");
    assert_eq!(n, TOTAL);
    let a_set: HashSet<_> = a_seen.iter().collect();
    assert!(bm.seen.iter().all(|r| !a_set.contains(r)));
    bm.consumer.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_creates_its_topics_and_answers_asks() {
    let Some(b) = broker() else { return };
    let app = App::builder(unique("app"))
        .broker(url(&b))
        .scheme("kafka", faust_kafka::factory)
        .topic_partitions(4)
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
    within(60, "start", app.start()).await.unwrap();
    assert_eq!(
        app.transport()
            .partition_count(double.topic())
            .await
            .unwrap(),
        Some(4)
    );
    let r: i64 = within(60, "first ask", double.ask(&21i64)).await.unwrap();
    assert_eq!(r, 42);
    let mut lat = Vec::new();
    for i in 0..50i64 {
        let s = Instant::now();
        let r: i64 = within(30, "ask", double.ask(&i)).await.unwrap();
        lat.push(s.elapsed());
        assert_eq!(r, 2 * i);
    }
    lat.sort();
    eprintln!(
        "ask round trip on a real broker: p50 {:?}, p99 {:?}",
        lat[25], lat[49]
    );
    for i in 0..1000i64 {
        counter.send(&i).await.unwrap();
    }
    let mut seen = HashSet::new();
    within(60, "events", async {
        while seen.len() < 1000 {
            let v = rx.recv().await.unwrap();
            assert!(seen.insert(v), "{v} twice");
        }
    })
    .await;
    within(30, "stop", app.stop()).await.unwrap();
}

/// Requests and replies go through the immediate producer: an ask does not
/// wait for the `linger.ms` meant to batch outputs, which a plain send
/// (awaiting its delivery) does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_do_not_wait_for_the_producers_linger() {
    let Some(b) = broker() else { return };
    const LINGER: Duration = Duration::from_secs(3);
    let app = App::builder(unique("linger"))
        .broker(format!(
            "{}&producer.linger.ms={}",
            url(&b),
            LINGER.as_millis()
        ))
        .scheme("kafka", faust_kafka::factory)
        .build()
        .unwrap();
    let double = app
        .add_agent(AgentSpec::handler("double", |x: i64| async move {
            Ok::<_, Error>(x * 2)
        }))
        .unwrap();
    within(60, "start", app.start()).await.unwrap();
    let _: i64 = within(60, "first ask", double.ask(&0i64)).await.unwrap();
    for i in 1..=5i64 {
        let asked = Instant::now();
        let r: i64 = within(30, "ask", double.ask(&i)).await.unwrap();
        assert_eq!(r, 2 * i);
        assert!(
            asked.elapsed() < LINGER / 2,
            "ask {i} took {:?}: it waited for the linger",
            asked.elapsed()
        );
    }
    let sent = Instant::now();
    within(30, "send", double.send(&7i64)).await.unwrap();
    assert!(
        sent.elapsed() >= LINGER / 2,
        "a plain send took {:?}: producer.linger.ms is not in effect",
        sent.elapsed()
    );
    within(30, "stop", app.stop()).await.unwrap();
}

/// An app on Kafka with channel agents next to topic agents: a topic agent
/// sinks into an in-process channel, a channel agent answers asks (its
/// replies go through the Kafka reply topic), and a rebalance of the topic
/// agent (a second instance joins the group) leaves the channel agent's
/// actor alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_agents_run_next_to_topic_agents_on_kafka() {
    let Some(b) = broker() else { return };
    let id = unique("chan");
    let topic = format!("{id}-prices");
    let instance = |n: usize, tx: mpsc::UnboundedSender<(usize, u64, u64)>| {
        let app = App::builder(id.clone())
            .broker(url(&b))
            .scheme("kafka", faust_kafka::factory)
            .topic_partitions(4)
            .build()
            .unwrap();
        app.add_agent(
            AgentSpec::handler("price", |x: u64| async move { Ok::<_, Error>(x * 10) })
                .topic(topic.clone())
                .sink(Sink::<u64>::channel("totals")),
        )
        .unwrap();
        // Counts what it got in the actor's own state: a restarted actor
        // would count from zero again.
        app.add_agent(
            AgentSpec::consumer("totals", move |mut s: Stream<u64>| {
                let tx = tx.clone();
                async move {
                    let mut seen = 0u64;
                    while let Some(v) = s.next().await {
                        seen += 1;
                        let _ = tx.send((n, seen, v));
                    }
                    Ok::<_, Error>(())
                }
            })
            .channel("totals"),
        )
        .unwrap();
        app.add_agent(
            AgentSpec::handler("half", |x: u64| async move { Ok::<_, Error>(x / 2) })
                .channel("halves"),
        )
        .unwrap();
        app
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = instance(1, tx.clone());
    within(60, "start", first.start()).await.unwrap();
    let half: u64 = within(60, "ask", first.agent("half").unwrap().ask(&84u64))
        .await
        .unwrap();
    assert_eq!(half, 42);
    assert!(first.agent("totals").unwrap().get_topic_names().is_empty());
    let price = first.agent("price").unwrap();
    within(60, "send", price.send(&1u64)).await.unwrap();
    assert_eq!(
        within(60, "through the channel", rx.recv()).await,
        Some((1, 1, 10))
    );
    // A second instance joins: the topic's partitions are shared out.
    let second = instance(2, tx.clone());
    within(60, "second start", second.start()).await.unwrap();
    let mut counts = [1u64, 0];
    let mut next = 2u64;
    within(90, "both instances process", async {
        while counts[1] == 0 {
            price.send(&next).await.unwrap();
            next += 1;
            while let Ok(Some((n, seen, _))) =
                tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            {
                counts[n - 1] += 1;
                assert_eq!(
                    seen,
                    counts[n - 1],
                    "instance {n}'s channel actor kept its count"
                );
            }
        }
    })
    .await;
    within(60, "second stop", second.stop()).await.unwrap();
    assert_eq!(first.agent("totals").unwrap().stats().restarts(), 0);
    let half: u64 = within(
        60,
        "ask after the rebalance",
        first.agent("half").unwrap().ask(&10u64),
    )
    .await
    .unwrap();
    assert_eq!(half, 5);
    within(60, "stop", first.stop()).await.unwrap();
}

/// A pattern agent reads the matching topics that exist at start and one
/// created afterwards (found at the next metadata refresh, every 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_agent_picks_up_a_topic_created_after_start() {
    let Some(b) = broker() else { return };
    let prefix = unique("pat");
    let app = App::builder(unique("app"))
        .broker(url(&b))
        .scheme("kafka", faust_kafka::factory)
        .topic_partitions(2)
        .build()
        .unwrap();
    let early = format!("{prefix}-early");
    let late = format!("{prefix}-late");
    app.transport()
        .create_topic(&TopicSpec::new(early.clone(), 2))
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.add_agent(
        AgentSpec::consumer("all", move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while let Some(ev) = s.next_event().await {
                    let _ = tx.send((ev.message().topic().to_string(), ev.value));
                }
                Ok::<_, Error>(())
            }
        })
        .topic_pattern(format!("{prefix}-.*")),
    )
    .unwrap();
    within(60, "start", app.start()).await.unwrap();
    app.send(&early, &1).await.unwrap();
    assert_eq!(
        within(60, "the early topic's record", rx.recv()).await,
        Some((early.clone(), 1))
    );
    app.transport()
        .create_topic(&TopicSpec::new(late.clone(), 2))
        .await
        .unwrap();
    app.send(&late, &2).await.unwrap();
    assert_eq!(
        within(60, "the late topic's record", rx.recv()).await,
        Some((late.clone(), 2))
    );
    within(60, "stop", app.stop()).await.unwrap();
}

/// An app declaring a compacted topic with a retention creates it with
/// these configs (the broker describes them); an app declaring it with
/// other partitions, retention or cleanup policy fails to start, naming the
/// topic, the setting, what it wants and what the broker has; one stating
/// nothing uses it as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_creates_declared_topics_with_their_configs_and_reports_mismatches() {
    let Some(b) = broker() else { return };
    let name = unique("declared");
    let app_on = |id: &str| {
        App::builder(unique(id))
            .broker(url(&b))
            .scheme("kafka", faust_kafka::factory)
            .build()
            .unwrap()
    };
    let app = app_on("owner");
    let topic = app.topic(
        Topic::new(&name)
            .partitions(3)
            .replicas(1)
            .compacted()
            .retention(Duration::from_secs(3600))
            .config("segment.ms", "600000"),
    );
    within(60, "start", app.start()).await.unwrap();
    let found = within(30, "describe", app.transport().describe_topic(&name))
        .await
        .unwrap()
        .expect("the topic was created");
    assert_eq!(found.partitions, 3);
    assert_eq!(found.replication, 1);
    assert_eq!(found.cleanup_policy, CleanupPolicy::Compact);
    assert_eq!(found.retention, Some(Duration::from_secs(3600)));
    within(30, "send", app.send_keyed_to(&topic, "k", &"v"))
        .await
        .unwrap();
    within(30, "stop", app.stop()).await.unwrap();

    for (declared, setting, wanted, got) in [
        (Topic::new(&name).partitions(4), "partitions", "4", "3"),
        (
            Topic::new(&name).retention(Duration::from_secs(60)),
            "retention",
            "60s",
            "3600s",
        ),
        (
            Topic::new(&name).cleanup_policy(CleanupPolicy::Delete),
            "cleanup.policy",
            "delete",
            "compact",
        ),
    ] {
        let other = app_on("other");
        other.topic(declared);
        let err = within(60, "start with a mismatch", other.start())
            .await
            .unwrap_err();
        match &err {
            Error::TopicMismatch {
                topic,
                setting: s,
                wanted: w,
                found: f,
            } => {
                assert_eq!(
                    (topic.as_str(), *s, w.as_str(), f.as_str()),
                    (name.as_str(), setting, wanted, got)
                );
            }
            other => panic!("expected a topic mismatch, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("topic `{name}` exists with {setting} {got}")),
            "{err}"
        );
    }
    // Stating nothing: used as it is.
    let plain = app_on("plain");
    plain.topic(name.as_str());
    within(60, "start", plain.start()).await.unwrap();
    within(30, "stop", plain.stop()).await.unwrap();
}

/// Two workers of one app on Kafka, each with an `on_leader` timer: the
/// group gives the leader topic to one of them, only it ticks, and when it
/// leaves the other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_leader_timer_runs_on_one_kafka_worker_and_moves_when_it_leaves() {
    let Some(b) = broker() else { return };
    let id = unique("leader");
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let worker = |tag: &'static str| {
        let app = App::builder(id.clone())
            .broker(url(&b))
            .scheme("kafka", faust_kafka::factory)
            .build()
            .unwrap();
        let tx = tx.clone();
        app.add_timer(
            faust_core::TimerSpec::new("lead", Duration::from_millis(100), move |_app: App| {
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
    let (a, w2) = (worker("a"), worker("b"));
    within(60, "a starts", a.start()).await.unwrap();
    assert_eq!(within(60, "a's tick", rx.recv()).await.unwrap(), "a");
    within(60, "b starts", w2.start()).await.unwrap();
    within(60, "one leader of two", async {
        loop {
            if a.is_leader() != w2.is_leader() {
                // Settled when it stays so for a while (a rebalance may be under way).
                tokio::time::sleep(Duration::from_secs(2)).await;
                if a.is_leader() != w2.is_leader() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (leader, follower, other) = if a.is_leader() {
        (&a, &w2, "b")
    } else {
        (&w2, &a, "a")
    };
    while rx.try_recv().is_ok() {}
    for _ in 0..5 {
        assert_ne!(
            within(10, "a leader's tick", rx.recv()).await.unwrap(),
            other
        );
    }
    within(60, "the leader stops", leader.stop()).await.unwrap();
    within(60, "the follower's tick", async {
        while within(60, "a tick", rx.recv()).await.unwrap() != other {}
    })
    .await;
    assert!(follower.is_leader());
    within(60, "the follower stops", follower.stop())
        .await
        .unwrap();
}

/// Sample `name{...}` values of a Prometheus text scrape, summed over
/// their label sets, keeping only the lines whose labels contain `with`.
fn metric_sum(text: &str, name: &str, with: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(with))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_metrics_come_from_the_consumers_statistics() {
    let Some(b) = broker() else { return };
    let topic = unique("lag");
    // Statistics every 200 ms instead of 5 s, so that the test is short.
    let app = App::builder(unique("app"))
        .broker(format!("{}&consumer.statistics.interval.ms=200", url(&b)))
        .scheme("kafka", faust_kafka::factory)
        .topic_partitions(2)
        .build()
        .unwrap();
    app.transport()
        .create_topic(&TopicSpec::new(topic.clone(), 2))
        .await
        .unwrap();
    // 30 records written before the app starts: its lag until it reads them.
    for i in 0..30 {
        app.transport()
            .send(ProducerRecord {
                partition: Some(i % 2),
                ..ProducerRecord::new(topic.clone(), format!("{i}"))
            })
            .await
            .unwrap();
    }
    let agent = app
        .add_agent(
            AgentSpec::handler("count", |x: i64| async move { Ok::<_, Error>(x) }).topic(&*topic),
        )
        .unwrap();
    app.start().await.unwrap();
    let with = format!("topic=\"{topic}\"");
    within(60, "end offsets, commits and no lag", async {
        loop {
            let text = app.metrics().encode();
            let end = metric_sum(&text, "faust_partition_end_offset", &with);
            let committed = metric_sum(&text, "faust_partition_committed_offset", &with);
            let lag = metric_sum(&text, "faust_partition_lag", &with);
            if end == Some(30.0) && committed == Some(30.0) && lag == Some(0.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(agent.stats().events_processed(), 30);
    assert!(app.health().await.ready, "{:?}", app.health().await);
    app.stop().await.unwrap();
}
