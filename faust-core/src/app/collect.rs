//! The app's `faust_*` metrics, read from its counters on every scrape.

use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use tokio::time::Instant;

use super::{App, AppInner};
use crate::agent::{Agent, AgentStats};
use crate::metrics::app::AppCounters;

/// Encodes an app's metrics; holds the app weakly (the app holds it).
#[derive(Debug)]
pub(super) struct AppCollector {
    pub(super) app: Weak<AppInner>,
}

type Fmt = Result<(), std::fmt::Error>;

/// The value of a partition gauge for partition `i` (none: unknown).
type PartitionValue<'a> = Box<dyn Fn(usize) -> Option<f64> + 'a>;

/// A family: one sample per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    (name, help): (&str, &str),
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Fmt {
    let unit = (kind == MetricType::Histogram).then_some(&Unit::Seconds);
    let mut family = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A counter of each agent.
fn agent_counter(
    enc: &mut DescriptorEncoder<'_>,
    agents: &[Agent],
    name: &str,
    help: &str,
    value: fn(&AgentStats) -> u64,
) -> Fmt {
    let samples = agents
        .iter()
        .map(|a| ([("agent", a.name())], ConstCounter::new(value(a.stats()))));
    family(enc, (name, help), MetricType::Counter, samples)
}

/// A gauge of each agent.
fn agent_gauge(
    enc: &mut DescriptorEncoder<'_>,
    agents: &[Agent],
    name: &str,
    help: &str,
    value: fn(&Agent) -> i64,
) -> Fmt {
    let samples = agents
        .iter()
        .map(|a| ([("agent", a.name())], ConstGauge::new(value(a))));
    family(enc, (name, help), MetricType::Gauge, samples)
}

/// A metric without labels.
fn single<M: EncodeMetric>(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, m: M) -> Fmt {
    let kind = m.metric_type();
    let unit = (kind == MetricType::Histogram).then_some(&Unit::Seconds);
    m.encode(enc.encode_descriptor(name, help, unit, kind)?)
}

impl Collector for AppCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Fmt {
        let Some(inner) = self.app.upgrade() else {
            return Ok(());
        };
        let app = App { inner };
        let agents: Vec<Agent> = app
            .agents()
            .all()
            .into_iter()
            .filter(|a| !a.is_remote())
            .collect();
        let enc = &mut enc;
        agent_counter(
            enc,
            &agents,
            "faust_agent_events_received",
            "Events taken by the agent's actors (decoded or not).",
            AgentStats::events_received,
        )?;
        agent_counter(
            enc,
            &agents,
            "faust_agent_events_processed",
            "Events the agent finished without an error (acked once their outputs were delivered).",
            AgentStats::events_processed,
        )?;
        agent_counter(enc, &agents, "faust_agent_events_failed", "Events that failed: undecodable, an error returned for them, or a crash while they were current.", AgentStats::events_failed)?;
        agent_counter(
            enc,
            &agents,
            "faust_agent_events_dead_lettered",
            "Failed events copied to the dead-letter topic.",
            AgentStats::events_dead_lettered,
        )?;
        agent_counter(
            enc,
            &agents,
            "faust_agent_values_produced",
            "Values the agent produced (each a reply and a record per sink).",
            AgentStats::values_out,
        )?;
        agent_counter(
            enc,
            &agents,
            "faust_agent_errors",
            "Errors reported to the agent's on_error.",
            AgentStats::errors,
        )?;
        agent_counter(
            enc,
            &agents,
            "faust_agent_crashes",
            "Actor crashes (an error returned by, or a panic of, the agent function).",
            AgentStats::crashes,
        )?;
        agent_counter(
            enc,
            &agents,
            "faust_agent_restarts",
            "Actor restarts by the supervisor.",
            AgentStats::restarts,
        )?;
        agent_gauge(
            enc,
            &agents,
            "faust_agent_actors",
            "Live actors of the agent.",
            |a| a.actor_count() as i64,
        )?;
        agent_gauge(
            enc,
            &agents,
            "faust_agent_queue_depth",
            "Events waiting in the agent's queues for an actor.",
            |a| a.queue_depth() as i64,
        )?;
        family(
            enc,
            ("faust_agent_event_processing", "Time from an actor taking an event to finishing it (under load one event in 32 per actor is timed and counts for the untimed ones before it)."),
            MetricType::Histogram,
            agents.iter().map(|a| ([("agent", a.name())], a.stats().processing_times())),
        )?;
        self.encode_partitions(&app, enc)?;
        let c = &app.context().counters;
        let get = |c| ConstCounter::new(AppCounters::get(c));
        single(
            enc,
            "faust_app_asks_sent",
            "Requests sent by ask (from this app).",
            get(&c.asks_sent),
        )?;
        single(
            enc,
            "faust_app_asks_answered",
            "Asks that got their reply (a value or the remote error).",
            get(&c.asks_answered),
        )?;
        single(
            enc,
            "faust_app_asks_timed_out",
            "Asks that ended at their deadline.",
            get(&c.asks_timed_out),
        )?;
        single(
            enc,
            "faust_app_ask_duration",
            "Round trip of answered asks.",
            c.ask_duration.snapshot(),
        )?;
        single(
            enc,
            "faust_app_replies_received",
            "Replies read from the app's reply topics.",
            ConstCounter::new(app.replies().replies_received()),
        )?;
        single(
            enc,
            "faust_app_replies_unmatched",
            "Replies read that no ask waited for (any more).",
            ConstCounter::new(app.replies().replies_unmatched()),
        )?;
        single(
            enc,
            "faust_app_commits",
            "Offset commits that succeeded.",
            get(&c.commits),
        )?;
        single(
            enc,
            "faust_app_commit_failures",
            "Offset commits that failed (retried at the next commit).",
            get(&c.commits_failed),
        )?;
        single(
            enc,
            "faust_app_commit_duration",
            "Time an offset commit took.",
            c.commit_duration.snapshot(),
        )?;
        single(
            enc,
            "faust_app_rebalances",
            "Partition assignments received by the app's consumer.",
            get(&c.rebalances),
        )?;
        single(
            enc,
            "faust_app_assigned_partitions",
            "Partitions the app's consumer holds.",
            ConstGauge::new(app.context().partitions.read().len() as i64),
        )?;
        Ok(())
    }
}

impl AppCollector {
    fn encode_partitions(&self, app: &App, enc: &mut DescriptorEncoder<'_>) -> Fmt {
        let parts = app.context().partitions.read().clone();
        let mut parts: Vec<_> = parts
            .into_iter()
            .map(|(tp, acks)| (tp, acks.progress()))
            .collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let labels: Vec<[(&str, String); 2]> = parts
            .iter()
            .map(|(tp, _)| {
                [
                    ("topic", tp.topic.to_string()),
                    ("partition", tp.partition.to_string()),
                ]
            })
            .collect();
        let now = Instant::now();
        let timeout = app.config().stall_timeout;
        let watch = app.inner.watch.lock();
        let gauges: [(&str, &str, PartitionValue<'_>); 5] = [
            ("faust_partition_committed_offset", "Offset last committed (the next one to read after a restart).", Box::new(|i| parts[i].1.committed.map(|o| o as f64))),
            ("faust_partition_end_offset", "End offset of the partition (the offset the next record written gets), as the consumer last learnt it.", Box::new(|i| parts[i].1.end.map(|o| o as f64))),
            ("faust_partition_lag", "Records of the partition not committed yet: end offset minus committed offset.", Box::new(|i| {
                let p = &parts[i].1;
                Some((p.end? - p.committed?).max(0) as f64)
            })),
            ("faust_partition_oldest_in_flight_age_seconds", "How long the oldest event delivered and not finished has been so (0: none in flight); sampled every quarter of the stall timeout, and at least once a second.", Box::new(|i| Some(watch.oldest_age(&parts[i].0, now).map_or(0.0, |d| d.as_secs_f64())))),
            ("faust_partition_stalled", "1 if the partition is stalled (its oldest event in flight has not moved for the stall timeout).", Box::new(|i| Some(if watch.is_stalled(&parts[i].0, now, timeout) { 1.0 } else { 0.0 }))),
        ];
        for (name, help, value) in gauges {
            let samples = labels
                .iter()
                .enumerate()
                .filter_map(|(i, l)| Some((l.as_slice(), ConstGauge::new(value(i)?))));
            family(enc, (name, help), MetricType::Gauge, samples)?;
        }
        Ok(())
    }
}
