//! Whether the app is healthy and making progress: readiness ([`Health`])
//! and the stall watch that logs a warning when a partition stops moving.
//!
//! A partition *stalls* when the oldest event delivered to its agents and
//! not finished stays the same for the app's `stall_timeout`, or when
//! records wait past everything delivered and nothing is delivered for that
//! long. The watch samples each partition's progress every quarter of the
//! timeout, and at least once a second: nothing is measured on the path of
//! an event.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{App, AppInner};
use crate::record::TopicPartition;
use crate::runtime::acks::Progress;

/// Whether the app is ready, and if not, why ([`App::health`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Health {
    /// Started, consuming its partitions, none of them stalled.
    pub ready: bool,
    /// Why it is not ready, one line each.
    pub problems: Vec<String>,
    /// The stalled partitions.
    pub stalls: Vec<Stall>,
}

/// A partition that stopped making progress.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Stall {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset it is stuck at: the event in flight, or the next record
    /// to deliver.
    pub offset: i64,
    /// Whether that event is in flight (delivered, not finished); if not,
    /// records wait and none is delivered.
    pub in_flight: bool,
    /// How long it has not moved, in whole seconds or more.
    #[serde(serialize_with = "seconds")]
    pub stalled_for: Duration,
    /// The agent and actor holding the event, if one does (else it waits
    /// for its outputs' delivery, or sits in a queue).
    pub holder: Option<String>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The actor holding a stalled event.
struct Holder {
    agent: String,
    actor: String,
    traceback: String,
}

/// What the watch last saw of one partition.
#[derive(Debug)]
struct Seen {
    progress: Progress,
    /// Since when the oldest event in flight is the same one.
    oldest_since: Instant,
    /// Since when nothing new was delivered.
    delivered_since: Instant,
    /// A stall warning was logged for the current stall.
    warned: bool,
}

/// The stall watch's view of every partition.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    seen: HashMap<TopicPartition, Seen>,
}

impl Watch {
    /// Look at every partition once; returns the stalls that began now.
    fn look(
        &mut self,
        parts: &HashMap<TopicPartition, Arc<crate::runtime::acks::PartitionAcks>>,
        timeout: Duration,
        now: Instant,
    ) -> Vec<(TopicPartition, Progress, Duration)> {
        self.seen.retain(|tp, _| parts.contains_key(tp));
        let mut begun = Vec::new();
        for (tp, acks) in parts {
            let progress = acks.progress();
            let seen = self.seen.entry(tp.clone()).or_insert(Seen {
                progress,
                oldest_since: now,
                delivered_since: now,
                warned: false,
            });
            if seen.progress.oldest_unacked != progress.oldest_unacked {
                seen.oldest_since = now;
            }
            if seen.progress.delivered != progress.delivered {
                seen.delivered_since = now;
            }
            seen.progress = progress;
            match seen.stalled(now, timeout).map(|(_, for_)| for_) {
                Some(for_) if !seen.warned => {
                    seen.warned = true;
                    begun.push((tp.clone(), progress, for_));
                }
                Some(_) => {}
                None => {
                    if seen.warned {
                        tracing::info!(partition = %tp, "partition makes progress again");
                    }
                    seen.warned = false;
                }
            }
        }
        begun
    }

    /// How long the oldest event in flight of `tp` has been so (none when
    /// nothing is in flight).
    pub(crate) fn oldest_age(&self, tp: &TopicPartition, now: Instant) -> Option<Duration> {
        let seen = self.seen.get(tp)?;
        seen.progress
            .oldest_unacked
            .map(|_| now.saturating_duration_since(seen.oldest_since))
    }

    /// Whether `tp` is stalled now.
    pub(crate) fn is_stalled(&self, tp: &TopicPartition, now: Instant, timeout: Duration) -> bool {
        self.seen
            .get(tp)
            .is_some_and(|seen| seen.stalled(now, timeout).is_some())
    }
}

impl Seen {
    /// Where and for how long it has been stalled, if it is (see the
    /// module docs): the offset it is stuck at and since when.
    fn stalled(&self, now: Instant, timeout: Duration) -> Option<(i64, Duration)> {
        let (since, offset) = self.stuck_at()?;
        let for_ = now.saturating_duration_since(since);
        (for_ >= timeout).then_some((offset, for_))
    }

    /// Since when and at which offset it does not move: the oldest event
    /// in flight, or, with nothing in flight and records waiting past the
    /// delivered ones, the next record to deliver.
    fn stuck_at(&self) -> Option<(Instant, i64)> {
        let p = &self.progress;
        match (p.oldest_unacked, p.delivered, p.end) {
            (Some(offset), ..) => Some((self.oldest_since, offset)),
            (None, Some(delivered), Some(end)) if end > delivered => {
                Some((self.delivered_since, delivered))
            }
            _ => None,
        }
    }
}

impl App {
    /// Whether the app is ready: started, not crashed, consuming at least
    /// one assigned partition (if it consumes topics), and none of its
    /// partitions stalled (see [`AppBuilder::stall_timeout`](crate::AppBuilder::stall_timeout)).
    /// The web endpoint's `/ready` answers with this.
    /// It never waits: while the app starts or stops it answers at once
    /// that it is not ready.
    pub async fn health(&self) -> Health {
        let mut problems = Vec::new();
        // Never waits: a start holds the lock while it joins the group.
        let consumes = match self.inner.running.try_lock() {
            Err(_) => {
                problems.push("the app is starting or stopping".to_string());
                false
            }
            Ok(running) => match &*running {
                None => {
                    problems.push("the app is not running".to_string());
                    false
                }
                Some(running) => running.conductor.is_some(),
            },
        };
        if let Some(reason) = self.crash_reason() {
            problems.push(format!("the app crashed: {reason}"));
        }
        let parts = self.context().partitions.read().clone();
        if consumes && parts.is_empty() {
            problems.push("no partitions assigned yet".to_string());
        }
        let stalls = self.stalls(&parts);
        for s in &stalls {
            problems.push(describe(s));
        }
        Health {
            ready: problems.is_empty(),
            problems,
            stalls,
        }
    }

    /// The partitions stalled now.
    fn stalls(
        &self,
        parts: &HashMap<TopicPartition, Arc<crate::runtime::acks::PartitionAcks>>,
    ) -> Vec<Stall> {
        let timeout = self.config().stall_timeout;
        let now = Instant::now();
        let watch = self.inner.watch.lock();
        let mut out: Vec<Stall> = watch
            .seen
            .iter()
            .filter(|(tp, _)| parts.contains_key(*tp))
            .filter_map(|(tp, seen)| {
                let (offset, for_) = seen.stalled(now, timeout)?;
                Some((tp.clone(), seen.progress, offset, for_))
            })
            .map(|(tp, progress, offset, for_)| self.stall(&tp, &progress, offset, for_))
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    fn stall(&self, tp: &TopicPartition, p: &Progress, offset: i64, for_: Duration) -> Stall {
        let in_flight = p.oldest_unacked.is_some();
        let holder = in_flight
            .then(|| self.holder_of(tp, offset))
            .flatten()
            .map(|h| h.actor);
        Stall {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            offset,
            in_flight,
            stalled_for: Duration::from_secs(for_.as_secs()),
            holder,
        }
    }

    /// The agent and actor holding the event at `offset` of `tp`, with
    /// where the actor is suspended.
    fn holder_of(&self, tp: &TopicPartition, offset: i64) -> Option<Holder> {
        self.agents().all().into_iter().find_map(|a| {
            a.holder_of(tp, offset).map(|(actor, traceback)| Holder {
                agent: a.name().to_string(),
                actor,
                traceback,
            })
        })
    }

    /// Look at every partition now (the stall watch does this on its
    /// cadence): warn of each stall that began.
    pub(crate) fn watch_progress(&self) {
        let parts = self.context().partitions.read().clone();
        let timeout = self.config().stall_timeout;
        let begun = self
            .inner
            .watch
            .lock()
            .look(&parts, timeout, Instant::now());
        for (tp, progress, for_) in begun {
            let Some(offset) = progress.oldest_unacked else {
                tracing::warn!(
                    partition = %tp,
                    offset = progress.delivered,
                    end = progress.end,
                    stalled_for = ?for_,
                    "COMMIT OFFSET NOT ADVANCING: records wait in this partition and none has been delivered to its agents"
                );
                continue;
            };
            match self.holder_of(&tp, offset) {
                Some(h) => tracing::warn!(
                    agent = %h.agent,
                    actor = %h.actor,
                    partition = %tp,
                    offset,
                    stalled_for = ?for_,
                    traceback = %h.traceback,
                    "COMMIT OFFSET NOT ADVANCING: the agent has not finished this event"
                ),
                None => tracing::warn!(
                    partition = %tp,
                    offset,
                    stalled_for = ?for_,
                    "COMMIT OFFSET NOT ADVANCING: this event is not finished; no actor holds it (its outputs are not delivered yet, or it waits in a queue)"
                ),
            }
        }
    }
}

fn describe(s: &Stall) -> String {
    let what = if s.in_flight {
        match &s.holder {
            Some(actor) => format!("event at offset {} held by {actor}", s.offset),
            None => format!(
                "event at offset {} waiting for its outputs or in a queue",
                s.offset
            ),
        }
    } else {
        format!("records from offset {} not delivered", s.offset)
    };
    format!(
        "partition {}[{}] stalled for {} s: {what}",
        s.topic,
        s.partition,
        s.stalled_for.as_secs()
    )
}

/// Run the stall watch of `app` until `stop`: a look every quarter of
/// `stall_timeout`, and at least once a second.
pub(crate) fn start_watch(app: &App, stop: CancellationToken) -> JoinHandle<()> {
    let every =
        (app.config().stall_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let app: Weak<AppInner> = Arc::downgrade(&app.inner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(inner) = app.upgrade() else { return };
            App { inner }.watch_progress();
        }
    })
}
