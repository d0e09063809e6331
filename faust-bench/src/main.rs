//! `faust-bench`: faust for Rust measured side by side with its baselines
//! (raw tokio channels, raw rdkafka, Python Faust, the JVM's Kafka clients,
//! Kafka Streams and Spring Kafka) in the same run.
//!
//! Prints one JSON line per measurement on stdout (schema in
//! `docs/benchmarks.md`); progress goes to stderr. Every measurement runs
//! in a fresh process (this binary re-executed with `--child`, the Python
//! peer or a JVM peer), so its peak RSS is its own.
//!
//! ```text
//! faust-bench                                  # everything, full sizes
//! faust-bench --smoke                          # tiny sizes (CI)
//! faust-bench --workload mem-throughput --impl faust-rs,tokio-raw --events 200000
//! faust-bench --workload scale-asks --points 1,100,10000   # a scale curve
//! ```

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The global allocator of this process, for the `setup` field.
const ALLOCATOR_LABEL: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "the system's malloc"
};

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, ValueEnum};

mod batch;
mod io;
mod jvm;
#[cfg(feature = "kafka")]
mod kafka;
mod mem;
mod report;
mod scale;

use report::Measurement;

/// Every workload of the default run, in the order they run (the scale
/// curves, `scale::WORKLOADS`, run only when named).
const WORKLOADS: &[&str] = &[
    "mem-throughput",
    "mem-batch",
    "mem-io",
    "mem-ask",
    "mem-join",
    "kafka-e2e",
    "kafka-batch",
    "kafka-ask",
    "kafka-join",
];

/// Every implementation measured somewhere.
const IMPLS: &[&str] = &[
    "faust-rs",
    "faust-rs-metrics-off",
    "tokio-raw",
    "rdkafka-raw",
    "python-faust",
    "java-relay",
    "java-relay-tuned",
    "kafka-streams",
    "kafka-streams-eos",
    "spring-ask",
    "spring-ask-linger0",
];

/// `faust-rs-metrics-off`: faust-rs with the processing-time histogram off
/// (`AppBuilder::metrics(false)`), the baseline of the metrics' cost.
const METRICS_OFF: &str = "faust-rs-metrics-off";

static METRICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether this process measures faust-rs with its metrics on.
pub(crate) fn metrics_on() -> bool {
    METRICS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Who is measured for a workload: baselines first, faust-rs last (its
/// line carries the ratios).
fn impls_of(workload: &str) -> &'static [&'static str] {
    match workload {
        "mem-throughput" => &["tokio-raw", "python-faust", METRICS_OFF, "faust-rs"],
        "mem-ask" | "mem-join" => &["tokio-raw", "faust-rs"],
        "mem-batch" | "mem-io" | "kafka-batch" => &["faust-rs"],
        "kafka-e2e" => &[
            "rdkafka-raw",
            "python-faust",
            "java-relay",
            "java-relay-tuned",
            "kafka-streams",
            "kafka-streams-eos",
            METRICS_OFF,
            "faust-rs",
        ],
        "kafka-ask" => &[
            "python-faust",
            "spring-ask",
            "spring-ask-linger0",
            "rdkafka-raw",
            "faust-rs",
        ],
        "kafka-join" => &["python-faust", "faust-rs"],
        w if scale::is_scale(w) => &["faust-rs"],
        _ => &[],
    }
}

/// Whether a workload runs once per `--concurrency` value.
fn per_concurrency(workload: &str) -> bool {
    matches!(
        workload,
        "mem-throughput" | "mem-batch" | "mem-io" | "kafka-e2e" | "kafka-batch"
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flavor {
    /// tokio's multi-thread runtime, one worker per core (the default of `#[tokio::main]`).
    MultiThread,
    /// tokio's current-thread runtime.
    CurrentThread,
}

/// faust for Rust side by side with raw tokio, raw rdkafka, Python Faust and
/// the JVM's Kafka clients, Kafka Streams and Spring Kafka.
#[derive(Clone, Debug, Parser)]
#[command(name = "faust-bench", version, about, long_about = None)]
struct Args {
    /// Workloads to run, comma-separated (default: all). One of:
    /// mem-throughput, mem-batch, mem-io, mem-ask, mem-join, kafka-e2e, kafka-batch,
    /// kafka-ask, kafka-join; or, only when named, a scale curve:
    /// scale-agents, scale-partitions, scale-asks, scale-join,
    /// scale-kafka-partitions, scale-kafka-asks, scale-kafka-join.
    #[arg(long, value_delimiter = ',')]
    workload: Vec<String>,
    /// Implementations to measure, comma-separated (default: all). One of:
    /// faust-rs, faust-rs-metrics-off, tokio-raw, rdkafka-raw, python-faust,
    /// java-relay, java-relay-tuned, kafka-streams, kafka-streams-eos,
    /// spring-ask, spring-ask-linger0.
    #[arg(long = "impl", value_delimiter = ',')]
    impls: Vec<String>,
    /// Concurrency (actors / consumer tasks) of the throughput workloads.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 4])]
    concurrency: Vec<usize>,
    /// Tiny sizes for every workload (CI smoke run); explicit sizes win.
    #[arg(long)]
    smoke: bool,
    /// Events of mem-throughput and mem-batch for Rust [default: 1000000;
    /// smoke 20000].
    #[arg(long)]
    events: Option<u64>,
    /// Events of mem-throughput for Python Faust [default: 200000; smoke 5000].
    #[arg(long)]
    python_events: Option<u64>,
    /// Events of mem-io (100 µs of simulated I/O each) [default: 20000;
    /// smoke 500].
    #[arg(long)]
    io_events: Option<u64>,
    /// Events of kafka-e2e and kafka-batch for Rust [default: 1000000;
    /// smoke 2000].
    #[arg(long)]
    kafka_events: Option<u64>,
    /// Events of kafka-e2e for Python Faust [default: 100000; smoke 1000].
    #[arg(long)]
    python_kafka_events: Option<u64>,
    /// Sequential asks of the ask workloads [default: 10000; smoke 200].
    #[arg(long)]
    asks: Option<u64>,
    /// Asks for Python Faust [default: 2000; smoke: same as --asks].
    /// faust-streaming 0.15.3 was seen to lose a reply (and hang, its ask
    /// has no deadline) after about 3 000 sequential asks here.
    #[arg(long)]
    python_asks: Option<u64>,
    /// Values of the join workloads [default: 10000; smoke 200].
    #[arg(long)]
    join: Option<u64>,
    /// Values joined by Python Faust [default: 1000; smoke: same as --join].
    /// Faust's join cannot go beyond 1000: its barrier queue has
    /// `maxsize=1000` and overflows.
    #[arg(long)]
    python_join: Option<u64>,
    /// Unmeasured asks before the measured ones [default: 100; smoke 10].
    #[arg(long)]
    warmup: Option<u64>,
    /// Python interpreter with faust-streaming (scripts/python-env.sh
    /// prints one); without it python-faust is skipped.
    #[arg(long, env = "FAUST_BENCH_PYTHON")]
    python: Option<PathBuf>,
    /// The Python peer script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/python/faust_bench.py"))]
    python_script: PathBuf,
    /// Directory with the JVM peers' jars, faust-bench-kafka.jar and
    /// faust-bench-spring.jar (scripts/bench.sh builds them into
    /// bench/java/target); without it the JVM peers are skipped.
    #[arg(long, env = "FAUST_BENCH_JAVA_JARS")]
    java_jars: Option<PathBuf>,
    /// Java runtime of the JVM peers (17 or later).
    #[arg(long, env = "FAUST_BENCH_JAVA", default_value = "java")]
    java: PathBuf,
    /// Kafka bootstrap server of the kafka-* workloads (skipped when
    /// nothing answers there).
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka: String,
    /// Query string appended to faust-rs's broker URL in the `kafka-*`
    /// workloads (not the `scale-*` curves), e.g.
    /// `producer.linger.ms=2&consumer.fetch.wait.max.ms=5` (faust-kafka's
    /// settings, as in a user's URL); peers are unaffected.
    #[arg(long, default_value = "")]
    kafka_params: String,
    /// Partitions of the topics the Kafka workloads create.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Run every measurement this many times (each in a fresh process) and
    /// keep the best: highest events/s, or lowest p50 for ask workloads.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// tokio runtime of the Rust measurements.
    #[arg(long, value_enum, default_value_t = Flavor::MultiThread)]
    flavor: Flavor,
    /// Seconds one measurement may take before it is killed and reported
    /// failed [default: 1200; smoke 60].
    #[arg(long)]
    timeout: Option<u64>,
    /// x values of the scale curves, comma-separated: agents, partitions,
    /// asks in flight or values joined [default: 1,10,100 agents;
    /// 8,32,128,512,1024 partitions; 1,10,100,1000,10000 asks in flight;
    /// 1000..1000000 values joined, 1000..100000 on Kafka].
    #[arg(long, value_delimiter = ',')]
    points: Vec<u64>,
    /// Internal: run exactly one Rust measurement in this process and
    /// print its line (`--workload`, `--impl` and `--concurrency` name it).
    #[arg(long, hide = true)]
    child: bool,
    /// Internal: the preloaded input topic of kafka-e2e and kafka-batch.
    #[arg(long, hide = true)]
    input_topic: Option<String>,
}

/// Sizes after `--smoke` and explicit values.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    events: u64,
    python_events: u64,
    io_events: u64,
    kafka_events: u64,
    python_kafka_events: u64,
    asks: u64,
    python_asks: u64,
    join: u64,
    python_join: u64,
    warmup: u64,
    timeout: Duration,
}

impl Args {
    fn sizes(&self) -> Sizes {
        let pick = |v: Option<u64>, full: u64, smoke: u64| {
            v.unwrap_or(if self.smoke { smoke } else { full })
        };
        let asks = pick(self.asks, 10_000, 200);
        Sizes {
            events: pick(self.events, 1_000_000, 20_000),
            python_events: pick(self.python_events, 200_000, 5_000),
            io_events: pick(self.io_events, 20_000, 500),
            kafka_events: pick(self.kafka_events, 1_000_000, 2_000),
            python_kafka_events: pick(self.python_kafka_events, 100_000, 1_000),
            asks,
            python_asks: self.python_asks.unwrap_or(asks.min(2_000)),
            join: pick(self.join, 10_000, 200),
            python_join: self
                .python_join
                .unwrap_or(pick(self.join, 10_000, 200).min(1_000)),
            warmup: pick(self.warmup, 100, 10),
            timeout: Duration::from_secs(pick(self.timeout, 1200, 60)),
        }
    }

    fn selected_workloads(&self) -> Result<Vec<&'static str>> {
        for w in &self.workload {
            if !WORKLOADS.contains(&w.as_str()) && !scale::is_scale(w) {
                bail!(
                    "unknown workload `{w}`; known: {}, {}",
                    WORKLOADS.join(", "),
                    scale::WORKLOADS.join(", ")
                );
            }
        }
        let named = |w: &&str| self.workload.iter().any(|x| x == w);
        Ok(WORKLOADS
            .iter()
            .copied()
            .filter(|w| self.workload.is_empty() || named(w))
            .chain(scale::WORKLOADS.iter().copied().filter(named))
            .collect())
    }

    fn wants_impl(&self, i: &str) -> Result<bool> {
        for x in &self.impls {
            if !IMPLS.contains(&x.as_str()) {
                bail!("unknown impl `{x}`; known: {}", IMPLS.join(", "));
            }
        }
        Ok(self.impls.is_empty() || self.impls.iter().any(|x| x == i))
    }
}

static RUNTIME_LABEL: OnceLock<String> = OnceLock::new();

/// The tokio runtime and allocator of this process, for the `setup` field.
pub(crate) fn runtime_label() -> String {
    let runtime = RUNTIME_LABEL.get().map_or("tokio", String::as_str);
    format!("{runtime}, {ALLOCATOR_LABEL}")
}

fn runtime(flavor: Flavor) -> Result<tokio::runtime::Runtime> {
    let (rt, label) = match flavor {
        Flavor::MultiThread => {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            (
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?,
                format!("tokio multi-thread runtime, {workers} workers"),
            )
        }
        Flavor::CurrentThread => (
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            "tokio current-thread runtime".to_string(),
        ),
    };
    let _ = RUNTIME_LABEL.set(label);
    Ok(rt)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.child {
        return child(&args);
    }
    parent(&args)
}

/// `--child`: one Rust measurement in this fresh process.
fn child(args: &Args) -> Result<()> {
    let [workload] = args.workload.as_slice() else {
        bail!("--child needs exactly one --workload");
    };
    let [imp] = args.impls.as_slice() else {
        bail!("--child needs exactly one --impl");
    };
    let concurrency = args.concurrency.first().copied().unwrap_or(1);
    let s = args.sizes();
    let rt = runtime(args.flavor)?;
    // The same measurement as faust-rs, with the metrics off.
    let measured = if imp == METRICS_OFF {
        METRICS.store(false, std::sync::atomic::Ordering::Relaxed);
        "faust-rs"
    } else {
        imp.as_str()
    };
    let m = rt.block_on(async {
        match (workload.as_str(), measured) {
            ("mem-throughput", "faust-rs") => mem::faust_throughput(s.events, concurrency).await,
            ("mem-throughput", "tokio-raw") => mem::raw_throughput(s.events, concurrency).await,
            ("mem-batch", "faust-rs") => batch::faust_mem_batch(s.events, concurrency).await,
            ("mem-io", "faust-rs") => io::faust_mem_io(s.io_events, concurrency).await,
            ("mem-ask", "faust-rs") => mem::faust_ask(s.asks, s.warmup).await,
            ("mem-ask", "tokio-raw") => mem::raw_ask(s.asks, s.warmup).await,
            ("mem-join", "faust-rs") => mem::faust_join(s.join).await,
            ("mem-join", "tokio-raw") => mem::raw_join(s.join).await,
            (w, "faust-rs") if scale::is_scale(w) => scale::child(args, w, concurrency, &s).await,
            #[cfg(feature = "kafka")]
            (w, i) if w.starts_with("kafka-") => {
                let ctx = kafka::Ctx {
                    bootstrap: args.kafka.clone(),
                    params: args.kafka_params.clone(),
                    partitions: args.partitions,
                    input_topic: args.input_topic.clone(),
                };
                kafka::run(&ctx, w, i, concurrency, &s).await
            }
            (w, i) => bail!("no Rust measurement `{i}` for workload `{w}`"),
        }
    })?;
    // Stop the runtime before reading the peak (nothing is freed from the peak anyway).
    rt.shutdown_timeout(Duration::from_secs(5));
    let mut m = m;
    m.implementation = imp.clone();
    m.peak_rss_mb = report::peak_rss_mb();
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Run the selected measurements, one process each, and print their lines.
fn parent(args: &Args) -> Result<()> {
    let sizes = args.sizes();
    let workloads = args.selected_workloads()?;
    for i in IMPLS {
        args.wants_impl(i)?;
    }
    let python = python_status(args);
    let wants_jvm = workloads
        .iter()
        .flat_map(|w| impls_of(w))
        .any(|i| jvm::is_jvm(i) && args.wants_impl(i).unwrap_or(false));
    let jvm = if wants_jvm {
        jvm::status(&args.java, args.java_jars.as_deref())
    } else {
        Err("not selected".into())
    };
    let kafka_up = broker_answers(&args.kafka);
    eprintln!(
        "faust-bench: workloads {}; python: {}; java: {}; kafka at {}: {}",
        workloads.join(","),
        match &python {
            Ok(p) => p.display().to_string(),
            Err(why) => format!("skipped ({why})"),
        },
        match &jvm {
            Ok(j) => j.jars().display().to_string(),
            Err(why) => format!("skipped ({why})"),
        },
        args.kafka,
        if kafka_up {
            "answers"
        } else {
            "not answering (kafka-* skipped)"
        }
    );
    let mut failed = 0usize;
    for workload in workloads {
        if scale::is_scale(workload) {
            if args.wants_impl("faust-rs")? {
                failed += scale::parent(args, workload, &sizes, kafka_up)?;
            }
            continue;
        }
        let levels: Vec<usize> = if per_concurrency(workload) {
            args.concurrency.clone()
        } else {
            vec![1]
        };
        let imps: Vec<&str> = impls_of(workload)
            .iter()
            .copied()
            .filter(|i| args.wants_impl(i).unwrap_or(false))
            .collect();
        if imps.is_empty() {
            continue;
        }
        // kafka-e2e, kafka-batch: one preloaded input topic shared by every implementation
        // (each reads it with its own consumer group).
        let mut input_topic = None;
        let mut kafka_skip = None;
        if workload.starts_with("kafka-") {
            if !kafka_up {
                kafka_skip = Some(format!("no Kafka broker answers on {}", args.kafka));
            } else if !cfg!(feature = "kafka") {
                kafka_skip = Some("faust-bench built without the `kafka` feature".to_string());
            } else if workload == "kafka-e2e" || workload == "kafka-batch" {
                match preload(args, &sizes) {
                    Ok(t) => input_topic = Some(t),
                    Err(e) => {
                        kafka_skip = Some(format!("could not preload the input topic: {e:#}"))
                    }
                }
            }
        }
        for &c in &levels {
            let mut baselines: Vec<Measurement> = Vec::new();
            for &imp in &imps {
                let events = events_for(workload, imp, &sizes);
                let blank = Measurement::new(workload, imp, c, events);
                let run_once = || {
                    let blank = blank.clone();
                    if let Some(why) = &kafka_skip {
                        blank.skipped(why.clone())
                    } else if imp == "python-faust" {
                        match &python {
                            Ok(py) => {
                                run_python(args, py, workload, c, &sizes, input_topic.as_deref())
                                    .unwrap_or_else(|e| blank.failed(format!("{e:#}")))
                            }
                            Err(why) => blank.skipped(why.clone()),
                        }
                    } else if jvm::is_jvm(imp) {
                        match jvm.clone().and_then(|j| j.jar(imp).map(|jar| (j, jar))) {
                            Ok((j, jar)) => j
                                .run(
                                    args,
                                    &jar,
                                    (workload, imp, c),
                                    &sizes,
                                    input_topic.as_deref(),
                                )
                                .unwrap_or_else(|e| blank.failed(format!("{e:#}"))),
                            Err(why) => blank.skipped(why.clone()),
                        }
                    } else {
                        run_child(args, workload, imp, c, &sizes, input_topic.as_deref())
                            .unwrap_or_else(|e| blank.failed(format!("{e:#}")))
                    }
                };
                let mut m = best_of(args.repeat.max(1), run_once);
                if imp == "faust-rs" {
                    m.compare(&baselines);
                }
                if m.status == "failed" {
                    failed += 1;
                }
                summary(&m);
                println!("{}", serde_json::to_string(&m)?);
                baselines.push(m);
            }
        }
    }
    if failed > 0 {
        eprintln!("faust-bench: {failed} measurement(s) failed");
        std::process::exit(1);
    }
    Ok(())
}

/// Run `k` times and keep the best successful run (the first failure or
/// skip when none succeeded).
fn best_of(k: u32, mut run: impl FnMut() -> Measurement) -> Measurement {
    let mut best: Option<Measurement> = None;
    for _ in 0..k {
        let m = run();
        if m.status == "skipped" {
            return m;
        }
        best = match best {
            None => Some(m),
            Some(b) if !b.ok() => Some(if m.ok() { m } else { b }),
            Some(b) if !m.ok() => Some(b),
            Some(b) => Some(if better(&m, &b) { m } else { b }),
        };
    }
    let mut m = best.expect("k >= 1");
    if k > 1 && m.ok() {
        m.setup = Some(format!(
            "{}; best of {k} runs",
            m.setup.as_deref().unwrap_or("")
        ));
    }
    m
}

fn better(a: &Measurement, b: &Measurement) -> bool {
    if a.workload.ends_with("-ask") {
        a.p50_us.unwrap_or(f64::MAX) < b.p50_us.unwrap_or(f64::MAX)
    } else {
        a.events_per_sec.unwrap_or(0.0) > b.events_per_sec.unwrap_or(0.0)
    }
}

fn events_for(workload: &str, imp: &str, s: &Sizes) -> u64 {
    let py = imp == "python-faust";
    match workload {
        "mem-throughput" if py => s.python_events,
        "mem-throughput" | "mem-batch" => s.events,
        "mem-io" => s.io_events,
        "kafka-e2e" if py => s.python_kafka_events,
        "kafka-e2e" | "kafka-batch" => s.kafka_events,
        "mem-ask" | "kafka-ask" if py => s.python_asks,
        "mem-ask" | "kafka-ask" => s.asks,
        "kafka-join" if py => s.python_join,
        _ => s.join,
    }
}

/// A one-line human summary on stderr.
fn summary(m: &Measurement) {
    let mut line = format!(
        "  {:<16} {:<20} c={} ",
        m.workload, m.implementation, m.concurrency
    );
    if let Some(x) = m.point {
        line += &format!("x={x} ");
    }
    if !m.ok() {
        line += &format!("{}: {}", m.status, m.reason.as_deref().unwrap_or(""));
    } else {
        if let Some(r) = m.events_per_sec {
            line += &format!("{:>12.0} ev/s ", r);
        }
        if let (Some(p50), Some(p99)) = (m.p50_us, m.p99_us) {
            line += &format!("p50 {p50:.1} µs p99 {p99:.1} µs ");
        }
        if let Some(rss) = m.peak_rss_mb {
            line += &format!("rss {rss:.1} MiB ");
        }
        for (k, v) in &m.ratio_vs {
            line += &format!("{v:.3}x {k} ");
        }
        for t in &m.targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "n/a",
            };
            line += &format!("[{}: {verdict}] ", t.target);
        }
    }
    eprintln!("{}", line.trim_end());
}

fn python_status(args: &Args) -> std::result::Result<PathBuf, String> {
    match &args.python {
        None => {
            Err("no Python: pass --python or set FAUST_BENCH_PYTHON (scripts/bench.sh does)".into())
        }
        Some(p) if !args.python_script.exists() => Err(format!(
            "Python peer {} not found (python {})",
            args.python_script.display(),
            p.display()
        )),
        Some(p) => Ok(p.clone()),
    }
}

fn broker_answers(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

#[cfg(feature = "kafka")]
fn preload(args: &Args, s: &Sizes) -> Result<String> {
    let rt = runtime(Flavor::CurrentThread)?;
    let n = s.kafka_events.max(s.python_kafka_events);
    let t = Instant::now();
    let topic = rt.block_on(kafka::preload(&args.kafka, args.partitions, n))?;
    eprintln!(
        "faust-bench: preloaded {n} records of ~{} bytes into {topic} in {:.1} s",
        kafka::PAYLOAD_BYTES,
        t.elapsed().as_secs_f64()
    );
    Ok(topic)
}

#[cfg(not(feature = "kafka"))]
fn preload(_: &Args, _: &Sizes) -> Result<String> {
    bail!("built without the `kafka` feature")
}

/// Common flags of a child or Python peer run.
fn size_flags(args: &Args, s: &Sizes) -> Vec<String> {
    let mut v = vec![
        "--events".into(),
        s.events.to_string(),
        "--python-events".into(),
        s.python_events.to_string(),
        "--io-events".into(),
        s.io_events.to_string(),
        "--kafka-events".into(),
        s.kafka_events.to_string(),
        "--python-kafka-events".into(),
        s.python_kafka_events.to_string(),
        "--asks".into(),
        s.asks.to_string(),
        "--python-asks".into(),
        s.python_asks.to_string(),
        "--join".into(),
        s.join.to_string(),
        "--python-join".into(),
        s.python_join.to_string(),
        "--warmup".into(),
        s.warmup.to_string(),
        "--kafka".into(),
        args.kafka.clone(),
        "--partitions".into(),
        args.partitions.to_string(),
    ];
    if args.smoke {
        v.push("--smoke".into());
    }
    v
}

fn run_child(
    args: &Args,
    workload: &str,
    imp: &str,
    concurrency: usize,
    s: &Sizes,
    input_topic: Option<&str>,
) -> Result<Measurement> {
    let exe = std::env::current_exe().context("locating faust-bench")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .args(["--workload", workload, "--impl", imp])
        .args(["--concurrency", &concurrency.to_string()])
        .args([
            "--flavor",
            args.flavor
                .to_possible_value()
                .expect("no skipped variants")
                .get_name(),
        ])
        .args(size_flags(args, s));
    if !args.kafka_params.is_empty() {
        // faust-rs's own settings: only this binary's children take them.
        cmd.args(["--kafka-params", &args.kafka_params]);
    }
    if let Some(t) = input_topic {
        cmd.args(["--input-topic", t]);
    }
    run_measurement(cmd, s.timeout)
}

fn run_python(
    args: &Args,
    python: &PathBuf,
    workload: &str,
    concurrency: usize,
    s: &Sizes,
    input_topic: Option<&str>,
) -> Result<Measurement> {
    let mut cmd = Command::new(python);
    cmd.arg(&args.python_script)
        .args(["--workload", workload])
        .args(["--concurrency", &concurrency.to_string()])
        .args(size_flags(args, s));
    if let Some(t) = input_topic {
        cmd.args(["--input-topic", t]);
    }
    run_measurement(cmd, s.timeout)
}

/// Run one measurement process; its last stdout line that is a JSON object
/// is the measurement. Killed after `timeout`.
fn run_measurement(mut cmd: Command, timeout: Duration) -> Result<Measurement> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stdout).read_to_string(&mut s);
        s
    });
    // Pass the child's stderr through, keeping its tail for error reports.
    let err = std::thread::spawn(move || {
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            eprintln!("    | {line}");
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
        tail
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let tail = err.join().unwrap_or_default();
    let Some(status) = status else {
        bail!("killed after {} s (--timeout)", timeout.as_secs());
    };
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    match (status.success(), last) {
        (true, Some(line)) => {
            serde_json::from_str(line).with_context(|| format!("bad measurement line: {line}"))
        }
        _ => bail!(
            "exited with {status}: {}",
            tail.iter()
                .rev()
                .take(3)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(" | ")
        ),
    }
}
