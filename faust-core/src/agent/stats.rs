//! What an agent tells about itself: its attributes ([`AgentInfo`]) and
//! its counters ([`AgentStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// Counters of one agent.
#[derive(Debug, Default)]
pub struct AgentStats {
    events_in: AtomicU64,
    values_out: AtomicU64,
    pub(super) errors: AtomicU64,
    crashes: AtomicU64,
    pub(super) restarts: AtomicU64,
    asks: AtomicU64,
    ask_micros: AtomicU64,
}

impl AgentStats {
    pub(crate) fn record_in(&self) {
        self.events_in.fetch_add(1, Ordering::Relaxed);
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
