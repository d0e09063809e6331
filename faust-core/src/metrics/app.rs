//! The app-wide numbers: requests and replies, commits, rebalances.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::Histogram;

/// Counters of one app (exported as the `faust_app_*` metrics).
#[derive(Debug, Default)]
pub(crate) struct AppCounters {
    pub(crate) asks_sent: AtomicU64,
    pub(crate) asks_answered: AtomicU64,
    pub(crate) asks_timed_out: AtomicU64,
    pub(crate) ask_duration: Histogram,
    pub(crate) commits: AtomicU64,
    pub(crate) commits_failed: AtomicU64,
    pub(crate) commit_duration: Histogram,
    pub(crate) rebalances: AtomicU64,
}

impl AppCounters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// An ask ended: answered after `elapsed`, or timed out.
    pub(crate) fn ask_ended(&self, answered: Option<Duration>, timed_out: bool) {
        if let Some(elapsed) = answered {
            Self::add(&self.asks_answered);
            self.ask_duration.observe(elapsed);
        }
        if timed_out {
            Self::add(&self.asks_timed_out);
        }
    }

    /// A commit ended after `elapsed`.
    pub(crate) fn commit_ended(&self, elapsed: Duration, ok: bool) {
        Self::add(if ok {
            &self.commits
        } else {
            &self.commits_failed
        });
        self.commit_duration.observe(elapsed);
    }
}
