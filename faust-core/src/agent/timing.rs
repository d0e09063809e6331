//! The processing time of events, sampled so that timing costs almost
//! nothing on the hot path.
//!
//! Reading the clock twice per event costs more than delivering an event
//! to a trivial agent. So an actor going flat out times one event in
//! [`SAMPLE_EVERY`], and that event's time stands for the untimed ones
//! before it (it is counted with their weight): the histogram's count
//! stays the number of events, its distribution an unbiased sample. An
//! actor that had to wait for its event is not busy, and times it.

use std::sync::atomic::{AtomicU32, Ordering};

use super::AgentStats;
use crate::metrics::clock;

/// Under load, one event in this many is timed.
pub(super) const SAMPLE_EVERY: u32 = 32;

/// When a held event's processing started, if it is timed, and how many
/// events its time stands for.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timing {
    /// Clock reading at the start; 0 when not timed.
    started: u64,
    weight: u32,
}

/// An actor's choice of the events it times.
#[derive(Debug)]
pub(super) struct Sampler {
    /// Metrics on for the app.
    enabled: bool,
    /// Events taken since the last timed one.
    untimed: AtomicU32,
}

impl Sampler {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            untimed: AtomicU32::new(0),
        }
    }

    /// An event is taken; `waited`: the actor waited for it.
    #[inline]
    pub(super) fn start(&self, waited: bool) -> Timing {
        if !self.enabled {
            return Timing::default();
        }
        // One actor takes its events one at a time: no read-modify-write.
        let untimed = self.untimed.load(Ordering::Relaxed);
        if waited || untimed + 1 >= SAMPLE_EVERY {
            self.untimed.store(0, Ordering::Relaxed);
            Timing {
                started: clock().raw(),
                weight: untimed + 1,
            }
        } else {
            self.untimed.store(untimed + 1, Ordering::Relaxed);
            Timing::default()
        }
    }

    /// A batch starts: it is timed as a whole, and counts for `0` events
    /// until [`Timing::finish_batch`] knows its size.
    pub(super) fn start_batch(&self) -> Timing {
        if !self.enabled {
            return Timing::default();
        }
        Timing {
            started: clock().raw(),
            weight: 0,
        }
    }
}

impl Timing {
    /// The event is done: count its time, if it was timed.
    #[inline]
    pub(super) fn finish(self, stats: &AgentStats, shard: usize) {
        if self.started != 0 && self.weight > 0 {
            self.record(stats, shard, u64::from(self.weight));
        }
    }

    /// The batch whose first event holds this timing is done: its time
    /// counts for each of its `events`.
    pub(super) fn finish_batch(self, stats: &AgentStats, shard: usize, events: usize) {
        if self.started != 0 && events > 0 {
            self.record(stats, shard, events as u64);
        }
    }

    fn record(self, stats: &AgentStats, shard: usize, weight: u64) {
        let clock = clock();
        let elapsed = clock.delta(self.started, clock.raw());
        stats.record_processing(shard, elapsed, weight);
    }
}
