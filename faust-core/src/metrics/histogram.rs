//! A latency histogram that records without a lock.
//!
//! `prometheus-client`'s own histogram takes a mutex on every observation;
//! an agent observes one duration per event, millions a second, from
//! several actors at once. This one keeps one relaxed atomic counter per
//! bucket and a sum in nanoseconds, and is read (summed) only when
//! scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in nanoseconds: 10 µs to 60 s, in the
/// 1-2.5-5 steps Prometheus users expect. Above the last: `+Inf`.
const BOUNDS_NS: [u64; 22] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    20_000_000_000,
    30_000_000_000,
    60_000_000_000,
];

/// Durations counted by bucket, with their sum.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

/// What a [`Histogram`] held when read.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// Count per bucket (not cumulative), the last one `+Inf`.
    pub(crate) buckets: [u64; BOUNDS_NS.len() + 1],
    pub(crate) sum_ns: u64,
}

impl Histogram {
    /// Count one duration `weight` times (a sampled observation stands for
    /// `weight` of them).
    #[inline]
    pub(crate) fn observe_weighted(&self, elapsed: Duration, weight: u64) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BOUNDS_NS.len());
        self.buckets[i].fetch_add(weight, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(ns.saturating_mul(weight), Ordering::Relaxed);
    }

    /// Count one duration.
    #[inline]
    pub(crate) fn observe(&self, elapsed: Duration) {
        self.observe_weighted(elapsed, 1);
    }

    /// Add this histogram's counts to `into`.
    pub(crate) fn add_to(&self, into: &mut Snapshot) {
        for (sum, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *sum += b.load(Ordering::Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        self.add_to(&mut s);
        s
    }
}

impl Snapshot {
    /// Number of durations counted.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Their sum in seconds.
    pub(crate) fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// `(upper bound in seconds, count)` per bucket, counts not cumulative
    /// (the encoder accumulates them), the last bound `+Inf`.
    pub(crate) fn buckets(&self) -> Vec<(f64, u64)> {
        BOUNDS_NS
            .iter()
            .map(|&b| b as f64 / 1e9)
            .chain([f64::INFINITY])
            .zip(self.buckets.iter().copied())
            .collect()
    }
}

/// Encoded as a Prometheus histogram in seconds.
impl prometheus_client::encoding::EncodeMetric for Snapshot {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum_seconds(),
            self.count(),
            &self.buckets(),
            None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(3));
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(11));
        h.observe(Duration::from_secs(120));
        h.observe_weighted(Duration::from_millis(1), 16);
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[6], 16);
        assert_eq!(s.buckets[BOUNDS_NS.len()], 1);
        assert_eq!(s.count(), 20);
        let expected = 3_000 + 10_000 + 11_000 + 120_000_000_000 + 16 * 1_000_000;
        assert_eq!(s.sum_ns, expected);
        let buckets = s.buckets();
        assert_eq!(buckets[0], (0.00001, 2));
        assert!(buckets.last().unwrap().0.is_infinite());
    }
}
