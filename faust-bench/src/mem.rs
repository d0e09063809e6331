//! In-memory workloads: agent throughput, `ask` round trips and `join`,
//! for faust-rs (the embedded `memory://` broker) and for raw tokio
//! channels doing the same work (the physical limit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use faust::{AgentSpec, Stream};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::report::Measurement;

/// Capacity of the raw channels: the app's default agent queue size
/// (`stream_buffer_maxsize`), so both sides buffer the same.
const QUEUE: usize = 4096;

/// Counts processed events, checks their sum, and wakes the timer when
/// the last one is in.
pub(crate) struct Done {
    n: u64,
    count: AtomicU64,
    sum: AtomicU64,
    check_sum: bool,
    notify: Notify,
}

impl Done {
    /// Expect the values `0..n`, each once.
    pub(crate) fn new(n: u64) -> Arc<Self> {
        Arc::new(Self {
            n,
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            check_sum: true,
            notify: Notify::new(),
        })
    }

    /// Expect `n` events, whatever their values.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn counting(n: u64) -> Arc<Self> {
        Arc::new(Self {
            n,
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            check_sum: false,
            notify: Notify::new(),
        })
    }

    /// One event processed.
    #[inline]
    pub(crate) fn hit(&self, value: u64) {
        self.sum.fetch_add(value, Ordering::Relaxed);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            // Stores a permit if nobody waits yet: no lost wake-up.
            self.notify.notify_one();
        }
    }

    /// Wait until `n` events were processed.
    pub(crate) async fn wait(&self) {
        if self.n == 0 {
            return;
        }
        self.notify.notified().await;
    }

    /// Every event `0..n` processed exactly once (by count and sum).
    pub(crate) fn check(&self) -> Result<()> {
        let count = self.count.load(Ordering::Acquire);
        let sum = self.sum.load(Ordering::Relaxed);
        let want = self.n * self.n.saturating_sub(1) / 2;
        ensure!(
            count == self.n,
            "processed {count} events, expected {}",
            self.n
        );
        ensure!(
            !self.check_sum || sum == want,
            "sum of values {sum}, expected {want}: lost or duplicated events"
        );
        Ok(())
    }
}

/// Wait for `done`, failing early if the feeder task fails.
pub(crate) async fn wait_fed(
    done: &Done,
    feeder: tokio::task::JoinHandle<Result<()>>,
) -> Result<Instant> {
    let mut feeder = feeder;
    tokio::select! {
        _ = done.wait() => {}
        r = &mut feeder => {
            r.context("feeder task panicked")??;
            done.wait().await;
            return Ok(Instant::now());
        }
    }
    let end = Instant::now();
    feeder.await.context("feeder task panicked")??;
    Ok(end)
}

/// A task sending `0..n` to `agent`, one `agent.send` after the other. A
/// macro, not a function: each workload gets its own copy of the loop, as
/// a user's code would (one shared function keeps the compiler from
/// inlining `send` into it, which cost mem-throughput about 6 %).
macro_rules! feed {
    ($agent:expr, $n:expr) => {{
        let (agent, n): (faust::Agent, u64) = ($agent, $n);
        tokio::spawn(async move {
            for i in 0..n {
                agent.send(&i).await?;
            }
            Ok::<(), anyhow::Error>(())
        })
    }};
}
pub(crate) use feed;

pub(crate) fn memory_app(id: &str) -> Result<faust::App> {
    let url = format!("memory://bench-{}", uuid::Uuid::new_v4());
    Ok(faust::app_builder(id)
        .broker(url)
        .metrics(crate::metrics_on())
        .build()?)
}

/// faust-rs: a consumer agent with `concurrency` actors on the embedded
/// broker; a task sends `0..n` with `agent.send`. Timed from the first send
/// to the last event counted by the agent.
pub(crate) async fn faust_throughput(n: u64, concurrency: usize) -> Result<Measurement> {
    let app = memory_app("bench-mem-throughput")?;
    let done = Done::new(n);
    let d = done.clone();
    let spec = AgentSpec::consumer("count", move |mut s: Stream<u64>| {
        let d = d.clone();
        async move {
            while let Some(v) = s.next().await {
                d.hit(v);
            }
            Ok::<_, faust::Error>(())
        }
    })
    .concurrency(concurrency)
    .topic("bench-mem-throughput");
    let agent = app.add_agent(spec)?;
    let partitions = app.config().topic_partitions;
    app.start().await?;

    let start = Instant::now();
    let feeder = feed!(agent, n);
    let end = wait_fed(&done, feeder).await?;
    done.check()?;
    app.stop().await?;
    Ok(
        Measurement::new("mem-throughput", "faust-rs", concurrency, n)
            .timed(end - start)
            .setup(format!(
                "consumer agent, memory:// broker ({partitions} partitions), u64 values as JSON, \
             fed by one task calling agent.send; {}",
                crate::runtime_label()
            )),
    )
}

/// tokio-raw: one producer task sends `0..n` into a bounded mpsc channel;
/// `concurrency` consumer tasks (sharing the receiver behind a mutex when
/// more than one) count them. No broker, no codec: the physical limit.
pub(crate) async fn raw_throughput(n: u64, concurrency: usize) -> Result<Measurement> {
    let done = Done::new(n);
    let (tx, rx) = mpsc::channel::<u64>(QUEUE);
    let mut consumers = Vec::new();
    if concurrency <= 1 {
        let d = done.clone();
        let mut rx = rx;
        consumers.push(tokio::spawn(async move {
            while let Some(v) = rx.recv().await {
                d.hit(v);
            }
        }));
    } else {
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..concurrency {
            let (d, rx) = (done.clone(), rx.clone());
            consumers.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    match next {
                        Some(v) => d.hit(v),
                        None => break,
                    }
                }
            }));
        }
    }
    let start = Instant::now();
    let feeder = tokio::spawn(async move {
        for i in 0..n {
            tx.send(i)
                .await
                .map_err(|_| anyhow::anyhow!("consumers gone"))?;
        }
        Ok(())
    });
    let end = wait_fed(&done, feeder).await?;
    done.check()?;
    for c in consumers {
        c.await?;
    }
    Ok(Measurement::new("mem-throughput", "tokio-raw", concurrency, n)
        .timed(end - start)
        .setup(format!(
            "bounded tokio mpsc ({QUEUE}) of u64, one producer task, {concurrency} consumer task(s){}; {}",
            if concurrency > 1 { " sharing the receiver behind a tokio Mutex" } else { "" },
            crate::runtime_label()
        )))
}

/// A handler agent answering `x + 1`, on a fresh embedded broker.
async fn echo_app(id: &str, topic: &str) -> Result<(faust::App, faust::Agent)> {
    let app = memory_app(id)?;
    let agent = app.add_agent(
        AgentSpec::handler("echo", |x: i64| async move { Ok::<_, faust::Error>(x + 1) })
            .topic(topic),
    )?;
    app.start().await?;
    Ok((app, agent))
}

/// Sequential asks with per-call latency. `warmup` asks are not measured.
pub(crate) async fn ask_loop(
    agent: &faust::Agent,
    n: u64,
    warmup: u64,
) -> Result<(Duration, Vec<Duration>)> {
    for i in 0..warmup as i64 {
        let r: i64 = agent.ask(&i).await?;
        ensure!(r == i + 1, "ask({i}) answered {r}");
    }
    let mut samples = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n as i64 {
        let t = Instant::now();
        let r: i64 = agent.ask(&i).await?;
        samples.push(t.elapsed());
        ensure!(r == i + 1, "ask({i}) answered {r}");
    }
    Ok((start.elapsed(), samples))
}

/// Join `0..n` and check every answer is in input order.
pub(crate) async fn join_once(agent: &faust::Agent, n: u64) -> Result<Duration> {
    let start = Instant::now();
    let out: Vec<i64> = agent.join(0..n as i64).await?;
    let took = start.elapsed();
    ensure!(
        out.len() as u64 == n,
        "join returned {} values, expected {n}",
        out.len()
    );
    if let Some((i, v)) = out.iter().enumerate().find(|(i, v)| **v != *i as i64 + 1) {
        bail!("join value #{i} is {v}, expected {}", i + 1);
    }
    Ok(took)
}

/// faust-rs: `n` sequential `agent.ask` on the embedded broker.
pub(crate) async fn faust_ask(n: u64, warmup: u64) -> Result<Measurement> {
    let (app, agent) = echo_app("bench-mem-ask", "bench-mem-ask").await?;
    let (took, mut samples) = ask_loop(&agent, n, warmup).await?;
    app.stop().await?;
    Ok(Measurement::new("mem-ask", "faust-rs", 1, n)
        .timed(took)
        .latencies(&mut samples)
        .setup(format!(
            "handler agent (x + 1), memory:// broker, sequential agent.ask after {warmup} warm-up asks; {}",
            crate::runtime_label()
        )))
}

/// faust-rs: one `agent.join` of `n` values on the embedded broker.
pub(crate) async fn faust_join(n: u64) -> Result<Measurement> {
    let (app, agent) = echo_app("bench-mem-join", "bench-mem-join").await?;
    // Warm up the reply consumer outside the timed part.
    let _: i64 = agent.ask(&0i64).await?;
    let took = join_once(&agent, n).await?;
    app.stop().await?;
    Ok(Measurement::new("mem-join", "faust-rs", 1, n)
        .timed(took)
        .setup(format!(
            "handler agent (x + 1), memory:// broker, one agent.join of {n} values; {}",
            crate::runtime_label()
        )))
}

type Request = (i64, oneshot::Sender<i64>);

/// A task answering `x + 1` to requests on an mpsc channel.
fn raw_server() -> mpsc::Sender<Request> {
    let (tx, mut rx) = mpsc::channel::<Request>(QUEUE);
    tokio::spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(x + 1);
        }
    });
    tx
}

async fn raw_call(tx: &mpsc::Sender<Request>, x: i64) -> Result<oneshot::Receiver<i64>> {
    let (otx, orx) = oneshot::channel();
    tx.send((x, otx))
        .await
        .map_err(|_| anyhow::anyhow!("server gone"))?;
    Ok(orx)
}

/// tokio-raw: `n` sequential requests over mpsc, replies over oneshot.
pub(crate) async fn raw_ask(n: u64, warmup: u64) -> Result<Measurement> {
    let tx = raw_server();
    for i in 0..warmup as i64 {
        raw_call(&tx, i).await?.await?;
    }
    let mut samples = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n as i64 {
        let t = Instant::now();
        let r = raw_call(&tx, i).await?.await?;
        samples.push(t.elapsed());
        ensure!(r == i + 1, "request {i} answered {r}");
    }
    let took = start.elapsed();
    Ok(Measurement::new("mem-ask", "tokio-raw", 1, n)
        .timed(took)
        .latencies(&mut samples)
        .setup(format!(
            "server task on a tokio mpsc, reply on a oneshot, sequential; {}",
            crate::runtime_label()
        )))
}

/// tokio-raw: send `n` requests (each with a oneshot), then await every
/// reply in input order.
pub(crate) async fn raw_join(n: u64) -> Result<Measurement> {
    let tx = raw_server();
    raw_call(&tx, 0).await?.await?;
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        let mut pending = Vec::with_capacity(n as usize);
        for i in 0..n as i64 {
            pending.push(raw_call(&tx, i).await?);
        }
        Ok::<_, anyhow::Error>(pending)
    });
    let pending = sender.await??;
    let mut out = Vec::with_capacity(n as usize);
    for p in pending {
        out.push(p.await?);
    }
    let took = start.elapsed();
    ensure!(
        out.iter().enumerate().all(|(i, v)| *v == i as i64 + 1),
        "wrong join result"
    );
    Ok(Measurement::new("mem-join", "tokio-raw", 1, n)
        .timed(took)
        .setup(format!(
        "{n} requests on a tokio mpsc, each with a oneshot, then every reply awaited in order; {}",
        crate::runtime_label()
    )))
}
