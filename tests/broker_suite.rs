//! The real-broker suite: worker processes (`examples/worker.rs`) in one
//! consumer group on an Apache Kafka broker, driven from this process.
//!
//! Runs only when `FAUST_TEST_KAFKA=host:port` is set; otherwise every test
//! prints a skip note and passes, so an offline `cargo test` stays green.
//! `scripts/suites/10-kafka.sh` builds the worker and runs this suite
//! against the broker of `scripts/kafka.sh`:
//!
//! ```text
//! cargo build --example worker
//! FAUST_TEST_KAFKA=127.0.0.1:9092 cargo test --test broker_suite -- --test-threads=1 --nocapture
//! ```
//!
//! Each test uses its own topic and group (a unique name), bounds every
//! wait, and kills the workers it started if it fails. Worker logs and
//! output files are kept under `target/tmp/broker-suite/<name>/`; the last
//! lines of each log are printed when a test fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use faust::transport::TopicSpec;
use faust::{Agent, AgentSpec, App, SendOptions};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// Partitions of every test topic.
const PARTITIONS: i32 = 8;
/// Name of the workers' agent (the client declares the same one).
const AGENT: &str = "events";
/// librdkafka settings passed through the URL: a dead member is noticed
/// after 6 s (the broker's minimum) instead of librdkafka's default 45 s.
const SESSION: &str = "consumer.session.timeout.ms=6000&consumer.heartbeat.interval.ms=500";

const READY_WITHIN: Duration = Duration::from_secs(60);
const EXIT_WITHIN: Duration = Duration::from_secs(40);
const PROGRESS_WITHIN: Duration = Duration::from_secs(60);
const COVERAGE_WITHIN: Duration = Duration::from_secs(90);

// ---- the test context ---------------------------------------------------------

/// One test: a unique name (topic, group), a directory for the workers'
/// files, the workers' logs to show on failure.
struct Ctx {
    test: &'static str,
    name: String,
    dir: PathBuf,
    url: String,
    t0: Instant,
    logs: Mutex<Vec<PathBuf>>,
    passed: AtomicBool,
}

impl Ctx {
    /// `None` (and a note) when no broker is configured.
    fn new(test: &'static str) -> Option<Self> {
        let Some(bootstrap) = std::env::var("FAUST_TEST_KAFKA")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            eprintln!(
                "skipping {test}: set FAUST_TEST_KAFKA=127.0.0.1:9092 to run the real-broker suite"
            );
            return None;
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!(
            "bs-{}-{:x}{:x}",
            test.replace('_', "-"),
            nanos,
            std::process::id()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("broker-suite")
            .join(&name);
        std::fs::create_dir_all(&dir).expect("test directory");
        let ctx = Self {
            test,
            url: format!("kafka://{bootstrap}?{SESSION}"),
            name,
            dir,
            t0: Instant::now(),
            logs: Mutex::new(Vec::new()),
            passed: AtomicBool::new(false),
        };
        ctx.note(&format!(
            "topic and group {}, files in {}",
            ctx.name,
            ctx.dir.display()
        ));
        Some(ctx)
    }

    /// The test passed: no logs to show.
    fn pass(&self) {
        self.passed.store(true, Ordering::Relaxed);
    }

    fn topic(&self) -> String {
        format!("{}-events", self.name)
    }

    fn note(&self, what: &str) {
        println!(
            "[{} +{:6.2}s] {what}",
            self.test,
            self.t0.elapsed().as_secs_f64()
        );
    }

    /// The client app: declares the workers' agent (same name and topic)
    /// without running it, creates the topic, and is never started.
    async fn client(&self) -> Result<(App, Agent)> {
        let app = faust::app_builder(format!("{}-client", self.name))
            .broker(self.url.clone())
            .ask_timeout(Duration::from_secs(60))
            .build()?;
        let agent = app.add_agent(
            AgentSpec::handler(AGENT, |v: Value| async move { Ok::<_, faust::Error>(v) })
                .topic(self.topic())
                .partitions(PARTITIONS),
        )?;
        tokio::time::timeout(
            Duration::from_secs(30),
            app.transport()
                .create_topic(&TopicSpec::new(self.topic(), PARTITIONS)),
        )
        .await
        .context("creating the test topic")??;
        Ok((app, agent))
    }

    /// Start a worker process in this test's group.
    fn worker(&self, id: &str, env: &[(&str, &str)]) -> Result<Worker> {
        let bin = worker_bin()?;
        let output = self.dir.join(format!("{id}.out"));
        let log = self.dir.join(format!("{id}.log"));
        self.logs.lock().unwrap().push(log.clone());
        let mut cmd = Command::new(&bin);
        cmd.env("FAUST_BROKER", &self.url)
            .env("FAUST_APP_ID", &self.name)
            .env("WORKER_ID", id)
            .env("WORKER_AGENT", AGENT)
            .env("WORKER_TOPIC", self.topic())
            .env("WORKER_PARTITIONS", PARTITIONS.to_string())
            .env("WORKER_OUTPUT", &output)
            .env(
                "RUST_LOG",
                std::env::var("WORKER_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let (tag, t0) = (format!("{}/{id}", self.test), self.t0);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
            {
                println!("[{tag} +{:6.2}s] {line}", t0.elapsed().as_secs_f64());
                sink.lock().unwrap().push(line);
            }
        });
        self.note(&format!("started worker {id} (pid {}) {env:?}", child.id()));
        Ok(Worker {
            id: id.to_string(),
            child,
            stdout: lines,
            output,
            exited: None,
        })
    }

    /// Wait until `done` holds for the output lines of `workers`.
    async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        workers: &[&Worker],
        done: impl Fn(&[Line]) -> bool,
    ) -> Result<Vec<Line>> {
        let deadline = Instant::now() + within;
        loop {
            let lines = all_lines(workers)?;
            if done(&lines) {
                return Ok(lines);
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {within:?} waiting for {what} ({} lines so far)",
                    lines.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until every worker owns partitions and together they own each
    /// partition exactly once (the group's rebalance has settled).
    async fn balanced(&self, workers: &[&Worker]) -> Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let owned: Vec<Vec<i32>> = workers.iter().map(|w| w.owned()).collect();
            let mut all: Vec<i32> = owned.iter().flatten().copied().collect();
            all.sort_unstable();
            if owned.iter().all(|o| !o.is_empty()) && all == (0..PARTITIONS).collect::<Vec<_>>() {
                self.note(&format!("assignment settled: {owned:?}"));
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the assignment did not settle within {READY_WITHIN:?}: {owned:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the workers have processed `n` more events than `from`.
    async fn progress(&self, workers: &[&Worker], from: usize, n: usize) -> Result<usize> {
        let lines = self
            .wait_for(&format!("{n} more events"), PROGRESS_WITHIN, workers, |l| {
                l.len() >= from + n
            })
            .await?;
        Ok(lines.len())
    }

    /// Wait until every value in `sent` is in the output of `workers`.
    async fn coverage(&self, workers: &[&Worker], sent: &[i64]) -> Result<Vec<Line>> {
        let want: BTreeSet<i64> = sent.iter().copied().collect();
        let t = Instant::now();
        let lines = self
            .wait_for(
                &format!("all {} values to be processed", want.len()),
                COVERAGE_WITHIN,
                workers,
                |lines| {
                    let seen: BTreeSet<i64> = lines.iter().filter_map(Line::int).collect();
                    want.is_subset(&seen)
                },
            )
            .await
            .map_err(|e| {
                let seen: BTreeSet<i64> = all_lines(workers)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Line::int)
                    .collect();
                let missing: Vec<&i64> = want.difference(&seen).take(20).collect();
                e.context(format!(
                    "{} values never processed, e.g. {missing:?}",
                    want.difference(&seen).count()
                ))
            })?;
        self.note(&format!(
            "all {} values processed ({:.1} s after asking)",
            want.len(),
            t.elapsed().as_secs_f64()
        ));
        Ok(lines)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if std::thread::panicking() || !self.passed.load(Ordering::Relaxed) {
            for log in self.logs.lock().unwrap().iter() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("---- last lines of {} ----", log.display());
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// `target/<profile>/examples/worker`, next to this test's `deps/` directory.
fn worker_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FAUST_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("no target directory above {}", exe.display()))?;
    let bin = profile_dir
        .join("examples")
        .join(format!("worker{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.exists(),
        "{} not found: run `cargo build --example worker` first (or set FAUST_WORKER_BIN)",
        bin.display()
    );
    Ok(bin)
}

// ---- worker processes ---------------------------------------------------------

/// A worker process. Killed (SIGKILL) when dropped while still running.
struct Worker {
    id: String,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    output: PathBuf,
    exited: Option<ExitStatus>,
}

impl Worker {
    /// Wait for a stdout line satisfying `pred`; returns it.
    async fn line(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        self.line_after(0, what, within, pred).await
    }

    /// Wait for a stdout line after the first `skip` satisfying `pred`.
    async fn line_after(
        &self,
        skip: usize,
        what: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .skip(skip)
                .find(|l| pred(l))
            {
                return Ok(l.clone());
            }
            if Instant::now() >= deadline {
                bail!("worker {}: no {what} within {within:?}", self.id);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stdout lines so far.
    fn stdout_len(&self) -> usize {
        self.stdout.lock().unwrap().len()
    }

    /// Wait until the worker is started and has partitions.
    async fn ready(&self) -> Result<String> {
        self.line("READY", READY_WITHIN, |l| l.starts_with("READY"))
            .await
    }

    /// The partitions the worker said it owns last (`READY`/`ASSIGNED` lines).
    fn owned(&self) -> Vec<i32> {
        let stdout = self.stdout.lock().unwrap();
        let Some(list) = stdout.iter().rev().find_map(|l| {
            let rest = l
                .strip_prefix("READY ")
                .or_else(|| l.strip_prefix("ASSIGNED "))?;
            rest.split_whitespace().next()
        }) else {
            return Vec::new();
        };
        list.trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }

    /// Graceful stop: SIGTERM.
    fn term(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM {} failed", self.child.id());
        Ok(())
    }

    /// Crash: SIGKILL.
    fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        Ok(())
    }

    /// Wait for the process to end.
    async fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.exited = Some(status);
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("worker {} did not exit within {within:?}", self.id);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then check that it stopped gracefully (exit 0, `STOPPED`).
    async fn stop(&mut self, ctx: &Ctx) -> Result<()> {
        let t = Instant::now();
        self.term()?;
        let status = self.wait_exit(EXIT_WITHIN).await?;
        ensure!(status.success(), "worker {} exited with {status}", self.id);
        self.line("STOPPED", Duration::from_secs(5), |l| {
            l.starts_with("STOPPED")
        })
        .await?;
        ctx.note(&format!(
            "worker {} stopped gracefully in {:.2} s",
            self.id,
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// The events this worker processed.
    fn lines(&self) -> Result<Vec<Line>> {
        let text = match std::fs::read_to_string(&self.output) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        // A line without its newline is still being written: not counted.
        let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
        complete.lines().map(Line::parse).collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One processed event, as the worker wrote it.
#[derive(Clone, Debug)]
struct Line {
    worker: String,
    actor: String,
    partition: i32,
    offset: i64,
    start_us: u128,
    end_us: u128,
    value: Value,
}

impl Line {
    fn parse(raw: &str) -> Result<Self> {
        let f: Vec<&str> = raw.splitn(8, ' ').collect();
        ensure!(f.len() == 8, "bad output line `{raw}`");
        Ok(Self {
            worker: f[0].to_string(),
            actor: f[2].to_string(),
            partition: f[3].parse()?,
            offset: f[4].parse()?,
            start_us: f[5].parse()?,
            end_us: f[6].parse()?,
            value: serde_json::from_str(f[7])?,
        })
    }

    fn int(&self) -> Option<i64> {
        self.value.as_i64()
    }
}

fn all_lines(workers: &[&Worker]) -> Result<Vec<Line>> {
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.lines()?);
    }
    Ok(all)
}

/// Values processed more than once: (extra deliveries, distinct values).
fn duplicates(lines: &[Line]) -> (usize, usize) {
    let mut counts: HashMap<(i32, i64), usize> = HashMap::new();
    for l in lines {
        *counts.entry((l.partition, l.offset)).or_default() += 1;
    }
    let extra = counts.values().map(|c| c - 1).sum();
    let distinct = counts.values().filter(|c| **c > 1).count();
    (extra, distinct)
}

fn per_worker(lines: &[Line]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l.worker.as_str()).or_default() += 1;
    }
    m
}

/// Check each partition's history, in processing order: one event at a
/// time (an event starts after the previous one ended, whichever worker
/// had it), from offset 0, each worker going on with the next offset, and
/// no gap where the partition moves to another worker. Returns the number
/// of handovers and of events processed again at a handover.
fn check_partition_order(lines: &[Line]) -> (usize, usize) {
    let mut by_partition: BTreeMap<i32, Vec<&Line>> = BTreeMap::new();
    for l in lines {
        by_partition.entry(l.partition).or_default().push(l);
    }
    let (mut handovers, mut redelivered) = (0, 0);
    for (p, events) in &mut by_partition {
        events.sort_by_key(|l| (l.start_us, l.end_us));
        assert_eq!(events[0].offset, 0, "partition {p} starts at offset 0");
        for pair in events.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                b.start_us >= a.end_us,
                "partition {p} processed by two actors at once:\n  {a:?}\n  {b:?}"
            );
            if a.worker == b.worker {
                assert_eq!(
                    b.offset,
                    a.offset + 1,
                    "partition {p}: {} skipped or repeated offsets:\n  {a:?}\n  {b:?}",
                    a.worker
                );
            } else {
                handovers += 1;
                assert!(
                    b.offset <= a.offset + 1,
                    "partition {p}: gap at a handover:\n  {a:?}\n  {b:?}"
                );
                redelivered += (a.offset + 1 - b.offset) as usize;
            }
        }
    }
    (handovers, redelivered)
}

// ---- producing ------------------------------------------------------------------

/// Produces 0, 1, 2, ... to the agent's topic, value `i` to partition
/// `i % 8`, until stopped.
struct Producer {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<i64>>>,
    task: JoinHandle<Result<()>>,
}

impl Producer {
    fn start(agent: &Agent, first: i64, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (agent, flag, log) = (agent.clone(), stop.clone(), sent.clone());
        let task = tokio::spawn(async move {
            let mut i = first;
            while !flag.load(Ordering::Relaxed) {
                send(&agent, i).await?;
                log.lock().unwrap().push(i);
                i += 1;
                tokio::time::sleep(pause).await;
            }
            Ok(())
        });
        Self { stop, sent, task }
    }

    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    /// Stop and return every value sent.
    async fn finish(self) -> Result<Vec<i64>> {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("producer did not stop")???;
        Ok(self.sent.lock().unwrap().clone())
    }
}

async fn send(agent: &Agent, i: i64) -> Result<()> {
    let opts = SendOptions::default().partition((i % i64::from(PARTITIONS)) as i32);
    tokio::time::timeout(Duration::from_secs(30), agent.send_with(&i, opts))
        .await
        .with_context(|| format!("sending {i} timed out"))??;
    Ok(())
}

/// Send `values` (each to partition `value % 8`), many at a time.
async fn send_many(agent: &Agent, values: std::ops::Range<i64>) -> Result<()> {
    let sends = futures::stream::iter(values.map(|i| send(agent, i)));
    let results: Vec<Result<()>> = sends.buffer_unordered(64).collect().await;
    results.into_iter().collect()
}

/// The reply of the workers' agent.
#[derive(Debug, Deserialize)]
struct Reply {
    worker: String,
    partition: i32,
    offset: i64,
    value: Value,
}

// ---- 1. request/reply across processes -------------------------------------------

/// A worker runs the agent; this process (a client app that declares the
/// agent but is never started) calls it with `ask`, `map` and `join`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_ask_map_join_across_processes() -> Result<()> {
    let Some(ctx) = Ctx::new("rpc") else {
        return Ok(());
    };
    let (_client, agent) = ctx.client().await?;
    let w1 = ctx.worker("w1", &[])?;
    w1.ready().await?;

    // ask: the first one also starts the reply consumer.
    let t = Instant::now();
    let r: Reply = agent.ask(&json!(21)).await?;
    ctx.note(&format!(
        "first ask answered in {:.3} s: {r:?}",
        t.elapsed().as_secs_f64()
    ));
    assert_eq!(r.value, json!(21));
    assert_eq!(r.worker, "w1");
    let mut rtts = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        let r: Reply = agent.ask(&json!({ "n": i })).await?;
        rtts.push(t.elapsed());
        assert_eq!(r.value, json!({ "n": i }));
        assert!(
            (0..PARTITIONS).contains(&r.partition) && r.offset >= 0,
            "{r:?}"
        );
    }
    rtts.sort();
    ctx.note(&format!(
        "50 sequential asks: p50 {:.1} ms, max {:.1} ms",
        rtts[25].as_secs_f64() * 1e3,
        rtts[49].as_secs_f64() * 1e3
    ));

    // map: every result, in arrival order.
    let t = Instant::now();
    let results: Vec<faust::Result<Reply>> = tokio::time::timeout(
        Duration::from_secs(90),
        agent
            .map::<_, Reply, _>((0..200).map(|i: i64| json!(i)))
            .collect::<Vec<_>>(),
    )
    .await
    .context("map did not finish")?;
    let mut got: Vec<i64> = results
        .into_iter()
        .map(|r| r.map(|r| r.value.as_i64().expect("an integer")))
        .collect::<faust::Result<_>>()?;
    got.sort_unstable();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    ctx.note(&format!(
        "map of 200 values: {:.2} s",
        t.elapsed().as_secs_f64()
    ));

    // join: results in input order.
    let inputs: Vec<i64> = (0..1000).map(|i| i * 7 % 1000).collect();
    let t = Instant::now();
    let replies: Vec<Reply> =
        tokio::time::timeout(Duration::from_secs(90), agent.join(inputs.iter().copied()))
            .await
            .context("join did not finish")??;
    let values: Vec<i64> = replies.iter().filter_map(|r| r.value.as_i64()).collect();
    assert_eq!(values, inputs, "join returns results in input order");
    ctx.note(&format!(
        "join of 1000 values (one worker): {:.2} s",
        t.elapsed().as_secs_f64()
    ));

    // A second worker joins the group: the same join is answered by both.
    // Keyed (kvjoin), so the requests spread over every partition: keyless
    // records stick to one partition for a few milliseconds (librdkafka's
    // sticky partitioner), and the whole join can take less than that.
    let w2 = ctx.worker("w2", &[])?;
    w2.ready().await?;
    ctx.balanced(&[&w1, &w2]).await?;
    let t = Instant::now();
    let keyed = inputs.iter().map(|&v| (Some(format!("k{v}")), v));
    let replies: Vec<Reply> = tokio::time::timeout(Duration::from_secs(90), agent.kvjoin(keyed))
        .await
        .context("kvjoin did not finish")??;
    let values: Vec<i64> = replies.iter().filter_map(|r| r.value.as_i64()).collect();
    assert_eq!(values, inputs, "join returns results in input order");
    let mut by_worker: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &replies {
        *by_worker.entry(r.worker.as_str()).or_default() += 1;
    }
    ctx.note(&format!(
        "kvjoin of 1000 values (two workers): {:.2} s, answered by {by_worker:?}",
        t.elapsed().as_secs_f64()
    ));
    assert_eq!(by_worker.len(), 2, "both workers answer: {by_worker:?}");

    let (mut w1, mut w2) = (w1, w2);
    w1.stop(&ctx).await?;
    w2.stop(&ctx).await?;
    let lines = all_lines(&[&w1, &w2])?;
    // 1 + 50 + 200 + 2 * 1000 requests, each processed once.
    assert_eq!(lines.len(), 2251, "{:?}", per_worker(&lines));
    println!(
        "SUMMARY rpc: asks p50 {:.1} ms; {} events, duplicates {:?}; {:.1} s",
        rtts[25].as_secs_f64() * 1e3,
        lines.len(),
        duplicates(&lines),
        ctx.t0.elapsed().as_secs_f64()
    );
    ctx.pass();
    Ok(())
}

// ---- 2. workers joining and leaving gracefully -------------------------------------

/// Two, then three workers share 8 partitions while events are produced
/// continuously; workers leave with SIGTERM. Every event is processed, and
/// graceful rebalances process none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_workers_join_and_leave() -> Result<()> {
    let Some(ctx) = Ctx::new("group") else {
        return Ok(());
    };
    let (_client, agent) = ctx.client().await?;
    let env = [("WORKER_CONCURRENCY", "2")];
    let mut w1 = ctx.worker("w1", &env)?;
    let mut w2 = ctx.worker("w2", &env)?;
    w1.ready().await?;
    w2.ready().await?;

    let producer = Producer::start(&agent, 0, Duration::from_millis(2));
    let mut n = ctx.progress(&[&w1, &w2], 0, 300).await?;
    ctx.note(&format!("{n} events processed by two workers"));

    let mut w3 = ctx.worker("w3", &env)?;
    w3.ready().await?;
    let all = [&w1, &w2, &w3];
    n = ctx.progress(&all, n, 300).await?;
    ctx.note(&format!("{n} events processed; three workers"));

    w1.stop(&ctx).await?;
    n = ctx.progress(&[&w1, &w2, &w3], n, 300).await?;
    ctx.note(&format!("{n} events processed after w1 left"));

    w2.stop(&ctx).await?;
    n = ctx.progress(&[&w1, &w2, &w3], n, 300).await?;
    ctx.note(&format!("{n} events processed after w2 left"));

    let sent = producer.finish().await?;
    ctx.note(&format!("produced {} values", sent.len()));
    ctx.coverage(&[&w1, &w2, &w3], &sent).await?;
    w3.stop(&ctx).await?;

    let lines = all_lines(&[&w1, &w2, &w3])?;
    let (extra, distinct) = duplicates(&lines);
    println!(
        "SUMMARY group: {} produced, {} processed {:?}, duplicates {extra} ({distinct} events); {:.1} s",
        sent.len(),
        lines.len(),
        per_worker(&lines),
        ctx.t0.elapsed().as_secs_f64()
    );
    assert_eq!(extra, 0, "graceful rebalances must not reprocess events");
    ctx.pass();
    Ok(())
}

// ---- 3. a worker killed mid-stream ------------------------------------------------

/// A worker is killed with SIGKILL while events flow: after the session
/// timeout the survivor owns every partition and processes everything the
/// dead one had not committed (duplicates allowed: at-least-once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_partitions_taken_over() -> Result<()> {
    let Some(ctx) = Ctx::new("sigkill") else {
        return Ok(());
    };
    let (_client, agent) = ctx.client().await?;
    let env = [("WORKER_DELAY_MS", "1")];
    let mut w1 = ctx.worker("w1", &env)?;
    let mut w2 = ctx.worker("w2", &env)?;
    w1.ready().await?;
    w2.ready().await?;

    let producer = Producer::start(&agent, 0, Duration::from_millis(2));
    ctx.wait_for("w1 to process 200 events", PROGRESS_WITHIN, &[&w1], |l| {
        l.len() >= 200
    })
    .await?;
    let before = w1.lines()?.len();
    let seen = w2.stdout_len();
    let killed = Instant::now();
    w1.kill()?;
    w1.wait_exit(EXIT_WITHIN).await?;
    ctx.note(&format!(
        "w1 killed (SIGKILL) after {before} events; {} values produced so far",
        producer.count()
    ));

    let all = format!(
        "ASSIGNED [{}]",
        (0..PARTITIONS)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    w2.line_after(seen, "every partition", Duration::from_secs(60), |l| {
        l == all
    })
    .await?;
    let takeover = killed.elapsed();
    ctx.note(&format!(
        "w2 owns every partition {:.2} s after the kill",
        takeover.as_secs_f64()
    ));
    let n = all_lines(&[&w1, &w2])?.len();
    ctx.progress(&[&w1, &w2], n, 200).await?;

    let sent = producer.finish().await?;
    ctx.coverage(&[&w1, &w2], &sent).await?;
    w2.stop(&ctx).await?;
    let lines = all_lines(&[&w1, &w2])?;
    let (extra, distinct) = duplicates(&lines);
    println!(
        "SUMMARY sigkill: {} produced, {} processed {:?}, duplicates {extra} ({distinct} events, \
         processed by w1 but not committed before the kill); takeover {:.1} s; {:.1} s",
        sent.len(),
        lines.len(),
        per_worker(&lines),
        takeover.as_secs_f64(),
        ctx.t0.elapsed().as_secs_f64()
    );
    // Duplicates are events w1 processed but had not committed: w2 itself
    // (graceful rebalance only) processes each event once.
    let mut w2_events: HashMap<(i32, i64), usize> = HashMap::new();
    for l in w2.lines()? {
        *w2_events.entry((l.partition, l.offset)).or_default() += 1;
    }
    for (event, count) in &w2_events {
        assert_eq!(*count, 1, "{event:?} processed {count} times by w2");
    }
    ctx.pass();
    Ok(())
}

// ---- 4. isolated partitions across workers -----------------------------------------

/// An isolated-partitions agent on two workers, with a rebalance when the
/// second joins and another when the first leaves: each event is processed
/// by the actor of its partition, a partition is never processed by two
/// actors at the same time, and each partition's offsets are processed in
/// order, without gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_partitions_never_overlap() -> Result<()> {
    let Some(ctx) = Ctx::new("isolated") else {
        return Ok(());
    };
    let (_client, agent) = ctx.client().await?;
    let env = [("WORKER_MODE", "isolated"), ("WORKER_DELAY_MS", "3")];
    let mut w1 = ctx.worker("w1", &env)?;
    w1.ready().await?;

    let producer = Producer::start(&agent, 0, Duration::from_millis(2));
    let mut n = ctx.progress(&[&w1], 0, 150).await?;
    let mut w2 = ctx.worker("w2", &env)?;
    w2.ready().await?;
    ctx.note(&format!("w2 joined after {n} events"));
    n = ctx.progress(&[&w1, &w2], n, 300).await?;
    w1.stop(&ctx).await?;
    ctx.note(&format!("w1 left after {n} events"));
    ctx.progress(&[&w1, &w2], n, 150).await?;
    let sent = producer.finish().await?;
    ctx.coverage(&[&w1, &w2], &sent).await?;
    w2.stop(&ctx).await?;

    let lines = all_lines(&[&w1, &w2])?;
    for l in &lines {
        assert_eq!(
            l.actor,
            format!("p{}", l.partition),
            "processed by another partition's actor: {l:?}"
        );
    }
    let (handovers, redelivered) = check_partition_order(&lines);
    let (extra, _) = duplicates(&lines);
    println!(
        "SUMMARY isolated: {} produced, {} processed {:?}, {handovers} partition handovers, \
         {redelivered} events redelivered at handovers, duplicates {extra}; {:.1} s",
        sent.len(),
        lines.len(),
        per_worker(&lines),
        ctx.t0.elapsed().as_secs_f64()
    );
    assert!(
        handovers >= PARTITIONS as usize / 2,
        "the partitions moved between workers"
    );
    assert_eq!(extra, 0, "graceful rebalances must not reprocess events");
    ctx.pass();
    Ok(())
}

// ---- 5. restart from committed offsets ---------------------------------------------

/// A worker processes N events and stops (SIGTERM); more are produced; a
/// new worker in the same group processes only the new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_committed_offsets() -> Result<()> {
    let Some(ctx) = Ctx::new("restart") else {
        return Ok(());
    };
    const N: i64 = 400;
    let (_client, agent) = ctx.client().await?;
    let mut w1 = ctx.worker("w1", &[])?;
    w1.ready().await?;
    send_many(&agent, 0..N).await?;
    let first: Vec<i64> = (0..N).collect();
    ctx.coverage(&[&w1], &first).await?;
    w1.stop(&ctx).await?;

    send_many(&agent, N..2 * N).await?;
    let mut w2 = ctx.worker("w2", &[])?;
    w2.ready().await?;
    let second: Vec<i64> = (N..2 * N).collect();
    // Each partition is read in offset order: anything re-read from before
    // the restart comes before the new events.
    ctx.coverage(&[&w2], &second).await?;
    w2.stop(&ctx).await?;

    let (l1, l2) = (w1.lines()?, w2.lines()?);
    let old: Vec<i64> = l2.iter().filter_map(Line::int).filter(|v| *v < N).collect();
    println!(
        "SUMMARY restart: w1 processed {}, w2 processed {} ({} from before the restart); {:.1} s",
        l1.len(),
        l2.len(),
        old.len(),
        ctx.t0.elapsed().as_secs_f64()
    );
    assert_eq!(l1.len(), N as usize, "w1 processed each event once");
    assert!(old.is_empty(), "w2 reprocessed committed events: {old:?}");
    assert_eq!(l2.len(), N as usize, "w2 processed each new event once");
    ctx.pass();
    Ok(())
}

// ---- 6. rebalances while consumption is paused --------------------------------------

/// Back-pressure on a real broker. A backlog much larger than what a worker
/// buffers (agent queue of 16 events, the runtime's read-ahead of 4096
/// records, a consumer mailbox of 2 batches) and an agent that stalls on
/// command, so the transport pauses the partitions. A second worker joins
/// while the first is stalled and paused; the first is released once its
/// consumer has seen the revocation. Later the first is stopped (SIGTERM)
/// while stalled and paused. Every event is processed once, each partition
/// in order, never by two actors at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_while_paused_by_back_pressure() -> Result<()> {
    let Some(ctx) = Ctx::new("backpressure") else {
        return Ok(());
    };
    // w1 must still have a backlog at its second stall larger than what a
    // blocked runtime reads ahead (the conductor's 4 096 records, the
    // mailbox's 2 batches of up to 1 000, the agent queue's 16), or its
    // transport never pauses: 3 000 events per partition leave ample room.
    const N: i64 = 24_000;
    let (_client, agent) = ctx.client().await?;
    let t = Instant::now();
    send_many(&agent, 0..N).await?;
    ctx.note(&format!(
        "backlog of {N} events produced in {:.2} s",
        t.elapsed().as_secs_f64()
    ));
    let url = format!("{}&faust.buffer.batches=2", ctx.url);
    let stall = ctx.dir.join("w1.stall");
    let stall_env = stall.to_string_lossy().into_owned();
    let env = [
        ("FAUST_BROKER", url.as_str()),
        ("WORKER_BUFFER", "16"),
        ("RUST_LOG", "info,faust_kafka=debug"),
    ];
    // w1 takes 1 ms per event, so that it always has a backlog.
    let w1_env: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .chain([
            ("WORKER_STALL_FILE", stall_env.as_str()),
            ("WORKER_DELAY_MS", "1"),
        ])
        .collect();
    let mut w1 = ctx.worker("w1", &w1_env)?;
    w1.ready().await?;
    let n = ctx.progress(&[&w1], 0, 300).await?;

    // Stall w1 until its transport pauses the partitions, then let w2 join.
    File::create(&stall)?;
    ctx.wait_log(&w1, PAUSING, 1).await?;
    let revocations = log_count(&ctx, "w1", REVOKED);
    let mut w2 = ctx.worker("w2", &env)?;
    // The revocation reaches w1's consumer thread while its partitions are
    // paused and its runtime is blocked: release the agent, so the runtime
    // handles the revocation within the transport's deadline.
    ctx.wait_log(&w1, REVOKED, revocations + 1).await?;
    std::fs::remove_file(&stall)?;
    ctx.note("w1 released during the revocation");
    w2.ready().await?;
    let n = ctx.progress(&[&w1, &w2], n, 800).await?;

    // Stall w1 again, and stop it while stalled and paused.
    let pauses = log_count(&ctx, "w1", PAUSING);
    File::create(&stall)?;
    ctx.wait_log(&w1, PAUSING, pauses + 1).await?;
    let t = Instant::now();
    w1.term()?;
    w1.line("STOPPING", Duration::from_secs(10), |l| l == "STOPPING")
        .await?;
    std::fs::remove_file(&stall)?;
    let status = w1.wait_exit(EXIT_WITHIN).await?;
    ensure!(status.success(), "w1 exited with {status}");
    w1.line("STOPPED", Duration::from_secs(5), |l| {
        l.starts_with("STOPPED")
    })
    .await?;
    ctx.note(&format!(
        "w1 stopped gracefully while paused after {n} events, in {:.2} s",
        t.elapsed().as_secs_f64()
    ));

    let sent: Vec<i64> = (0..N).collect();
    ctx.coverage(&[&w1, &w2], &sent).await?;
    w2.stop(&ctx).await?;

    let lines = all_lines(&[&w1, &w2])?;
    let (handovers, redelivered) = check_partition_order(&lines);
    let (extra, _) = duplicates(&lines);
    println!(
        "SUMMARY backpressure: {N} produced, {} processed {:?}, w1 paused {} times, \
         {handovers} partition handovers, {redelivered} events redelivered at handovers, \
         duplicates {extra}; {:.1} s",
        lines.len(),
        per_worker(&lines),
        log_count(&ctx, "w1", PAUSING),
        ctx.t0.elapsed().as_secs_f64()
    );
    assert_eq!(extra, 0, "graceful rebalances must not reprocess events");
    ctx.pass();
    Ok(())
}

/// What the transport logs (at debug level) when back-pressure pauses the
/// partitions, and when a revocation reaches its consumer thread.
const PAUSING: &str = "mailbox full, pausing";
const REVOKED: &str = "Kafka consumer: partitions revoked";

/// How many times `worker`'s log contains `what`.
fn log_count(ctx: &Ctx, worker: &str, what: &str) -> usize {
    std::fs::read_to_string(ctx.dir.join(format!("{worker}.log")))
        .unwrap_or_default()
        .matches(what)
        .count()
}

/// The last line of `worker`'s log that contains `what`.
fn last_log_line(ctx: &Ctx, worker: &str, what: &str) -> Option<String> {
    std::fs::read_to_string(ctx.dir.join(format!("{worker}.log")))
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| l.contains(what))
        .map(str::to_string)
}

impl Ctx {
    /// Wait until `worker`'s log contains `what` `n` times (the transport's
    /// debug messages: the worker runs with `faust_kafka=debug`).
    async fn wait_log(&self, worker: &Worker, what: &str, n: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while log_count(self, &worker.id, what) < n {
            ensure!(
                Instant::now() < deadline,
                "worker {}: the transport did not log \"{what}\" {n} times within 30 s",
                worker.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.note(&format!("{}: transport logged \"{what}\"", worker.id));
        Ok(())
    }
}

// ---- a slow agent does not delay revocations ---------------------------------

/// A slow agent (60 ms per event) with a backlog: a joining worker gets its
/// partitions at once and no event is processed twice. (This was a defect:
/// the revocation waited behind the transport's queued batches and the
/// conductor's read-ahead until the transport's 15 s deadline; now
/// `Revoked` jumps ahead of queued records and the conductor checks for
/// rebalances every 50 ms while it is busy.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_agent_with_a_backlog_does_not_delay_a_rebalance() -> Result<()> {
    let Some(ctx) = Ctx::new("slow") else {
        return Ok(());
    };
    const N: i64 = 8_000;
    let (_client, agent) = ctx.client().await?;
    send_many(&agent, 0..N).await?;
    let env = [
        ("WORKER_BUFFER", "16"),
        ("WORKER_DELAY_MS", "60"),
        ("RUST_LOG", "info,faust_kafka=debug"),
    ];
    let mut w1 = ctx.worker("w1", &env)?;
    w1.ready().await?;
    ctx.progress(&[&w1], 0, 20).await?;
    let mut w2 = ctx.worker("w2", &env)?;
    let t = Instant::now();
    w2.ready().await?;
    let joined = t.elapsed();
    ctx.note(&format!(
        "w2 got partitions {:.1} s after joining",
        joined.as_secs_f64()
    ));
    let n = all_lines(&[&w1, &w2])?.len();
    ctx.progress(&[&w1, &w2], n, 100).await?;
    w1.stop(&ctx).await?;
    w2.stop(&ctx).await?;
    let lines = all_lines(&[&w1, &w2])?;
    let (extra, distinct) = duplicates(&lines);
    println!(
        "SUMMARY slow: {} processed {:?}, w2 waited {:.1} s for partitions, \
         duplicates {extra} ({distinct} events)",
        lines.len(),
        per_worker(&lines),
        joined.as_secs_f64()
    );
    assert_eq!(extra, 0, "events processed twice");
    assert!(
        joined < Duration::from_secs(15),
        "the revocation waited for the transport's deadline"
    );
    ctx.pass();
    Ok(())
}

// ---- 8. broker faults --------------------------------------------------------------

/// The broker process of the suite, frozen with SIGSTOP until dropped (or
/// [`thaw`](Frozen::thaw)ed): a broker that hangs without closing its
/// connections, the hardest outage for a client.
struct Frozen {
    pid: u32,
    thawed: bool,
}

impl Frozen {
    /// Freeze the broker of `scripts/kafka.sh` that serves `FAUST_TEST_KAFKA`.
    fn broker() -> Result<Self> {
        let bootstrap = std::env::var("FAUST_TEST_KAFKA")?;
        let port = bootstrap.rsplit(':').next().unwrap_or("9092").to_string();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(root.join("scripts/kafka.sh"))
            .arg("status")
            .env("KAFKA_PORT", &port)
            .output()?;
        let text = String::from_utf8_lossy(&status.stdout);
        // "running: pid N, bootstrap ..."
        let pid: u32 = text
            .split("pid ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("no broker pid in `scripts/kafka.sh status`: {text}"))?;
        signal(pid, "-STOP")?;
        Ok(Self { pid, thawed: false })
    }

    fn thaw(&mut self) -> Result<()> {
        if !self.thawed {
            signal(self.pid, "-CONT")?;
            self.thawed = true;
        }
        Ok(())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = self.thaw();
    }
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill {sig} {pid} failed");
    Ok(())
}

/// Every distinct `value` of the replies in `topic` (all partitions), read
/// from the start, until `want` are there or `within` passed.
async fn relayed_values(
    app: &App,
    topic: &str,
    want: usize,
    within: Duration,
) -> Result<BTreeSet<i64>> {
    let tps = (0..PARTITIONS)
        .map(|p| faust::TopicPartition::new(topic, p))
        .collect();
    let mut reader = app.transport().assign(tps).await?;
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + within;
    while seen.len() < want && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.poll()).await {
            Ok(Ok(faust::transport::ConsumerEvent::Records(records))) => {
                for r in records {
                    let reply: Reply =
                        serde_json::from_slice(r.value.as_deref().unwrap_or(b"null"))?;
                    if let Some(v) = reply.value.as_i64() {
                        seen.insert(v);
                    }
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    let _ = reader.close(Duration::from_secs(5)).await;
    Ok(seen)
}

/// How a test takes the broker away.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// SIGSTOP for this long: connections stay open, requests hang.
    Frozen(Duration),
    /// `scripts/kafka.sh stop`, this long, then `start`: connections are refused.
    Stopped(Duration),
}

/// Data loss under an outage longer than the producer's message timeout:
/// a worker relays every event to a topic sink with
/// `message.timeout.ms=3000` while the broker is away for longer. Records
/// librdkafka gives up on are produced again; no event is committed before
/// its output is on the broker. Every value reaches the output topic
/// (counted value by value), and the worker never stops.
async fn relay_through(test: &'static str, outage: Outage) -> Result<()> {
    let Some(ctx) = Ctx::new(test) else {
        return Ok(());
    };
    // Preloaded, so that the worker is busy (outputs in flight) when the
    // broker goes away.
    const N: i64 = 100_000;
    let (client, agent) = ctx.client().await?;
    let relayed = format!("{}-relayed", ctx.name);
    client
        .transport()
        .create_topic(&TopicSpec::new(relayed.clone(), PARTITIONS))
        .await?;
    // The group session outlasts the outage.
    let url = ctx.url.replace(
        SESSION,
        "consumer.session.timeout.ms=45000&producer.message.timeout.ms=3000",
    );
    send_many(&agent, 0..N).await?;
    ctx.note(&format!("{N} events preloaded"));
    let w = ctx.worker(
        "w1",
        &[
            ("FAUST_BROKER", url.as_str()),
            ("WORKER_SINK_TOPIC", relayed.as_str()),
        ],
    )?;
    w.ready().await?;
    let before = ctx.progress(&[&w], 0, 2_000).await?;
    match outage {
        Outage::Frozen(long) => {
            let mut frozen = Frozen::broker()?;
            ctx.note(&format!(
                "{before} events processed; broker frozen for {long:?}"
            ));
            tokio::time::sleep(long).await;
            frozen.thaw()?;
            ctx.note("broker thawed");
        }
        Outage::Stopped(long) => {
            let Some(broker) = Broker::ours() else {
                eprintln!("skipping {test}: the broker was not started by scripts/kafka.sh");
                ctx.pass();
                return Ok(());
            };
            ctx.note(&format!(
                "{before} events processed; stopping the broker for {long:?}"
            ));
            broker.run("stop")?;
            tokio::time::sleep(long).await;
            broker.run("start")?;
            ctx.note("broker started again");
        }
    }
    let seen = relayed_values(&client, &relayed, N as usize, COVERAGE_WITHIN).await?;
    let missing: Vec<i64> = (0..N).filter(|v| !seen.contains(v)).collect();
    let reproduced = log_count(
        &ctx,
        "w1",
        "producing again records the producer gave up on",
    );
    let mut w = w;
    let exited = w.child.try_wait()?;
    // Everything a reader of a failed run needs is in this one line, which
    // is also each failure's message (a CI log may keep only its end).
    let summary = format!(
        "{test}: {outage:?}; {} of {N} values in the output topic after {COVERAGE_WITHIN:?}, {} missing (e.g. {:?}); the worker produced records again ({reproduced} log lines); worker {}; {} warnings in its log, the last: {:?}; {:.1} s",
        seen.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        match exited {
            None => "still running".to_string(),
            Some(status) => format!("exited ({status})"),
        },
        log_count(&ctx, "w1", " WARN "),
        last_log_line(&ctx, "w1", " WARN "),
        ctx.t0.elapsed().as_secs_f64()
    );
    println!("SUMMARY {summary}");
    ensure!(
        missing.is_empty(),
        "{} values did not reach the output topic: {summary}",
        missing.len()
    );
    ensure!(
        reproduced > 0,
        "no output was in flight during the outage, so the test did not test it: {summary}"
    );
    ensure!(
        exited.is_none(),
        "the worker stopped during the outage: {summary}"
    );
    w.stop(&ctx).await?;
    ctx.pass();
    Ok(())
}

/// A broker frozen (SIGSTOP) for 10 s, over three message timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_loses_no_output() -> Result<()> {
    relay_through("outage_frozen", Outage::Frozen(Duration::from_secs(10))).await
}

/// A broker stopped and started again, down for over 8 s (the stop and the
/// start take a few seconds more).
///
/// Not run by default: in about one run in twelve the worker's clients
/// never reconnected after the restart (librdkafka logged no connection
/// attempt for 90 s, the group session expired), so the events stayed
/// unprocessed — uncommitted, not lost. Run it with `--ignored` while that
/// is investigated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a rare reconnect stall after a broker restart is under investigation"]
async fn a_stopped_broker_loses_no_output() -> Result<()> {
    relay_through("outage_stopped", Outage::Stopped(Duration::from_secs(8))).await
}

/// `ask` keeps its deadline on a frozen broker: a 2 s ask returns a timeout
/// after 2 s (not when the broker comes back), and asks work again after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_keeps_its_deadline_while_the_broker_is_frozen() -> Result<()> {
    let Some(ctx) = Ctx::new("ask-deadline") else {
        return Ok(());
    };
    let (_client, agent) = ctx.client().await?;
    let w = ctx.worker("w1", &[])?;
    w.ready().await?;
    let warm: Reply = agent.ask(&json!(1)).await?;
    ensure!(warm.value == json!(1));
    let opts = || SendOptions::default().timeout(Duration::from_secs(2));
    let mut frozen = Frozen::broker()?;
    let mut spent = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        let outcome = agent.ask_with::<_, Reply>(&json!(i), opts()).await;
        let took = t.elapsed();
        ctx.note(&format!("ask on the frozen broker: {took:?}: {outcome:?}"));
        ensure!(
            matches!(outcome, Err(faust::Error::Timeout { .. })),
            "expected a timeout, got {outcome:?}"
        );
        ensure!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2500),
            "a 2 s ask took {took:?}"
        );
        spent.push(took);
    }
    frozen.thaw()?;
    let t = Instant::now();
    let back: Reply = agent
        .ask_with(
            &json!(7),
            SendOptions::default().timeout(Duration::from_secs(60)),
        )
        .await?;
    ensure!(back.value == json!(7));
    println!(
        "SUMMARY ask-deadline: 2 s asks on a frozen broker took {spent:?}; after thawing, an ask took {:?}",
        t.elapsed()
    );
    drop(frozen);
    let mut w = w;
    w.stop(&ctx).await?;
    ctx.pass();
    Ok(())
}

/// `target/<profile>/examples/quickstart`, a `faust::run()` app.
fn quickstart_bin() -> Result<PathBuf> {
    let worker = worker_bin()?;
    let bin = worker.with_file_name(format!("quickstart{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.exists(),
        "{} not found: run `cargo build --example quickstart` first",
        bin.display()
    );
    Ok(bin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_ask_leaves_no_reply_topic_behind() -> Result<()> {
    let Some(ctx) = Ctx::new("cli-ask") else {
        return Ok(());
    };
    // No worker runs: the ask times out, after its reply topic was made.
    let out = Command::new(quickstart_bin()?)
        .args(["--broker", &ctx.url, "--app-id", &ctx.name])
        .args([
            "ask",
            "@quote",
            r#"{"id":1,"item":"tea","quantity":2}"#,
            "--timeout",
            "3",
        ])
        .env("RUST_LOG", "faust=debug")
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success(),
        "the ask succeeded without a worker: {err}"
    );
    ensure!(err.contains("timed out"), "{err}");
    let topic = err
        .lines()
        .find(|l| l.contains("reply topic deleted"))
        .and_then(|l| l.split("topic=").nth(1))
        .map(|t| t.split_whitespace().next().unwrap_or_default().to_string())
        .ok_or_else(|| anyhow!("the ask did not delete its reply topic:\n{err}"))?;
    ensure!(topic.starts_with("f-reply-"), "{topic}");
    let client = faust::app_builder(format!("{}-client", ctx.name))
        .broker(ctx.url.clone())
        .build()?;
    let gone = tokio::time::timeout(Duration::from_secs(30), async {
        while client.transport().partition_count(&topic).await?.is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok::<_, faust::Error>(())
    })
    .await;
    ensure!(
        matches!(gone, Ok(Ok(()))),
        "reply topic {topic} still there: {gone:?}"
    );
    println!("SUMMARY cli-ask: the timed-out CLI ask deleted its reply topic {topic}");
    ctx.pass();
    Ok(())
}

// ---- a broker restart -----------------------------------------------------------

/// The broker of `scripts/kafka.sh` on the suite's port, which a test may
/// stop and start. Dropping it starts the broker again if it is down, so a
/// failing test leaves it running.
struct Broker {
    port: String,
    bootstrap: String,
}

impl Broker {
    /// `None` when the suite's broker was not started by `scripts/kafka.sh`
    /// (it cannot be restarted from here).
    fn ours() -> Option<Self> {
        let bootstrap = std::env::var("FAUST_TEST_KAFKA").ok()?;
        let port = bootstrap.rsplit(':').next()?.to_string();
        let broker = Self { port, bootstrap };
        let status = broker.script("status").ok()?;
        let out = String::from_utf8_lossy(&status.stdout);
        (status.status.success() && out.starts_with("running: pid")).then_some(broker)
    }

    fn script(&self, what: &str) -> std::io::Result<std::process::Output> {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh"))
            .arg(what)
            .env("KAFKA_PORT", &self.port)
            .stdin(Stdio::null())
            .output()
    }

    fn run(&self, what: &str) -> Result<()> {
        let out = self.script(what)?;
        ensure!(
            out.status.success(),
            "scripts/kafka.sh {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Whether the broker accepts connections.
    fn answers(&self) -> bool {
        self.bootstrap
            .parse()
            .ok()
            .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).ok())
            .is_some()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if !self.answers() {
            eprintln!("starting the broker again (the test left it down)");
            if let Err(e) = self.run("start") {
                eprintln!("{e:#}");
            }
        }
    }
}

/// The broker restarts (TERM, then started again: 5 to 10 s down) while a
/// worker processes a steady stream, so that commits are sent during the
/// outage. Once the broker answers again (port open, metadata served),
/// processing resumes within 2 s: a commit in flight never holds up the
/// delivery of records. (This was a defect: a commit sent during the
/// outage waited for its 15 s timeout, on the consumer thread and in the
/// conductor, and nothing was processed meanwhile.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_resumes_soon_after_a_broker_restart() -> Result<()> {
    let Some(ctx) = Ctx::new("broker_restart") else {
        return Ok(());
    };
    let Some(broker) = Broker::ours() else {
        eprintln!(
            "skipping broker_restart: the broker on FAUST_TEST_KAFKA was not started by scripts/kafka.sh"
        );
        ctx.pass();
        return Ok(());
    };
    let (client, agent) = ctx.client().await?;
    // A session that outlives the outage: the worker stays in the group
    // (with the suite's 6 s session the group would rebalance once the
    // broker is back, and the reloaded group waits for the old member's
    // session to expire: a stall that is not the one measured here).
    let url = ctx
        .url
        .replace(SESSION, "consumer.session.timeout.ms=30000");
    let mut w1 = ctx.worker("w1", &[("FAUST_BROKER", url.as_str())])?;
    w1.ready().await?;
    let producer = Producer::start(&agent, 0, Duration::from_millis(5));
    let n = ctx.progress(&[&w1], 0, 300).await?;

    ctx.note(&format!("{n} events processed; stopping the broker"));
    let stopped = now_us();
    broker.run("stop")?;
    let down = Instant::now();
    // Down long enough for the worker to commit (every second) meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.run("start")?;
    // The broker answers: its port is open and it serves metadata.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let md = tokio::time::timeout(
            Duration::from_secs(5),
            client.transport().partition_count(&ctx.topic()),
        )
        .await;
        if broker.answers() && matches!(md, Ok(Ok(Some(_)))) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the broker did not answer within 60 s of its start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = now_us();
    let outage = down.elapsed();
    ctx.note(&format!(
        "broker answers again, {:.1} s after it was stopped",
        outage.as_secs_f64()
    ));
    let before = all_lines(&[&w1])?.len();
    ctx.progress(&[&w1], before, 100).await?;
    let sent = producer.finish().await?;
    ctx.coverage(&[&w1], &sent).await?;
    w1.stop(&ctx).await?;

    let lines = all_lines(&[&w1])?;
    let during = lines
        .iter()
        .filter(|l| l.start_us > stopped && l.start_us < answered)
        .count();
    let first = lines
        .iter()
        .map(|l| l.start_us)
        .filter(|s| *s >= answered)
        .min()
        .ok_or_else(|| anyhow!("nothing processed after the restart"))?;
    let stall = Duration::from_micros((first - answered) as u64);
    println!(
        "SUMMARY broker_restart: broker down {:.1} s, {during} events processed meanwhile; \
         processing resumed {:.2} s after the broker answered again; {} produced, {} processed",
        outage.as_secs_f64(),
        stall.as_secs_f64(),
        sent.len(),
        lines.len()
    );
    // With the reconnect back-off capped at 1 s this is 0.8–2.9 s on a busy
    // two-core machine; librdkafka's own 10 s cap, or a commit sent during
    // the outage holding up delivery, gives up to 10 s.
    assert!(
        stall < Duration::from_millis(3500),
        "processing resumed {:.2} s after the broker answered again (at most 3.5 s): \
         a commit sent during the outage, or the reconnect, held up delivery",
        stall.as_secs_f64()
    );
    ctx.pass();
    Ok(())
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default()
}
