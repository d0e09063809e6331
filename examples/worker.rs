//! Run with: FAUST_BROKER=kafka://127.0.0.1:9092 cargo run --example worker
//!
//! A worker process with one agent, configured entirely from the
//! environment. Start several with the same `FAUST_APP_ID` and they share
//! the agent's partitions as one consumer group. The real-broker suite
//! (`tests/broker_suite.rs`) starts, stops and kills these processes; you
//! can do the same by hand (see `docs/kafka.md`).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FAUST_BROKER` | `memory://` | broker URL, e.g. `kafka://127.0.0.1:9092?consumer.session.timeout.ms=6000` |
//! | `FAUST_APP_ID` | `faust-worker` | app id: the consumer group |
//! | `WORKER_ID` | `worker-<pid>` | this process's name in output lines and replies |
//! | `WORKER_AGENT` | `events` | agent name (a client declares the same name and topic to call it) |
//! | `WORKER_TOPIC` | `<app id>-events` | the topic the agent consumes |
//! | `WORKER_MODE` | `shared` | `shared`: `WORKER_CONCURRENCY` actors share one queue; `isolated`: one actor per assigned partition |
//! | `WORKER_CONCURRENCY` | `1` | actors of a `shared` agent |
//! | `WORKER_PARTITIONS` | `8` | partitions of the topic if this worker creates it |
//! | `WORKER_DELAY_MS` | `0` | time the agent spends on each event |
//! | `WORKER_STALL_FILE` | none | while this file exists, the agent holds the event it is on (a stalled agent: back-pressure builds up) |
//! | `WORKER_BUFFER` | `4096` | capacity of the agent's queue (`stream_buffer_maxsize`); a full queue pauses consumption |
//! | `WORKER_OUTPUT` | none | file to which each processed event is appended as one line |
//! | `WORKER_SINK_TOPIC` | none | topic to which each event's answer is also produced (a topic sink) |
//! | `WORKER_READY_TIMEOUT_S` | `60` | how long to wait for a first assignment before saying so |
//! | `RUST_LOG` | `info` | log filter (logs go to stderr) |
//!
//! The agent takes any JSON value and answers each event (so `ask`, `map`
//! and `join` work) with `{"worker", "actor", "partition", "offset",
//! "value"}`. Each processed event is appended to `WORKER_OUTPUT` as
//!
//! ```text
//! <worker> <agent> <actor> <partition> <offset> <start_us> <end_us> <value as JSON>
//! ```
//!
//! where `actor` is `p<N>` for the actor owning partition N (isolated) or
//! `a<i>` for shared actor i, and the times are microseconds since the Unix
//! epoch around the event's processing. Each line is written with one
//! `write` call before the event is answered and acked, so a `SIGKILL`
//! loses nothing already written.
//!
//! On stdout the worker prints `READY <partitions>` once the app is started
//! and the group has assigned it partitions, `ASSIGNED <partitions>`
//! whenever its assignment changes afterwards, `STOPPING` when it gets
//! SIGTERM or SIGINT, and `STOPPED` after the graceful stop that follows
//! (in-flight events finish, offsets are committed, the group is left).
//! The partitions come from the isolated agent's actors
//! (`active_partitions()`) or, for a shared agent, which does not tell, from
//! the runtime's `partitions assigned` / `partitions revoked` log events.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use faust::{Agent, AgentSpec, Sink, Stream, Yield};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// The answer to each event.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    worker: String,
    actor: String,
    partition: i32,
    offset: i64,
    value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Shared,
    Isolated,
}

/// The configuration read from the environment.
#[derive(Debug)]
struct Config {
    app_id: String,
    worker_id: String,
    agent: String,
    topic: String,
    mode: Mode,
    concurrency: usize,
    partitions: i32,
    delay: Duration,
    stall_file: Option<PathBuf>,
    buffer: usize,
    output: Option<String>,
    sink_topic: Option<String>,
    ready_timeout: Duration,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={v}: {e}")),
    }
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        let app_id = var("FAUST_APP_ID").unwrap_or_else(|| "faust-worker".into());
        let mode = match var("WORKER_MODE").as_deref().unwrap_or("shared") {
            "shared" => Mode::Shared,
            "isolated" => Mode::Isolated,
            other => anyhow::bail!("WORKER_MODE={other}: expected `shared` or `isolated`"),
        };
        Ok(Self {
            worker_id: var("WORKER_ID").unwrap_or_else(|| format!("worker-{}", std::process::id())),
            agent: var("WORKER_AGENT").unwrap_or_else(|| "events".into()),
            topic: var("WORKER_TOPIC").unwrap_or_else(|| format!("{app_id}-events")),
            mode,
            concurrency: parsed("WORKER_CONCURRENCY", 1)?,
            partitions: parsed("WORKER_PARTITIONS", 8)?,
            delay: Duration::from_millis(parsed("WORKER_DELAY_MS", 0)?),
            stall_file: var("WORKER_STALL_FILE").map(PathBuf::from),
            buffer: parsed("WORKER_BUFFER", 4096)?,
            output: var("WORKER_OUTPUT"),
            sink_topic: var("WORKER_SINK_TOPIC"),
            ready_timeout: Duration::from_secs(parsed("WORKER_READY_TIMEOUT_S", 60)?),
            app_id,
        })
    }
}

/// The output file, written one whole line per `write` call.
#[derive(Debug)]
struct Output(Option<Mutex<File>>);

impl Output {
    fn open(path: Option<&str>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self(None));
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open WORKER_OUTPUT={path}"))?;
        Ok(Self(Some(Mutex::new(file))))
    }

    fn write(&self, line: &str) -> std::io::Result<()> {
        let Some(file) = &self.0 else { return Ok(()) };
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        // One write of the whole line on an O_APPEND file: it lands in the
        // kernel before the event is acked, and survives a SIGKILL.
        file.write_all(line.as_bytes())?;
        file.flush()
    }
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default()
}

/// The agent: records each event in the output file and answers it.
fn agent_spec(cfg: &Config, output: Arc<Output>) -> AgentSpec {
    let worker = cfg.worker_id.clone();
    let agent = cfg.agent.clone();
    let delay = cfg.delay;
    let stall_file = cfg.stall_file.clone();
    let spec = AgentSpec::yielding(
        cfg.agent.clone(),
        move |mut events: Stream<Value>, out: Yield<Reply>| {
            let (worker, agent, output) = (worker.clone(), agent.clone(), output.clone());
            let stall_file = stall_file.clone();
            async move {
                let actor = match (events.active_partition(), events.concurrency_index()) {
                    (Some(tp), _) => format!("p{}", tp.partition),
                    (None, i) => format!("a{}", i.unwrap_or(0)),
                };
                while let Some(event) = events.next_event().await {
                    let start = now_us();
                    if let Some(f) = &stall_file {
                        while f.exists() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let (value, msg) = event.into_parts();
                    let (partition, offset) = (msg.partition(), msg.offset());
                    let line = format!(
                        "{worker} {agent} {actor} {partition} {offset} {start} {} {value}\n",
                        now_us()
                    );
                    output.write(&line).context("cannot write WORKER_OUTPUT")?;
                    out.send(Reply {
                        worker: worker.clone(),
                        actor: actor.clone(),
                        partition,
                        offset,
                        value,
                    })
                    .await?;
                }
                Ok::<_, anyhow::Error>(())
            }
        },
    )
    .topic(cfg.topic.clone())
    .partitions(cfg.partitions)
    .help("records each event and answers it with where it was processed");
    let spec = match &cfg.sink_topic {
        Some(topic) => spec.sink(Sink::<Reply>::topic(topic.clone())),
        None => spec,
    };
    match cfg.mode {
        Mode::Shared => spec.concurrency(cfg.concurrency),
        Mode::Isolated => spec.isolated_partitions(true),
    }
}

/// The partitions of the topic this worker owns, as the runtime's
/// conductor reports them in its `partitions assigned` / `partitions
/// revoked` events. A shared agent does not tell which partitions its app
/// owns, so for `WORKER_MODE=shared` the worker listens to these events
/// (isolated agents have `active_partitions()`).
#[derive(Clone, Debug)]
struct Assignment {
    topic: String,
    owned: Arc<Mutex<BTreeSet<i32>>>,
}

impl Assignment {
    fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            owned: Arc::default(),
        }
    }

    fn get(&self) -> Vec<i32> {
        let owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        owned.iter().copied().collect()
    }

    /// The partitions of our topic in the runtime's compact form:
    /// `orders[0-3,6] other[0-7]` (topics apart by spaces, ranges by commas).
    fn parse(&self, compact: &str) -> Vec<i32> {
        let mut found = Vec::new();
        for item in compact.split_whitespace() {
            let Some((topic, ranges)) = item.split_once('[') else {
                continue;
            };
            let Some(ranges) = ranges.strip_suffix(']') else {
                continue;
            };
            if topic != self.topic {
                continue;
            }
            for range in ranges.split(',') {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(start), Ok(end)) = (start.parse::<i32>(), end.parse::<i32>()) {
                    found.extend(start..=end);
                }
            }
        }
        found
    }
}

/// Collects the `message` and `partitions` fields of an event.
#[derive(Default)]
struct Fields {
    message: String,
    partitions: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "partitions" => self.partitions = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Assignment {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let partitions = self.parse(&fields.partitions);
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        match fields.message.as_str() {
            "partitions assigned" => owned.extend(partitions),
            "partitions revoked" => owned.retain(|p| !partitions.contains(p)),
            _ => {}
        }
    }
}

fn show(partitions: &[i32]) -> String {
    let parts: Vec<String> = partitions.iter().map(i32::to_string).collect();
    format!("[{}]", parts.join(","))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Where the worker learns which partitions it owns.
enum Owned {
    /// The isolated agent's actors: one per owned partition.
    Actors(Agent),
    /// The runtime's rebalance events.
    Events(Assignment),
}

impl Owned {
    fn get(&self) -> Vec<i32> {
        match self {
            Owned::Actors(agent) => agent
                .active_partitions()
                .iter()
                .map(|tp| tp.partition)
                .collect(),
            Owned::Events(assignment) => assignment.get(),
        }
    }
}

/// Print `READY` once the worker owns partitions, then every change.
async fn watch_assignment(owned: Owned, ready_timeout: Duration) {
    let t0 = Instant::now();
    let mut warned = false;
    let mut last = loop {
        let now = owned.get();
        if !now.is_empty() {
            say(&format!(
                "READY {} after {:.1} s",
                show(&now),
                t0.elapsed().as_secs_f64()
            ));
            break now;
        }
        if !warned && t0.elapsed() > ready_timeout {
            warned = true;
            eprintln!(
                "worker: no partition assigned after {ready_timeout:?} (more workers than partitions?)"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = owned.get();
        if now != last {
            say(&format!("ASSIGNED {}", show(&now)));
            last = now;
        }
    }
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is
/// called, before the app starts, so an early signal still stops gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            say("STOPPING");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            say("STOPPING");
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::from_env()?;
    let assignment = Assignment::new(&cfg.topic);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    let rebalances = assignment.clone().with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("faust_core::app::conductor", tracing::Level::INFO),
    );
    tracing_subscriber::registry()
        .with(logs)
        .with(rebalances)
        .init();
    let shutdown = shutdown_signal()?;
    let output = Arc::new(Output::open(cfg.output.as_deref())?);

    let app = faust::app_builder(cfg.app_id.clone())
        .stream_buffer_maxsize(cfg.buffer)
        .with_env()
        .build()?;
    let agent = app.add_agent(agent_spec(&cfg, output))?;
    let owned = match cfg.mode {
        Mode::Isolated => Owned::Actors(agent.clone()),
        Mode::Shared => Owned::Events(assignment),
    };
    eprintln!(
        "worker {}: app {} on {}, agent @{} topic {} ({:?}, concurrency {})",
        cfg.worker_id,
        app.id(),
        app.config().broker,
        agent.name(),
        agent.topic(),
        cfg.mode,
        agent.concurrency()
    );

    app.start().await?;
    let watcher = tokio::spawn(watch_assignment(owned, cfg.ready_timeout));
    // `run_until` finds the app started; it stops it gracefully on a signal.
    let result = app.run_until(shutdown).await;
    watcher.abort();
    result?;
    let stats = agent.stats();
    say(&format!(
        "STOPPED events_in={} values_out={} errors={} crashes={}",
        stats.events_in(),
        stats.values_out(),
        stats.errors(),
        stats.crashes()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Assignment;

    #[test]
    fn parses_the_runtime_compact_partitions() {
        let a = Assignment::new("orders");
        assert_eq!(
            a.parse("orders[0-2,5,7-8] orders-dlq[0-7]"),
            [0, 1, 2, 5, 7, 8]
        );
        assert_eq!(a.parse("none"), Vec::<i32>::new());
    }
}
