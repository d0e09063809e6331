//! Profiling harness for the in-memory path: first only sends N events to
//! a consumer agent's topic on `memory://` (the app not started), then
//! starts the app and only consumes them, printing each side's rate. Run it
//! under `perf` or `valgrind --tool=callgrind` to see each side's cost
//! without the other in the way (docs/benchmarks.md, "Where the time goes").
//!
//! ```sh
//! cargo run --release -p faust-bench --example send_then_consume -- 1000000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use faust::{AgentSpec, Stream};

#[tokio::main(worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 1_000_000,
    };
    let url = format!("memory://send-then-consume-{}", std::process::id());
    let app = faust::app_builder("send-then-consume")
        .broker(url)
        .build()?;
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (c, d) = (count.clone(), done.clone());
    let agent = app.add_agent(
        AgentSpec::consumer("count", move |mut s: Stream<u64>| {
            let (c, d) = (c.clone(), d.clone());
            async move {
                while s.next().await.is_some() {
                    if c.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        d.notify_one();
                    }
                }
                Ok::<_, faust::Error>(())
            }
        })
        .topic("send-then-consume"),
    )?;
    let t = Instant::now();
    for i in 0..n {
        agent.send(&i).await?;
    }
    let sent = t.elapsed();
    let t = Instant::now();
    app.start().await?;
    if n > 0 {
        tokio::time::timeout(std::time::Duration::from_secs(600), done.notified()).await?;
    }
    let consumed = t.elapsed();
    app.stop().await?;
    println!(
        "send only: {:.0} events/s; consume only (preloaded, app start included): {:.0} events/s",
        n as f64 / sent.as_secs_f64(),
        n as f64 / consumed.as_secs_f64()
    );
    Ok(())
}
