//! The measurement line: its schema, ratios against baselines, targets,
//! percentiles and peak RSS.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One measurement: one JSON line on stdout. Every key is always present
/// (`null` when it does not apply), so the lines load into a table as is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Measurement {
    /// Workload name, e.g. `mem-throughput`.
    pub(crate) workload: String,
    /// Who was measured: `faust-rs`, `faust-rs-metrics-off`, `tokio-raw`,
    /// `rdkafka-raw`, `python-faust` or a JVM peer (`java-relay`,
    /// `java-relay-tuned`, `kafka-streams`, `kafka-streams-eos`,
    /// `spring-ask`, `spring-ask-linger0`).
    #[serde(rename = "impl")]
    pub(crate) implementation: String,
    /// `ok`, `skipped` (could not run here, see `reason`) or `failed`.
    pub(crate) status: String,
    /// Why the measurement was skipped or failed.
    pub(crate) reason: Option<String>,
    /// Actors (or consumer tasks) sharing the work; 1 for ask/join.
    pub(crate) concurrency: usize,
    /// Events processed (asks answered, values joined).
    pub(crate) events: u64,
    /// Scale curves: the x value of the point (agents, partitions, asks in
    /// flight or values joined); `null` on other lines.
    pub(crate) point: Option<u64>,
    /// Wall time of the timed part.
    pub(crate) seconds: Option<f64>,
    /// `events / seconds`.
    pub(crate) events_per_sec: Option<f64>,
    /// Median round trip (ask workloads).
    pub(crate) p50_us: Option<f64>,
    /// 99th percentile round trip (ask workloads).
    pub(crate) p99_us: Option<f64>,
    /// Peak resident set size of the process that ran this measurement
    /// alone (`VmHWM`), in MiB.
    pub(crate) peak_rss_mb: Option<f64>,
    /// How many times as fast faust-rs is as each baseline measured in
    /// this run (only on `faust-rs` lines): throughput ratio
    /// (`ours / theirs`) or, for ask workloads, latency ratio of the p50
    /// (`theirs / ours`). Above 1 means faust-rs is faster.
    #[serde(default)]
    pub(crate) ratio_vs: BTreeMap<String, f64>,
    /// The project's targets for this line, with whether they were met.
    #[serde(default)]
    pub(crate) targets: Vec<Target>,
    /// How it was measured (runtime, transport, sizes).
    pub(crate) setup: Option<String>,
}

/// A target from the benchmarks issue, checked (not asserted).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Target {
    /// The target in words, e.g. `events_per_sec >= 1/3 x tokio-raw`.
    pub(crate) target: String,
    /// The threshold.
    pub(crate) want: f64,
    /// The measured value (a ratio or microseconds), `null` when the
    /// baseline was not measured.
    pub(crate) got: Option<f64>,
    /// Whether it was met; `null` when it could not be checked.
    pub(crate) met: Option<bool>,
}

impl Measurement {
    pub(crate) fn new(
        workload: &str,
        implementation: &str,
        concurrency: usize,
        events: u64,
    ) -> Self {
        Self {
            workload: workload.to_string(),
            implementation: implementation.to_string(),
            status: "ok".to_string(),
            concurrency,
            events,
            ..Self::default()
        }
    }

    pub(crate) fn skipped(mut self, reason: impl Into<String>) -> Self {
        self.status = "skipped".into();
        self.reason = Some(reason.into());
        self
    }

    pub(crate) fn failed(mut self, reason: impl Into<String>) -> Self {
        self.status = "failed".into();
        self.reason = Some(reason.into());
        self
    }

    pub(crate) fn ok(&self) -> bool {
        self.status == "ok"
    }

    /// Fill `seconds` and `events_per_sec` from the timed span.
    pub(crate) fn timed(mut self, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64();
        self.seconds = Some(round(secs, 6));
        self.events_per_sec = (secs > 0.0).then(|| round(self.events as f64 / secs, 1));
        self
    }

    /// Fill `p50_us` and `p99_us` from round-trip samples.
    pub(crate) fn latencies(mut self, samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        self.p50_us = percentile(samples, 50.0).map(|d| round(d.as_secs_f64() * 1e6, 1));
        self.p99_us = percentile(samples, 99.0).map(|d| round(d.as_secs_f64() * 1e6, 1));
        self
    }

    /// The x value of a scale curve's point.
    pub(crate) fn point(mut self, x: u64) -> Self {
        self.point = Some(x);
        self
    }

    pub(crate) fn setup(mut self, setup: impl Into<String>) -> Self {
        self.setup = Some(setup.into());
        self
    }

    /// Compute `ratio_vs` against the baselines measured for the same
    /// workload and concurrency, then check the targets.
    pub(crate) fn compare(&mut self, baselines: &[Measurement]) {
        if !self.ok() {
            return;
        }
        for b in baselines.iter().filter(|b| b.ok()) {
            let ratio = if is_latency(&self.workload) {
                match (b.p50_us, self.p50_us) {
                    (Some(theirs), Some(ours)) if ours > 0.0 => Some(theirs / ours),
                    _ => None,
                }
            } else {
                match (self.events_per_sec, b.events_per_sec) {
                    (Some(ours), Some(theirs)) if theirs > 0.0 => Some(ours / theirs),
                    _ => None,
                }
            };
            if let Some(r) = ratio {
                self.ratio_vs.insert(b.implementation.clone(), round(r, 3));
            }
        }
        self.targets = targets_for(self);
    }
}

fn is_latency(workload: &str) -> bool {
    workload.ends_with("-ask")
}

/// The targets of the benchmarks issue, per workload.
fn targets_for(m: &Measurement) -> Vec<Target> {
    let ratio = |vs: &str, want: f64, words: &str| {
        let got = m.ratio_vs.get(vs).copied();
        Target {
            target: words.to_string(),
            want,
            got,
            met: got.map(|g| g >= want),
        }
    };
    let at_most = |got: Option<f64>, want_us: f64, words: &str| Target {
        target: words.to_string(),
        want: want_us,
        got,
        met: got.map(|p| p <= want_us),
    };
    let p50_at_most = |want_us: f64, words: &str| at_most(m.p50_us, want_us, words);
    let p99_at_most = |want_us: f64, words: &str| at_most(m.p99_us, want_us, words);
    match m.workload.as_str() {
        "mem-throughput" => vec![
            ratio(
                "python-faust",
                100.0,
                "events_per_sec >= 100 x python-faust",
            ),
            ratio("tokio-raw", 1.0 / 3.0, "events_per_sec >= 1/3 x tokio-raw"),
            ratio(
                "faust-rs-metrics-off",
                0.95,
                "metrics cost <= 5%: events_per_sec >= 0.95 x metrics off",
            ),
        ],
        "mem-ask" => vec![p50_at_most(50.0, "p50_us <= 50 (in-memory ask)")],
        "kafka-e2e" => vec![
            ratio("rdkafka-raw", 0.9, "events_per_sec >= 0.9 x rdkafka-raw"),
            ratio("python-faust", 20.0, "events_per_sec >= 20 x python-faust"),
            ratio(
                "java-relay-tuned",
                1.2,
                "events_per_sec >= 1.2 x java-relay-tuned",
            ),
            ratio(
                "kafka-streams",
                2.0,
                "events_per_sec >= 2 x kafka-streams (at-least-once)",
            ),
            ratio(
                "faust-rs-metrics-off",
                0.95,
                "metrics cost <= 5%: events_per_sec >= 0.95 x metrics off",
            ),
        ],
        "kafka-ask" => vec![
            p50_at_most(5000.0, "p50_us <= 5000 (ask on local Kafka)"),
            p50_at_most(450.0, "p50_us <= 450 (ask on local Kafka)"),
            p99_at_most(1500.0, "p99_us <= 1500 (ask on local Kafka)"),
        ],
        _ => Vec::new(),
    }
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Peak resident set size of this process (`VmHWM`), in MiB.
pub(crate) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kb / 1024.0, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&s[..1], 99.0), Some(Duration::from_micros(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn ratios_and_targets() {
        let mut ours =
            Measurement::new("mem-throughput", "faust-rs", 1, 100).timed(Duration::from_secs(1));
        let raw = Measurement::new("mem-throughput", "tokio-raw", 1, 100)
            .timed(Duration::from_millis(250));
        let py =
            Measurement::new("mem-throughput", "python-faust", 1, 10).timed(Duration::from_secs(1));
        ours.compare(&[raw, py]);
        assert_eq!(ours.ratio_vs["tokio-raw"], 0.25);
        assert_eq!(ours.ratio_vs["python-faust"], 10.0);
        assert_eq!(ours.targets.len(), 3);
        assert!(ours.targets[..2].iter().all(|t| t.met == Some(false)));
        // No metrics-off run to compare with: the metrics' target is unknown.
        assert_eq!(ours.targets[2].met, None);

        let mut ask = Measurement::new("mem-ask", "faust-rs", 1, 10);
        ask.p50_us = Some(20.0);
        let mut base = Measurement::new("mem-ask", "tokio-raw", 1, 10);
        base.p50_us = Some(10.0);
        ask.compare(&[base]);
        assert_eq!(ask.ratio_vs["tokio-raw"], 0.5);
        assert_eq!(ask.targets[0].met, Some(true));

        // Latency targets read p50 and p99; ratios cover every peer.
        let mut kask = Measurement::new("kafka-ask", "faust-rs", 1, 10);
        kask.p50_us = Some(400.0);
        kask.p99_us = Some(2000.0);
        let mut spring = Measurement::new("kafka-ask", "spring-ask", 1, 10);
        spring.p50_us = Some(1200.0);
        kask.compare(&[spring]);
        assert_eq!(kask.ratio_vs["spring-ask"], 3.0);
        let met: Vec<_> = kask.targets.iter().map(|t| t.met).collect();
        assert_eq!(met, [Some(true), Some(true), Some(false)]);
    }

    #[test]
    fn every_key_is_present() {
        let m = Measurement::new("mem-join", "faust-rs", 1, 5).skipped("why");
        let v = serde_json::to_value(&m).unwrap();
        for key in [
            "workload",
            "impl",
            "status",
            "reason",
            "concurrency",
            "events",
            "point",
            "seconds",
            "events_per_sec",
            "p50_us",
            "p99_us",
            "peak_rss_mb",
            "ratio_vs",
            "targets",
            "setup",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
    }
}
