//! What an agent tells about itself: its attributes ([`AgentInfo`]) and
//! its counters ([`AgentStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::histogram::{Histogram, Snapshot};

/// A snapshot of an agent's attributes (Faust's `Agent.info()`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AgentInfo {
    /// Agent name.
    pub name: String,
    /// Topic it consumes (the first of several); `<LOCAL>` for an agent
    /// reading an in-memory channel, as in Faust.
    pub topic: String,
    /// The in-memory channel it reads, if any.
    pub channel: Option<String>,
    /// Every topic it consumes by name.
    pub topics: Vec<String>,
    /// Patterns of further topics it consumes.
    pub topic_patterns: Vec<String>,
    /// Number of actors.
    pub concurrency: usize,
    /// One actor per partition.
    pub isolated_partitions: bool,
    /// Reply address in headers rather than an envelope.
    pub use_reply_headers: bool,
    /// Help text.
    pub help: String,
    /// Sinks, described (`@agent`, topic name or `<callback>`).
    pub sinks: Vec<String>,
    /// Supervisor strategy name.
    pub supervisor_strategy: String,
    /// Whether an `on_error` callback is set.
    pub has_on_error: bool,
    /// Value codec name.
    pub value_codec: String,
    /// Rust type of the values it consumes.
    pub value_type: String,
    /// Whether it produces values (replies and sinks).
    pub produces_values: bool,
}

/// Counters of one agent (exported as the `faust_agent_*` metrics).
#[derive(Debug, Default)]
pub struct AgentStats {
    events_in: AtomicU64,
    undecodable: AtomicU64,
    processed: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    values_out: AtomicU64,
    pub(super) errors: AtomicU64,
    crashes: AtomicU64,
    pub(super) restarts: AtomicU64,
    asks: AtomicU64,
    ask_micros: AtomicU64,
    /// Processing time of its events, one histogram per few actors, so
    /// that actors running at once rarely write the same cache line.
    processing: [PaddedHistogram; SHARDS],
}

/// Histograms of the processing time per agent: actor `i` writes shard
/// `i % SHARDS`.
const SHARDS: usize = 4;

/// A histogram on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedHistogram(Histogram);

impl AgentStats {
    pub(crate) fn record_in(&self) {
        self.events_in.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn record_undecodable(&self) {
        self.undecodable.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn record_done(&self, failed: bool) {
        let counter = if failed {
            &self.failed
        } else {
            &self.processed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn record_dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
    /// Count the processing time of one event (`weight` events, when
    /// sampled) by the actor with this `shard` number.
    #[inline]
    pub(crate) fn record_processing(&self, shard: usize, elapsed: Duration, weight: u64) {
        self.processing[shard % SHARDS]
            .0
            .observe_weighted(elapsed, weight);
    }
    /// Processing times so far, every actor's.
    pub(crate) fn processing_times(&self) -> Snapshot {
        let mut all = Snapshot::default();
        for shard in &self.processing {
            shard.0.add_to(&mut all);
        }
        all
    }
    /// Events taken by its actors: decoded ([`events_in`](Self::events_in))
    /// or not.
    pub fn events_received(&self) -> u64 {
        self.events_in() + self.undecodable.load(Ordering::Relaxed)
    }
    /// Events it finished without an error (acked once their outputs were
    /// delivered).
    pub fn events_processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }
    /// Events that failed: undecodable, an error returned for them, or a
    /// crash while they were current.
    pub fn events_failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    /// Failed events copied to the dead-letter topic.
    pub fn events_dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }
    pub(crate) fn record_out(&self) {
        self.values_out.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn record_crash(&self) {
        self.crashes.fetch_add(1, Ordering::Relaxed);
    }
    /// Events decoded and handed to the function.
    pub fn events_in(&self) -> u64 {
        self.events_in.load(Ordering::Relaxed)
    }
    /// Values produced (replies/sinks).
    pub fn values_out(&self) -> u64 {
        self.values_out.load(Ordering::Relaxed)
    }
    /// Errors reported to `on_error`.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
    /// Actor crashes.
    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::Relaxed)
    }
    /// Actor restarts by the supervisor.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    pub(crate) fn record_ask(&self, elapsed: Duration) {
        self.asks.fetch_add(1, Ordering::Relaxed);
        self.ask_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
    /// Answered `ask`s made through this handle.
    pub fn asks(&self) -> u64 {
        self.asks.load(Ordering::Relaxed)
    }
    /// Mean round trip of answered `ask`s.
    pub fn mean_ask_latency(&self) -> Option<Duration> {
        let n = self.asks();
        (n > 0).then(|| Duration::from_micros(self.ask_micros.load(Ordering::Relaxed) / n))
    }
}
