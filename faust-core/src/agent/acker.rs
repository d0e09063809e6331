//! Acking events whose outputs are still being delivered: the transport's
//! last report to an event's group (or to the [`Chain`] of events the
//! actor processed in a row) acks it; for delivery futures, one task per
//! actor waits and acks (or abandons) each event. Bounds how many events an
//! actor may leave waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::runtime::acks::{Lease, MessageRef};
use crate::transport::{DeliveryFuture, DeliveryGroup};

use super::Agent;

/// An event whose outputs are being delivered.
pub(super) struct Waiting {
    pub(super) lease: Lease,
    pub(super) pending: Vec<DeliveryFuture>,
    /// Outputs whose deliveries the transport reports, if any.
    pub(super) group: Option<Arc<DeliveryGroup>>,
    /// The outcome of the actor's [`Chain`] the event's other outputs
    /// joined, if they did.
    pub(super) chain: Option<oneshot::Receiver<Result<()>>>,
    /// Makes `App::stop` wait for this event's ack.
    pub(super) _stop_waits: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl Waiting {
    /// Wait for the outputs, then ack the event (errors are reported).
    async fn ack(self, agent: &Agent) {
        let Waiting {
            lease,
            mut pending,
            group,
            chain,
            _stop_waits,
        } = self;
        // One output (the common case) is awaited without `join_all`'s allocation.
        let mut failed = if pending.len() == 1 {
            pending.swap_remove(0).await.err()
        } else {
            futures::future::join_all(pending)
                .await
                .into_iter()
                .find_map(|r| r.err())
        };
        if let Some(group) = group {
            let reported = group.close_and_wait().await;
            failed = failed.or(reported.err());
        }
        if let Some(chain) = chain {
            let reported = chain.await.unwrap_or_else(|_| Err(chain_dropped()));
            failed = failed.or(reported.err());
        }
        match failed {
            Some(err) => not_delivered(agent, lease, &err).await,
            None => {
                agent.event_done(lease.message(), None);
                drop(lease);
            }
        }
    }
}

/// An output of the event of `lease` was not delivered (the transport
/// gave up on it at its delivery deadline): the event is never acked, so
/// its partition is never committed past it, and the app crashes, so that
/// the event is processed again wherever its partition goes next (this
/// worker restarted, or another member of the group).
pub(super) async fn not_delivered(agent: &Agent, lease: Lease, err: &Error) {
    let msg = lease.message().clone();
    lease.abandon();
    report_undelivered(agent, &msg, err).await;
}

/// The rest of [`not_delivered`], once the event's lease is abandoned.
async fn report_undelivered(agent: &Agent, msg: &MessageRef, err: &Error) {
    report_undelivered_because(agent, msg, err.to_string()).await;
}

/// [`report_undelivered`] with the reason said.
async fn report_undelivered_because(agent: &Agent, msg: &MessageRef, reason: String) {
    let err = Error::Undelivered {
        topic: msg.topic().to_string(),
        partition: msg.partition(),
        offset: msg.offset(),
        reason,
    };
    agent.report_error(&err).await;
    agent.event_done(msg, Some(&err));
    agent.context().crash(err);
}

/// What acks an actor's events whose outputs' deliveries the transport
/// reports to a [`DeliveryGroup`]: the last report acks the event, on the
/// reporting thread, with no task or future per event.
pub(super) struct Reported {
    pub(super) agent: Agent,
    pub(super) unacked: Arc<Unacked>,
    /// Where a failed delivery is reported (`report_error` and the
    /// agent's `on_error` are async).
    pub(super) runtime: Option<tokio::runtime::Handle>,
}

impl Reported {
    /// Ack the event of `lease` once `group`'s outputs are delivered.
    pub(super) fn ack_when_delivered(
        self: &Arc<Self>,
        lease: Lease,
        group: Arc<DeliveryGroup>,
        stop_waits: tokio_util::task::task_tracker::TaskTrackerToken,
    ) {
        self.unacked.count.fetch_add(1, Ordering::AcqRel);
        let this = self.clone();
        group.close(move |delivered| this.settle(lease, delivered, stop_waits));
    }

    fn settle(
        self: Arc<Self>,
        lease: Lease,
        delivered: crate::error::Result<()>,
        stop_waits: tokio_util::task::task_tracker::TaskTrackerToken,
    ) {
        match delivered {
            Ok(()) => {
                self.agent.event_done(lease.message(), None);
                drop(lease);
                self.unacked.done(1);
                drop(stop_waits);
            }
            Err(err) => {
                // Abandoned here, on the reporting thread: the event is
                // never acked even if its report below cannot run.
                let msg = lease.message().clone();
                lease.abandon();
                let runtime = self.runtime.clone();
                let report = async move {
                    report_undelivered(&self.agent, &msg, &err).await;
                    self.unacked.done(1);
                    drop(stop_waits);
                };
                spawn_report(runtime, report);
            }
        }
    }

    /// Ack the events of `chain` once its group's outputs are delivered
    /// (they are counted in [`Unacked`] already).
    pub(super) fn ack_chain(self: &Arc<Self>, chain: Chain) {
        let Chain {
            group,
            leases,
            listeners,
            stop_waits,
            ..
        } = chain;
        let this = self.clone();
        group.close(move |delivered| this.settle_chain(leases, listeners, delivered, stop_waits));
    }

    fn settle_chain(
        self: Arc<Self>,
        leases: Vec<Lease>,
        listeners: Vec<oneshot::Sender<Result<()>>>,
        delivered: Result<()>,
        stop_waits: tokio_util::task::task_tracker::TaskTrackerToken,
    ) {
        for listener in listeners {
            let _ = listener.send(delivered.clone());
        }
        let n = leases.len();
        let err = match delivered {
            Ok(()) => {
                for lease in leases {
                    self.agent.event_done(lease.message(), None);
                    drop(lease);
                }
                self.unacked.done(n);
                drop(stop_waits);
                return;
            }
            Err(err) => err,
        };
        // Which event's output failed is not known: none of them is acked
        // (so none is committed), the first is reported and the app stops.
        let messages: Vec<MessageRef> = leases
            .into_iter()
            .map(|lease| {
                let msg = lease.message().clone();
                lease.abandon();
                msg
            })
            .collect();
        let runtime = self.runtime.clone();
        let report = async move {
            let mut reason = err.to_string();
            if n > 1 {
                reason.push_str(&format!(
                    " (its delivery was reported together with the outputs of {} more events \
                     of this actor, which stay unacked too)",
                    n - 1
                ));
            }
            if let Some((first, rest)) = messages.split_first() {
                for msg in rest {
                    self.agent.event_done(msg, Some(&err));
                }
                report_undelivered_because(&self.agent, first, reason).await;
            }
            self.unacked.done(n);
            drop(stop_waits);
        };
        spawn_report(runtime, report);
    }
}

/// Run `report` (a failed delivery's report) on `runtime`.
fn spawn_report(
    runtime: Option<tokio::runtime::Handle>,
    report: impl std::future::Future<Output = ()> + Send + 'static,
) {
    match runtime {
        Some(runtime) => drop(runtime.spawn(report)),
        None => {
            drop(report);
            tracing::error!("an output was not delivered and no runtime is left to report it");
        }
    }
}

/// The most events an actor's [`Chain`] takes before it is closed.
pub(super) const CHAIN_MAX: usize = 64;

/// Events an actor finished one after another without waiting for
/// anything, whose outputs share one [`DeliveryGroup`]: the events are
/// acked together once all their outputs are delivered, which costs one
/// group (an allocation, a lock, a closure) per run of events instead of
/// one per event. The actor closes it when it is about to wait (for its
/// next event or inside its function), at [`CHAIN_MAX`] events, or when it
/// ends, and only between events: never while the event being processed
/// has outputs in it.
pub(super) struct Chain {
    pub(super) group: Arc<DeliveryGroup>,
    /// The finished events, in the order they were finished.
    pub(super) leases: Vec<Lease>,
    /// Held events with outputs in the group, not finished yet (the chain
    /// may close only when there are none).
    pub(super) members_held: usize,
    /// The actor waited while a member was held: close at the next
    /// boundary between events.
    pub(super) yielded: bool,
    /// Events whose other outputs are futures (the producer made them
    /// wait): told the chain's outcome.
    pub(super) listeners: Vec<oneshot::Sender<Result<()>>>,
    /// Makes `App::stop` wait for the chain's acks.
    pub(super) stop_waits: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl Chain {
    pub(super) fn new(stop_waits: tokio_util::task::task_tracker::TaskTrackerToken) -> Self {
        Self {
            group: DeliveryGroup::new(),
            leases: Vec::new(),
            members_held: 0,
            yielded: false,
            listeners: Vec::new(),
            stop_waits,
        }
    }

    /// Whether it may be closed now (no held event has outputs in it).
    pub(super) fn closable(&self) -> bool {
        self.members_held == 0
    }
}

/// The chain an event's outputs joined ended without a report.
fn chain_dropped() -> Error {
    Error::Broker("the transport dropped records without reporting their delivery".into())
}

/// One task per actor acks its events as their outputs are delivered, in
/// whatever order the deliveries complete; a burst of deliveries wakes it
/// once.
pub(super) async fn ack_when_delivered(
    agent: Agent,
    mut rx: mpsc::UnboundedReceiver<Waiting>,
    unacked: Arc<Unacked>,
) {
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut waiting = FuturesUnordered::new();
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Some(w) => waiting.push(w.ack(&agent)),
                None => break,
            },
            Some(()) = waiting.next(), if !waiting.is_empty() => unacked.done(1),
        }
    }
    while waiting.next().await.is_some() {
        unacked.done(1);
    }
}

/// Events an actor may have waiting for the delivery of the records they
/// produced (replies, sink records) before it waits too, taking no new
/// event: bounds the memory a fast agent with a slower producer holds
/// (the events, their outputs, the producer's queue).
pub const MAX_UNACKED: usize = 8192;

/// The count of an actor's events waiting for their outputs' delivery.
#[derive(Default)]
pub(super) struct Unacked {
    pub(super) count: std::sync::atomic::AtomicUsize,
    /// Wakes the actor once the count is below [`MAX_UNACKED`] again.
    pub(super) below: tokio::sync::Notify,
}

impl Unacked {
    /// `n` events acked.
    pub(super) fn done(&self, n: usize) {
        let before = self.count.fetch_sub(n, Ordering::AcqRel);
        if before >= MAX_UNACKED && before - n < MAX_UNACKED {
            self.below.notify_one();
        }
    }
}
