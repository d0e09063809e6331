//! `mem-io`: mem-throughput with an agent that waits ~100 µs of
//! simulated asynchronous I/O per event, the shape where concurrency
//! should multiply throughput (c=4 about 4× c=1).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use faust::{AgentSpec, Stream};
use tokio::sync::oneshot;

use crate::mem::{feed, memory_app, wait_fed, Done};
use crate::report::Measurement;

/// Simulated I/O time per event.
pub(crate) const IO_TIME: Duration = Duration::from_micros(100);

/// A thread completing simulated I/O requests at their deadlines, as a
/// network round trip would: many may be in flight at once. tokio's timer
/// has a 1 ms tick, too coarse for 100 µs.
#[derive(Clone)]
struct Io(std_mpsc::Sender<(Instant, u64, oneshot::Sender<()>)>);

impl Io {
    fn start() -> Result<Self> {
        let (tx, rx) = std_mpsc::channel::<(Instant, u64, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("simulated-io".into())
            .spawn(move || {
                let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
                let mut waiting = std::collections::HashMap::new();
                loop {
                    let now = Instant::now();
                    while let Some(Reverse((at, id))) = due.peek().copied() {
                        if at > now {
                            break;
                        }
                        due.pop();
                        if let Some(done) = waiting.remove(&id) {
                            let _: Result<(), ()> = oneshot::Sender::send(done, ());
                        }
                    }
                    let next = match due.peek() {
                        Some(Reverse((at, _))) => {
                            rx.recv_timeout(at.saturating_duration_since(now))
                        }
                        None => rx
                            .recv()
                            .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok((at, id, done)) => {
                            due.push(Reverse((at, id)));
                            waiting.insert(id, done);
                        }
                        Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .context("starting the simulated I/O thread")?;
        Ok(Self(tx))
    }

    /// Wait [`IO_TIME`] without holding a thread.
    async fn call(&self, id: u64) {
        let (tx, rx) = oneshot::channel();
        if self.0.send((Instant::now() + IO_TIME, id, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// faust-rs: a consumer agent with `concurrency` actors on the embedded
/// broker, each event waiting [`IO_TIME`] of simulated I/O before it is
/// counted; fed by one task calling `agent.send`.
pub(crate) async fn faust_mem_io(n: u64, concurrency: usize) -> Result<Measurement> {
    let app = memory_app("bench-mem-io")?;
    let io = Io::start()?;
    let done = Done::new(n);
    let d = done.clone();
    let spec = AgentSpec::consumer("io", move |mut s: Stream<u64>| {
        let (d, io) = (d.clone(), io.clone());
        async move {
            while let Some(v) = s.next().await {
                io.call(v).await;
                d.hit(v);
            }
            Ok::<_, faust::Error>(())
        }
    })
    .concurrency(concurrency)
    .topic("bench-mem-io");
    let agent = app.add_agent(spec)?;
    let partitions = app.config().topic_partitions;
    app.start().await?;

    let start = Instant::now();
    let feeder = feed!(agent, n);
    let end = wait_fed(&done, feeder).await?;
    done.check()?;
    app.stop().await?;
    Ok(Measurement::new("mem-io", "faust-rs", concurrency, n)
        .timed(end - start)
        .setup(format!(
            "consumer agent awaiting {IO_TIME:?} of simulated asynchronous I/O per event (a thread \
             completing each wait at its deadline), memory:// broker ({partitions} partitions), u64 \
             values as JSON, fed by one task calling agent.send; {}",
            crate::runtime_label()
        )))
}
