//! Acking events whose outputs are still being delivered: one task per
//! actor waits for the deliveries and acks (or abandons) each event, and
//! bounds how many events an actor may leave waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::Error;
use crate::runtime::acks::Lease;
use crate::transport::DeliveryFuture;

use super::Agent;

/// An event whose outputs are being delivered.
pub(super) struct Waiting {
    pub(super) lease: Lease,
    pub(super) pending: Vec<DeliveryFuture>,
    /// Makes `App::stop` wait for this event's ack.
    pub(super) _stop_waits: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl Waiting {
    /// Wait for the outputs, then ack the event (errors are reported).
    async fn ack(self, agent: &Agent) {
        let Waiting {
            lease,
            mut pending,
            _stop_waits,
        } = self;
        // One output (the common case) is awaited without `join_all`'s allocation.
        let failed = if pending.len() == 1 {
            pending.swap_remove(0).await.err()
        } else {
            futures::future::join_all(pending)
                .await
                .into_iter()
                .find_map(|r| r.err())
        };
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
    let err = Error::Undelivered {
        topic: msg.topic().to_string(),
        partition: msg.partition(),
        offset: msg.offset(),
        reason: err.to_string(),
    };
    agent.report_error(&err).await;
    agent.event_done(&msg, Some(&err));
    agent.context().crash(err);
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
