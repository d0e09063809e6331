//! Scale curves: throughput and peak RSS of faust-rs as one dimension of
//! the work grows (agents in one app, partitions of the input topic, asks
//! in flight, values in one join). Each x value (`--points`) is measured in
//! a fresh process, so each point's peak RSS is its own; the line carries
//! the x value in `point`. Run only when named with `--workload`;
//! `bench/plot_scale.py` draws them.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use faust::{AgentSpec, Stream};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::mem::{join_once, memory_app, wait_fed, Done};
use crate::report::Measurement;
use crate::{Args, Sizes};

/// The scale workloads, in the order they run when several are named.
pub(crate) const WORKLOADS: &[&str] = &[
    "scale-agents",
    "scale-partitions",
    "scale-asks",
    "scale-join",
    "scale-kafka-partitions",
    "scale-kafka-asks",
    "scale-kafka-join",
];

/// How long one point may wait for its events, replies or consumer group
/// (the parent's `--timeout` kills the whole process later still).
const WAIT: Duration = Duration::from_secs(600);

pub(crate) fn is_scale(workload: &str) -> bool {
    WORKLOADS.contains(&workload)
}

fn is_kafka(workload: &str) -> bool {
    workload.starts_with("scale-kafka-")
}

/// The x values of a curve when `--points` gives none.
fn default_points(workload: &str) -> &'static [u64] {
    match workload {
        "scale-agents" => &[1, 10, 100],
        "scale-partitions" | "scale-kafka-partitions" => &[8, 32, 128, 512, 1024],
        "scale-asks" | "scale-kafka-asks" => &[1, 10, 100, 1_000, 10_000],
        "scale-join" => &[1_000, 10_000, 100_000, 1_000_000],
        "scale-kafka-join" => &[1_000, 10_000, 100_000],
        _ => &[],
    }
}

/// Asks of one point with `in_flight` asks at a time: `--asks`, but at
/// least ten waves.
fn asks_of(in_flight: u64, s: &Sizes) -> u64 {
    s.asks.max(10 * in_flight)
}

/// What the `events` of a point count.
fn events_of(workload: &str, x: u64, s: &Sizes) -> u64 {
    match workload {
        "scale-agents" | "scale-partitions" => s.events,
        "scale-kafka-partitions" => s.kafka_events,
        "scale-asks" | "scale-kafka-asks" => asks_of(x, s),
        _ => x,
    }
}

/// Run every point of a scale workload, one process each, and print their
/// lines. Returns how many failed.
pub(crate) fn parent(args: &Args, workload: &str, s: &Sizes, kafka_up: bool) -> Result<usize> {
    let points: Vec<u64> = if args.points.is_empty() {
        default_points(workload).to_vec()
    } else {
        args.points.clone()
    };
    ensure!(
        points.iter().all(|&x| x >= 1),
        "--points must all be at least 1"
    );
    let levels = if workload.ends_with("-partitions") {
        args.concurrency.clone()
    } else {
        vec![1]
    };
    let skip = if !is_kafka(workload) {
        None
    } else if !kafka_up {
        Some(format!("no Kafka broker answers on {}", args.kafka))
    } else if !cfg!(feature = "kafka") {
        Some("faust-bench built without the `kafka` feature".to_string())
    } else {
        None
    };
    let mut failed = 0;
    for &x in &points {
        // scale-kafka-partitions: one preloaded topic of x partitions per
        // point, read by every concurrency level with its own group.
        let mut input_topic = None;
        let mut skip = skip.clone();
        if workload == "scale-kafka-partitions" && skip.is_none() {
            match preload(args, x, s.kafka_events) {
                Ok(t) => input_topic = Some(t),
                Err(e) => skip = Some(format!("could not preload the input topic: {e:#}")),
            }
        }
        for &c in &levels {
            let blank =
                Measurement::new(workload, "faust-rs", c, events_of(workload, x, s)).point(x);
            let m = match &skip {
                Some(why) => blank.skipped(why.clone()),
                None => crate::best_of(args.repeat.max(1), || {
                    run_point(args, workload, x, c, s, input_topic.as_deref())
                        .unwrap_or_else(|e| blank.clone().failed(format!("{e:#}")))
                }),
            };
            if m.status == "failed" {
                failed += 1;
            }
            crate::summary(&m);
            println!("{}", serde_json::to_string(&m)?);
        }
    }
    Ok(failed)
}

/// One point in a fresh `--child` process.
fn run_point(
    args: &Args,
    workload: &str,
    x: u64,
    concurrency: usize,
    s: &Sizes,
    input_topic: Option<&str>,
) -> Result<Measurement> {
    let exe = std::env::current_exe().context("locating faust-bench")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--child")
        .args(["--workload", workload, "--impl", "faust-rs"])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--points", &x.to_string()])
        .args([
            "--flavor",
            clap::ValueEnum::to_possible_value(&args.flavor)
                .expect("no skipped variants")
                .get_name(),
        ])
        .args(crate::size_flags(args, s));
    if let Some(t) = input_topic {
        cmd.args(["--input-topic", t]);
    }
    crate::run_measurement(cmd, s.timeout)
}

#[cfg(feature = "kafka")]
fn preload(args: &Args, partitions: u64, n: u64) -> Result<String> {
    let partitions = i32::try_from(partitions).context("partitions out of range")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let t = Instant::now();
    let topic = rt.block_on(crate::kafka::preload(&args.kafka, partitions, n))?;
    eprintln!(
        "faust-bench: preloaded {n} records into {topic} ({partitions} partitions) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(topic)
}

#[cfg(not(feature = "kafka"))]
fn preload(_: &Args, _: u64, _: u64) -> Result<String> {
    bail!("built without the `kafka` feature")
}

/// `--child`: the point `--points X` of a scale workload.
pub(crate) async fn child(
    args: &Args,
    workload: &str,
    concurrency: usize,
    s: &Sizes,
) -> Result<Measurement> {
    let &[x] = args.points.as_slice() else {
        bail!("--child {workload} needs exactly one --points value");
    };
    let kafka = is_kafka(workload).then_some(args.kafka.as_str());
    let m = match workload {
        "scale-agents" => agents(x, s.events).await?,
        "scale-partitions" => mem_partitions(x, concurrency, s.events).await?,
        #[cfg(feature = "kafka")]
        "scale-kafka-partitions" => {
            let topic = args
                .input_topic
                .as_deref()
                .context("scale-kafka-partitions needs --input-topic (the parent preloads one)")?;
            kafka_partitions(&args.kafka, topic, x, concurrency, s.kafka_events).await?
        }
        "scale-asks" | "scale-kafka-asks" => asks(workload, kafka, x, s).await?,
        "scale-join" | "scale-kafka-join" => join(workload, kafka, x).await?,
        w => bail!("no scale workload `{w}`"),
    };
    Ok(m.point(x))
}

fn partitions_i32(x: u64) -> Result<i32> {
    i32::try_from(x).context("partitions out of range")
}

/// Wait for `done` at most [`WAIT`].
async fn wait_done(done: &Done, what: &str) -> Result<Instant> {
    tokio::time::timeout(WAIT, done.wait())
        .await
        .map_err(|_| anyhow::anyhow!("{what}: not every event was processed within {WAIT:?}"))?;
    Ok(Instant::now())
}

/// A consumer agent counting `u64` values.
fn counting_agent(name: String, done: &std::sync::Arc<Done>) -> AgentSpec {
    let d = done.clone();
    AgentSpec::consumer(name, move |mut s: Stream<u64>| {
        let d = d.clone();
        async move {
            while let Some(v) = s.next().await {
                d.hit(v);
            }
            Ok::<_, faust::Error>(())
        }
    })
}

/// `k` counting consumer agents in one app on `memory://`, each on its own
/// topic (the app's default partitions); one task sends `0..n`, value `i`
/// to agent `i % k`. Timed from the first send to the last event counted.
async fn agents(k: u64, n: u64) -> Result<Measurement> {
    let app = memory_app("bench-scale-agents")?;
    let done = Done::new(n);
    let mut agents = Vec::new();
    for i in 0..k {
        let spec = counting_agent(format!("count-{i}"), &done).topic(format!("bench-scale-{i}"));
        agents.push(app.add_agent(spec)?);
    }
    let partitions = app.config().topic_partitions;
    app.start().await?;
    let start = Instant::now();
    let feeder = tokio::spawn(async move {
        let k = agents.len() as u64;
        for i in 0..n {
            agents[(i % k) as usize].send(&i).await?;
        }
        Ok::<(), anyhow::Error>(())
    });
    let end = tokio::time::timeout(WAIT, wait_fed(&done, feeder))
        .await
        .map_err(|_| anyhow::anyhow!("not every event was processed within {WAIT:?}"))??;
    done.check()?;
    app.stop().await?;
    Ok(Measurement::new("scale-agents", "faust-rs", 1, n)
        .timed(end - start)
        .setup(format!(
            "{k} consumer agents (concurrency 1) in one app, each on its own topic of {partitions} \
             partitions, memory:// broker, u64 values as JSON; one task sends {n} values in turn to \
             each agent with agent.send; {}",
            crate::runtime_label()
        )))
}

/// One counting consumer agent (`concurrency` actors) on a `memory://`
/// topic of `p` partitions; one task sends `0..n` (keyless: round-robin
/// over the partitions). Timed from the first send to the last event.
async fn mem_partitions(p: u64, concurrency: usize, n: u64) -> Result<Measurement> {
    let app = memory_app("bench-scale-partitions")?;
    let done = Done::new(n);
    let spec = counting_agent("count".into(), &done)
        .concurrency(concurrency)
        .partitions(partitions_i32(p)?)
        .topic("bench-scale-partitions");
    let agent = app.add_agent(spec)?;
    app.start().await?;
    let start = Instant::now();
    let feeder = crate::mem::feed!(agent, n);
    let end = tokio::time::timeout(WAIT, wait_fed(&done, feeder))
        .await
        .map_err(|_| anyhow::anyhow!("not every event was processed within {WAIT:?}"))??;
    done.check()?;
    app.stop().await?;
    Ok(
        Measurement::new("scale-partitions", "faust-rs", concurrency, n)
            .timed(end - start)
            .setup(format!(
                "consumer agent (concurrency {concurrency}) on a memory:// topic of {p} partitions, \
                 u64 values as JSON, fed round-robin by one task calling agent.send; {}",
                crate::runtime_label()
            )),
    )
}

/// The preloaded records of kafka-e2e: their `id` (the filler body is
/// skipped when decoding).
#[cfg(feature = "kafka")]
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Preloaded {
    id: u64,
}

/// One counting consumer agent (`concurrency` actors) reading a preloaded
/// Kafka topic of `p` partitions with a fresh group. Timed from the first
/// event seen (after the group's assignment) to the last one counted.
#[cfg(feature = "kafka")]
async fn kafka_partitions(
    bootstrap: &str,
    topic: &str,
    p: u64,
    concurrency: usize,
    n: u64,
) -> Result<Measurement> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let app = faust::app_builder(format!("bench-scale-partitions-{}", &id[..8]))
        .broker(format!("kafka://{bootstrap}"))
        .metrics(crate::metrics_on())
        .build()?;
    let done = Done::new(n);
    let first: std::sync::Arc<std::sync::OnceLock<Instant>> = Default::default();
    let (d, f) = (done.clone(), first.clone());
    let spec = AgentSpec::consumer("count", move |mut s: Stream<Preloaded>| {
        let (d, f) = (d.clone(), f.clone());
        async move {
            while let Some(v) = s.next().await {
                f.get_or_init(Instant::now);
                d.hit(v.id);
            }
            Ok::<_, faust::Error>(())
        }
    })
    .concurrency(concurrency)
    .topic(topic.to_string());
    app.add_agent(spec)?;
    let started = Instant::now();
    app.start().await?;
    let end = wait_done(&done, "scale-kafka-partitions").await?;
    let start = *first.get().context("no event seen")?;
    let assigned = start.saturating_duration_since(started);
    done.check()?;
    app.stop().await?;
    Ok(
        Measurement::new("scale-kafka-partitions", "faust-rs", concurrency, n)
            .timed(end - start)
            .setup(format!(
                "consumer agent (concurrency {concurrency}) reading a preloaded topic of {p} partitions \
                 (~{}-byte JSON records) on kafka://{bootstrap} with a fresh group; timed from the first \
                 event seen ({:.2} s after App::start) to the last one counted; {}",
                crate::kafka::PAYLOAD_BYTES,
                assigned.as_secs_f64(),
                crate::runtime_label()
            )),
    )
}

/// A handler agent answering `x + 1`, on a fresh `memory://` broker or on
/// Kafka (`kafka` is the bootstrap server), its topics named `bench-*`.
async fn echo(what: &str, kafka: Option<&str>) -> Result<(faust::App, faust::Agent)> {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let app = match kafka {
        None => memory_app(&format!("bench-scale-{what}"))?,
        Some(bootstrap) => faust::app_builder(format!("bench-scale-{what}-{id}"))
            .broker(format!("kafka://{bootstrap}"))
            .reply_to_prefix("bench-reply-")
            .metrics(crate::metrics_on())
            .build()?,
    };
    let agent = app.add_agent(
        AgentSpec::handler("echo", |x: i64| async move { Ok::<_, faust::Error>(x + 1) })
            .topic(format!("bench-scale-{what}-{id}")),
    )?;
    app.start().await?;
    Ok((app, agent))
}

fn transport_of(app: &faust::App) -> String {
    let b = &app.config().broker;
    if b.starts_with("memory://") {
        "memory://".into()
    } else {
        b.clone()
    }
}

/// `asks_of(k)` asks of the `x + 1` agent with `k` in flight at a time
/// (`buffer_unordered(k)` of `agent.ask`, driven from the main task as
/// mem-ask's sequential asks are), after `--warmup` sequential asks.
/// Round trips measured per ask, from its first poll to its answer.
async fn asks(workload: &str, kafka: Option<&str>, k: u64, s: &Sizes) -> Result<Measurement> {
    let (app, agent) = echo("asks", kafka).await?;
    let warmup = s.warmup.max(1);
    for i in 0..warmup as i64 {
        let r: i64 = agent.ask(&i).await?;
        ensure!(r == i + 1, "ask({i}) answered {r}");
    }
    let n = asks_of(k, s);
    let agent_ref = &agent;
    let start = Instant::now();
    let asked = futures::stream::iter(0..n as i64)
        .map(|i| async move {
            let t = Instant::now();
            let r: i64 = agent_ref.ask(&i).await?;
            ensure!(r == i + 1, "ask({i}) answered {r}");
            Ok::<_, anyhow::Error>(t.elapsed())
        })
        .buffer_unordered(k as usize)
        .collect::<Vec<_>>();
    let results = tokio::time::timeout(WAIT, asked)
        .await
        .map_err(|_| anyhow::anyhow!("{n} asks not answered within {WAIT:?}"))?;
    let took = start.elapsed();
    let mut samples = results.into_iter().collect::<Result<Vec<_>>>()?;
    let transport = transport_of(&app);
    app.stop().await?;
    Ok(Measurement::new(workload, "faust-rs", 1, n)
        .timed(took)
        .latencies(&mut samples)
        .setup(format!(
            "handler agent (x + 1) on {transport}, {n} agent.ask with {k} in flight \
             (buffer_unordered) after {warmup} sequential warm-up asks; {}",
            crate::runtime_label()
        )))
}

/// One `agent.join` of `0..n` against the `x + 1` agent, after one warm-up
/// ask; answers checked in input order.
async fn join(workload: &str, kafka: Option<&str>, n: u64) -> Result<Measurement> {
    let (app, agent) = echo("join", kafka).await?;
    let _: i64 = agent.ask(&0i64).await?;
    let took = tokio::time::timeout(WAIT, join_once(&agent, n))
        .await
        .map_err(|_| anyhow::anyhow!("join of {n} values not done within {WAIT:?}"))??;
    let transport = transport_of(&app);
    app.stop().await?;
    Ok(Measurement::new(workload, "faust-rs", 1, n)
        .timed(took)
        .setup(format!(
            "handler agent (x + 1) on {transport}, one agent.join of {n} values after one warm-up ask; {}",
            crate::runtime_label()
        )))
}
