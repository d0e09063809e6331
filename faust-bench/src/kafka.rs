//! Kafka workloads on a real broker: end-to-end relay (consume a topic,
//! produce every value to a sink topic; one event at a time, or in
//! batches), `ask` round trips and `join`, for faust-rs (`kafka://`), a
//! raw rdkafka consume→produce loop and a raw rdkafka request/reply loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use faust::{AgentSpec, Sink};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};

use crate::batch::{BATCH, BATCH_WITHIN};
use crate::mem::{ask_loop, join_once, Done};
use crate::report::Measurement;
use crate::Sizes;

/// Size of one preloaded record (a JSON object).
pub(crate) const PAYLOAD_BYTES: usize = 100;

/// Producer settings of faust-kafka's transport (its `PRODUCER_DEFAULTS`),
/// used as is by the raw baseline so both produce the same way.
const PRODUCER_SETTINGS: &[(&str, &str)] = &[
    ("linger.ms", "5"),
    ("queue.buffering.max.kbytes", "65536"),
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("message.timeout.ms", "30000"),
];

/// Consumer settings of faust-kafka's transport (its `CONSUMER_DEFAULTS`
/// and forced settings).
const CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("fetch.wait.max.ms", "10"),
    ("fetch.queue.backoff.ms", "1"),
    ("queued.min.messages", "10000"),
    ("queued.max.messages.kbytes", "16384"),
    ("enable.partition.eof", "false"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
];

/// Where the Kafka workloads run.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub(crate) bootstrap: String,
    /// Appended to faust-rs's broker URL (`--kafka-params`) in the
    /// `kafka-*` workloads.
    pub(crate) params: String,
    pub(crate) partitions: i32,
    pub(crate) input_topic: Option<String>,
}

/// The value relayed by kafka-e2e: ~100 bytes of JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Payload {
    id: u64,
    body: String,
}

fn payload(id: u64) -> Vec<u8> {
    let bare = serde_json::to_vec(&Payload {
        id,
        body: String::new(),
    })
    .expect("plain struct");
    let body = "x".repeat(PAYLOAD_BYTES.saturating_sub(bare.len()));
    serde_json::to_vec(&Payload { id, body }).expect("plain struct")
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "faust-bench");
    c
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create()?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.create_topics([&topic], &opts).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}

/// Counts delivery reports of a producer.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Enqueue one record, waiting while librdkafka's queue is full.
fn produce(p: &ThreadedProducer<Counting>, topic: &str, value: &[u8]) -> Result<()> {
    send(p, BaseRecord::<(), [u8]>::to(topic).payload(value), topic)
}

/// [`produce`] with a key.
fn produce_keyed(
    p: &ThreadedProducer<Counting>,
    topic: &str,
    key: &[u8],
    value: &[u8],
) -> Result<()> {
    send(p, BaseRecord::to(topic).key(key).payload(value), topic)
}

fn send<K: rdkafka::message::ToBytes + ?Sized>(
    p: &ThreadedProducer<Counting>,
    mut record: BaseRecord<'_, K, [u8]>,
    topic: &str,
) -> Result<()> {
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => bail!("produce to {topic}: {e}"),
        }
    }
}

/// Create a fresh input topic and fill it with `n` records of
/// [`PAYLOAD_BYTES`] (ids `0..n`). Not timed.
pub(crate) async fn preload(bootstrap: &str, partitions: i32, n: u64) -> Result<String> {
    let topic = format!("bench-e2e-in-{}", short_id());
    create_topic(bootstrap, &topic, partitions).await?;
    let bootstrap = bootstrap.to_string();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let deliveries = Arc::new(Deliveries::default());
        let p: ThreadedProducer<Counting> = config(&bootstrap)
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "500000")
            .create_with_context(Counting(deliveries.clone()))?;
        for id in 0..n {
            produce(&p, &t, &payload(id))?;
        }
        p.flush(Duration::from_secs(120))?;
        let ok = deliveries.ok.load(Ordering::Relaxed);
        ensure!(ok == n, "preload: {ok} of {n} records delivered");
        Ok(())
    })
    .await??;
    Ok(topic)
}

/// Run one Kafka measurement.
pub(crate) async fn run(
    ctx: &Ctx,
    workload: &str,
    imp: &str,
    concurrency: usize,
    s: &Sizes,
) -> Result<Measurement> {
    match (workload, imp) {
        ("kafka-e2e", "faust-rs") => faust_e2e(ctx, s.kafka_events, concurrency).await,
        ("kafka-e2e", "rdkafka-raw") => raw_e2e(ctx, s.kafka_events, concurrency).await,
        ("kafka-batch", "faust-rs") => faust_batch_e2e(ctx, s.kafka_events, concurrency).await,
        ("kafka-ask", "faust-rs") => faust_ask(ctx, s.asks, s.warmup).await,
        ("kafka-ask", "rdkafka-raw") => raw_ask(ctx, s.asks, s.warmup).await,
        ("kafka-join", "faust-rs") => faust_join(ctx, s.join).await,
        (w, i) => bail!("no Rust measurement `{i}` for workload `{w}`"),
    }
}

impl Ctx {
    /// faust-rs's broker URL: the bootstrap server and `--kafka-params`.
    pub(crate) fn broker_url(&self) -> String {
        match self.params.trim_start_matches('?') {
            "" => format!("kafka://{}", self.bootstrap),
            params => format!("kafka://{}?{params}", self.bootstrap),
        }
    }
}

fn input_topic(ctx: &Ctx) -> Result<&str> {
    ctx.input_topic
        .as_deref()
        .context("kafka-e2e needs --input-topic (the parent preloads one)")
}

fn kafka_app(ctx: &Ctx, id: &str) -> Result<faust::App> {
    Ok(faust::app_builder(id)
        .broker(ctx.broker_url())
        .topic_partitions(ctx.partitions)
        .metrics(crate::metrics_on())
        .build()?)
}

/// faust-rs: a handler agent (`concurrency` actors) reads the preloaded
/// topic and returns each value, which a topic sink produces to the output
/// topic; a callback sink after it counts. Timed from the first event the
/// agent sees to the last value counted and the producer flushed.
async fn faust_e2e(ctx: &Ctx, n: u64, concurrency: usize) -> Result<Measurement> {
    let input = input_topic(ctx)?;
    let output = format!("bench-e2e-out-{}", short_id());
    create_topic(&ctx.bootstrap, &output, ctx.partitions).await?;
    let app = kafka_app(ctx, &format!("bench-e2e-faust-{}", short_id()))?;
    let done = Done::counting(n);
    let first: Arc<OnceLock<Instant>> = Arc::default();
    let f = first.clone();
    let d = done.clone();
    let spec = AgentSpec::handler("relay", move |v: Payload| {
        f.get_or_init(Instant::now);
        async move { Ok::<_, faust::Error>(v) }
    })
    .concurrency(concurrency)
    .topic(input)
    .sink(Sink::<Payload>::topic(output.clone()))
    .sink(Sink::callback(move |_: &Payload| d.hit(0)));
    app.add_agent(spec)?;
    app.start().await?;
    done.wait().await;
    app.transport().flush(Duration::from_secs(60)).await?;
    let end = Instant::now();
    let start = *first.get().context("no event seen")?;
    app.stop().await?;
    done.check()?;
    Ok(Measurement::new("kafka-e2e", "faust-rs", concurrency, n)
        .timed(end - start)
        .setup(format!(
            "handler agent returning each ~{PAYLOAD_BYTES}-byte JSON value, Sink::topic to the output topic, \
             {} partitions, preloaded input; timed from the first event seen to the last value produced and \
             flushed; {}",
            ctx.partitions,
            crate::runtime_label()
        )))
}

/// faust-rs: kafka-e2e with a batch handler: batches of up to [`BATCH`]
/// values, each returned as is (one result per event), which the topic
/// sink produces; timed the same way.
async fn faust_batch_e2e(ctx: &Ctx, n: u64, concurrency: usize) -> Result<Measurement> {
    let input = input_topic(ctx)?;
    let output = format!("bench-batch-out-{}", short_id());
    create_topic(&ctx.bootstrap, &output, ctx.partitions).await?;
    let app = kafka_app(ctx, &format!("bench-batch-faust-{}", short_id()))?;
    let done = Done::counting(n);
    let first: Arc<OnceLock<Instant>> = Arc::default();
    let f = first.clone();
    let d = done.clone();
    let spec = AgentSpec::batch_handler("relay", BATCH, BATCH_WITHIN, move |vs: Vec<Payload>| {
        f.get_or_init(Instant::now);
        async move { Ok::<_, faust::Error>(vs) }
    })
    .concurrency(concurrency)
    .topic(input)
    .sink(Sink::<Payload>::topic(output.clone()))
    .sink(Sink::callback(move |_: &Payload| d.hit(0)));
    app.add_agent(spec)?;
    app.start().await?;
    done.wait().await;
    app.transport().flush(Duration::from_secs(60)).await?;
    let end = Instant::now();
    let start = *first.get().context("no event seen")?;
    app.stop().await?;
    done.check()?;
    Ok(Measurement::new("kafka-batch", "faust-rs", concurrency, n)
        .timed(end - start)
        .setup(format!(
            "batch handler agent (batches of up to {BATCH}, within {BATCH_WITHIN:?}) returning each \
             ~{PAYLOAD_BYTES}-byte JSON value, Sink::topic to the output topic, {} partitions, preloaded \
             input; timed from the first batch seen to the last value produced and flushed; {}",
            ctx.partitions,
            crate::runtime_label()
        )))
}

/// rdkafka-raw: one loop polls a `BaseConsumer` and hands each payload, as
/// is, to a `ThreadedProducer`; offsets stored per message and committed
/// every second, as the runtime does. Same librdkafka settings as
/// faust-kafka. Timed from the first message to the last delivery (flush).
async fn raw_e2e(ctx: &Ctx, n: u64, concurrency: usize) -> Result<Measurement> {
    let input = input_topic(ctx)?.to_string();
    let output = format!("bench-e2e-out-{}", short_id());
    create_topic(&ctx.bootstrap, &output, ctx.partitions).await?;
    let bootstrap = ctx.bootstrap.clone();
    let (start, end) = tokio::task::spawn_blocking(move || -> Result<(Instant, Instant)> {
        let mut cc = config(&bootstrap);
        cc.set("group.id", format!("bench-e2e-raw-{}", short_id()));
        for (k, v) in CONSUMER_SETTINGS {
            cc.set(*k, *v);
        }
        let consumer: BaseConsumer = cc.create()?;
        consumer.subscribe(&[&input])?;
        let mut pc = config(&bootstrap);
        for (k, v) in PRODUCER_SETTINGS {
            pc.set(*k, *v);
        }
        let deliveries = Arc::new(Deliveries::default());
        let producer: ThreadedProducer<Counting> =
            pc.create_with_context(Counting(deliveries.clone()))?;
        let mut first = None;
        let mut seen = 0u64;
        let mut last_commit = Instant::now();
        let give_up = Instant::now() + Duration::from_secs(600);
        while seen < n {
            ensure!(
                Instant::now() < give_up,
                "only {seen} of {n} records consumed in 600 s"
            );
            let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let msg = msg?;
            first.get_or_insert_with(Instant::now);
            produce(&producer, &output, msg.payload().unwrap_or_default())?;
            consumer.store_offset_from_message(&msg)?;
            seen += 1;
            if last_commit.elapsed() >= Duration::from_secs(1) {
                let _ = consumer.commit_consumer_state(CommitMode::Async);
                last_commit = Instant::now();
            }
        }
        producer.flush(Duration::from_secs(60))?;
        let end = Instant::now();
        let _ = consumer.commit_consumer_state(CommitMode::Sync);
        let ok = deliveries.ok.load(Ordering::Relaxed);
        ensure!(ok == n, "{ok} of {n} records delivered");
        Ok((first.context("no record seen")?, end))
    })
    .await??;
    Ok(Measurement::new("kafka-e2e", "rdkafka-raw", concurrency, n)
        .timed(end - start)
        .setup(format!(
            "one loop: BaseConsumer::poll -> ThreadedProducer::send of the payload bytes (no decoding), \
             store offset per message, async commit every second; the same loop at every --concurrency; \
             librdkafka settings as faust-kafka's; {} partitions; {}",
            ctx.partitions,
            crate::runtime_label()
        )))
}

/// A handler agent answering `x + 1` on Kafka.
async fn echo_app(ctx: &Ctx, what: &str) -> Result<(faust::App, faust::Agent)> {
    let id = short_id();
    let app = kafka_app(ctx, &format!("bench-{what}-{id}"))?;
    let agent = app.add_agent(
        AgentSpec::handler("echo", |x: i64| async move { Ok::<_, faust::Error>(x + 1) })
            .topic(format!("bench-{what}-{id}")),
    )?;
    app.start().await?;
    Ok((app, agent))
}

async fn faust_ask(ctx: &Ctx, n: u64, warmup: u64) -> Result<Measurement> {
    let (app, agent) = echo_app(ctx, "ask").await?;
    let (took, mut samples) = ask_loop(&agent, n, warmup.max(1)).await?;
    app.stop().await?;
    Ok(Measurement::new("kafka-ask", "faust-rs", 1, n)
        .timed(took)
        .latencies(&mut samples)
        .setup(format!(
            "handler agent (x + 1) on kafka://{}, {} partitions, sequential agent.ask after {} warm-up asks; {}",
            ctx.bootstrap,
            ctx.partitions,
            warmup.max(1),
            crate::runtime_label()
        )))
}

/// Seconds one raw ask may wait for its reply.
const RAW_ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// faust-kafka's producer settings with `linger.ms=0`: the request/reply
/// baseline sends each record at once.
fn raw_ask_producer(bootstrap: &str) -> Result<ThreadedProducer<Counting>> {
    let mut pc = config(bootstrap);
    for (k, v) in PRODUCER_SETTINGS {
        pc.set(*k, *v);
    }
    pc.set("linger.ms", "0");
    Ok(pc.create_with_context(Counting(Arc::default()))?)
}

fn raw_ask_consumer(bootstrap: &str, group: &str, topic: &str) -> Result<BaseConsumer> {
    let mut cc = config(bootstrap);
    cc.set("group.id", group);
    for (k, v) in CONSUMER_SETTINGS {
        cc.set(*k, *v);
    }
    let consumer: BaseConsumer = cc.create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

fn parse_i64(payload: Option<&[u8]>) -> Result<i64> {
    let text = std::str::from_utf8(payload.unwrap_or_default()).context("payload is not UTF-8")?;
    text.parse()
        .with_context(|| format!("payload `{text}` is not an integer"))
}

/// rdkafka-raw's server: poll the request topic, produce `x + 1` under the
/// request's key (its correlation id) to the reply topic; offsets stored per
/// message and committed every second. Until `stop`.
fn raw_ask_server(
    bootstrap: &str,
    group: &str,
    requests: &str,
    replies: &str,
    stop: &AtomicBool,
) -> Result<()> {
    let consumer = raw_ask_consumer(bootstrap, group, requests)?;
    let producer = raw_ask_producer(bootstrap)?;
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg?;
        let x = parse_i64(msg.payload())?;
        produce_keyed(
            &producer,
            replies,
            msg.key().unwrap_or_default(),
            (x + 1).to_string().as_bytes(),
        )?;
        consumer.store_offset_from_message(&msg)?;
        if last_commit.elapsed() >= Duration::from_secs(1) {
            let _ = consumer.commit_consumer_state(CommitMode::Async);
            last_commit = Instant::now();
        }
    }
    Ok(())
}

/// rdkafka-raw's client: `warmup` then `n` sequential asks, each a request
/// keyed by a fresh correlation id, then a poll of the reply topic until the
/// reply with that id arrives. The round trips of the `n`. Gives up when
/// `server_down` is set.
fn raw_ask_client(
    bootstrap: &str,
    group: &str,
    requests: &str,
    replies: &str,
    (n, warmup): (u64, u64),
    server_down: &AtomicBool,
) -> Result<(Duration, Vec<Duration>)> {
    let consumer = raw_ask_consumer(bootstrap, group, replies)?;
    let producer = raw_ask_producer(bootstrap)?;
    let ask = |correlation: u64, x: i64| -> Result<()> {
        let key = correlation.to_be_bytes();
        produce_keyed(&producer, requests, &key, x.to_string().as_bytes())?;
        let deadline = Instant::now() + RAW_ASK_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "ask({x}) got no reply within {RAW_ASK_TIMEOUT:?}"
            );
            ensure!(!server_down.load(Ordering::Relaxed), "the server stopped");
            // A reply ends the poll at once; the cap only bounds the check above.
            let Some(msg) = consumer.poll(left.min(Duration::from_millis(100))) else {
                continue;
            };
            let msg = msg?;
            if msg.key() != Some(&key[..]) {
                continue; // The reply to an ask that timed out.
            }
            let r = parse_i64(msg.payload())?;
            ensure!(r == x + 1, "ask({x}) answered {r}");
            return Ok(());
        }
    };
    let mut correlation = 0u64;
    for i in 0..warmup as i64 {
        correlation += 1;
        ask(correlation, i)?;
    }
    let mut samples = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n as i64 {
        correlation += 1;
        let t = Instant::now();
        ask(correlation, i)?;
        samples.push(t.elapsed());
    }
    Ok((start.elapsed(), samples))
}

/// rdkafka-raw: the Rust limit of a request/reply round trip on Kafka. A
/// server thread answers `x + 1` ([`raw_ask_server`]); the client asks
/// sequentially ([`raw_ask_client`]), both with faust-kafka's librdkafka
/// settings but `linger.ms=0`.
async fn raw_ask(ctx: &Ctx, n: u64, warmup: u64) -> Result<Measurement> {
    let id = short_id();
    let requests = format!("bench-ask-raw-{id}");
    let replies = format!("{requests}-replies");
    create_topic(&ctx.bootstrap, &requests, ctx.partitions).await?;
    create_topic(&ctx.bootstrap, &replies, ctx.partitions).await?;
    let bootstrap = ctx.bootstrap.clone();
    let warmup = warmup.max(1);
    let (took, mut samples) = tokio::task::spawn_blocking(move || {
        let stop = AtomicBool::new(false);
        let server_down = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let server = scope.spawn(|| {
                let group = format!("bench-ask-raw-server-{id}");
                let r = raw_ask_server(&bootstrap, &group, &requests, &replies, &stop);
                server_down.store(true, Ordering::Relaxed);
                r
            });
            let group = format!("bench-ask-raw-client-{id}");
            let asked = raw_ask_client(
                &bootstrap,
                &group,
                &requests,
                &replies,
                (n, warmup),
                &server_down,
            );
            stop.store(true, Ordering::Relaxed);
            let served = server
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the server thread panicked")));
            served.context("rdkafka-raw server")?;
            asked
        })
    })
    .await??;
    Ok(Measurement::new("kafka-ask", "rdkafka-raw", 1, n)
        .timed(took)
        .latencies(&mut samples)
        .setup(format!(
            "server thread: BaseConsumer::poll on the request topic -> ThreadedProducer::send of x + 1 keyed by \
             the request's correlation id to the reply topic; client: send a request, poll the reply topic's \
             BaseConsumer until its id comes back; {} partitions per topic; librdkafka settings as faust-kafka's \
             (fetch.wait.max.ms=10) but linger.ms=0 on both producers; sequential asks after {warmup} warm-up \
             asks; {}",
            ctx.partitions,
            crate::runtime_label()
        )))
}

async fn faust_join(ctx: &Ctx, n: u64) -> Result<Measurement> {
    let (app, agent) = echo_app(ctx, "join").await?;
    let _: i64 = agent.ask(&0i64).await?;
    let took = join_once(&agent, n).await?;
    app.stop().await?;
    Ok(Measurement::new("kafka-join", "faust-rs", 1, n).timed(took).setup(format!(
        "handler agent (x + 1) on kafka://{}, {} partitions, one agent.join of {n} values after one warm-up ask; {}",
        ctx.bootstrap,
        ctx.partitions,
        crate::runtime_label()
    )))
}
