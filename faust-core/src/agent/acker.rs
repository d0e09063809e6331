//! Acking events whose outputs are still being delivered: one task per
//! actor waits for the deliveries and acks (or abandons) each event, and
//! bounds how many events an actor may leave waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::Error;
use crate::runtime::acks::{Lease, MessageRef};
use crate::transport::{DeliveryFuture, DeliveryGroup};

use super::Agent;

/// An event whose outputs are being delivered.
pub(super) struct Waiting {
    pub(super) lease: Lease,
    pub(super) pending: Vec<DeliveryFuture>,
    /// Outputs whose deliveries the transport reports, if any.
    pub(super) group: Option<Arc<DeliveryGroup>>,
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
    let err = Error::Undelivered {
        topic: msg.topic().to_string(),
        partition: msg.partition(),
        offset: msg.offset(),
        reason: err.to_string(),
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
                self.unacked.done();
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
                    self.unacked.done();
                    drop(stop_waits);
                };
                match runtime {
                    Some(runtime) => drop(runtime.spawn(report)),
                    None => {
                        drop(report);
                        tracing::error!(
                            "an output was not delivered and no runtime is left to report it"
                        );
                    }
                }
            }
        }
    }
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
            Some(()) = waiting.next(), if !waiting.is_empty() => unacked.done(),
        }
    }
    while waiting.next().await.is_some() {
        unacked.done();
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
    /// One event acked.
    pub(super) fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == MAX_UNACKED {
            self.below.notify_one();
        }
    }
}
