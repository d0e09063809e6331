//! The batch workloads: mem-throughput and kafka-e2e with the agent taking
//! its events in batches (the Kafka one is in `kafka.rs`, with the other
//! Kafka workloads).

use std::time::{Duration, Instant};

use anyhow::Result;
use faust::{AgentSpec, Stream};

use crate::mem::{feed, memory_app, wait_fed, Done};
use crate::report::Measurement;

/// Events per batch of the batch workloads.
pub(crate) const BATCH: usize = 100;

/// How long a batch of the batch workloads waits for more after its first
/// event (only the last, short batch waits).
pub(crate) const BATCH_WITHIN: Duration = Duration::from_millis(5);

/// faust-rs: mem-throughput with the agent reading batches of up to
/// [`BATCH`] events (`Stream::take_batch`), each batch acked as a whole when
/// the next is taken.
pub(crate) async fn faust_mem_batch(n: u64, concurrency: usize) -> Result<Measurement> {
    let app = memory_app("bench-mem-batch")?;
    let done = Done::new(n);
    let d = done.clone();
    let spec = AgentSpec::consumer("count", move |mut s: Stream<u64>| {
        let d = d.clone();
        async move {
            while let Some(batch) = s.take_batch(BATCH, BATCH_WITHIN).await {
                for v in batch {
                    d.hit(v);
                }
            }
            Ok::<_, faust::Error>(())
        }
    })
    .concurrency(concurrency)
    .topic("bench-mem-batch");
    let agent = app.add_agent(spec)?;
    let partitions = app.config().topic_partitions;
    app.start().await?;

    let start = Instant::now();
    let feeder = feed!(agent, n);
    let end = wait_fed(&done, feeder).await?;
    done.check()?;
    app.stop().await?;
    Ok(Measurement::new("mem-batch", "faust-rs", concurrency, n)
        .timed(end - start)
        .setup(format!(
            "consumer agent taking batches of up to {BATCH} (within {BATCH_WITHIN:?}), memory:// broker \
             ({partitions} partitions), u64 values as JSON, fed by one task calling agent.send; {}",
            crate::runtime_label()
        )))
}
