//! The events an actor holds (the current one, a batch, those waiting for a
//! manual ack) and what becomes of them: acked when the function is done
//! with them, failed, or given back to the queue unacked when it crashes.

use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::rpc::server::ReplyAddr;
use crate::runtime::acks::{Lease, Message};
use crate::transport::{DeliveryFuture, DeliveryGroup};

use super::acker::{ack_when_delivered, Chain, Reported, Waiting, CHAIN_MAX};
use super::actor::ActorCtx;
use super::timing::Timing;
use crate::trace_context::EventTrace;

/// An event an actor holds: taken from the queue, not acked yet.
pub(super) struct Current {
    pub(super) lease: Lease,
    pub(super) reply: Option<ReplyAddr>,
    /// Deliveries of the replies and sink records produced for this event:
    /// the event is acked when they are all delivered.
    pub(super) pending: Vec<DeliveryFuture>,
    /// The outputs whose deliveries the transport reports (it acks the
    /// event once they are all delivered, with no future each).
    pub(super) group: Option<std::sync::Arc<DeliveryGroup>>,
    /// Its outputs went to the actor's [`Chain`] (then `group` is none).
    pub(super) in_chain: bool,
    /// When its processing started, if it is timed.
    pub(super) timing: Timing,
    /// The event's trace context, once something needed it.
    pub(super) trace: Option<Box<EventTrace>>,
    /// The event's span (disabled unless `faust::event` is at DEBUG).
    pub(super) span: tracing::Span,
}

impl Current {
    /// A held event, with its span and, if the span is recorded, its trace.
    pub(super) fn new(
        lease: Lease,
        reply: Option<ReplyAddr>,
        span: tracing::Span,
        trace: Option<Box<EventTrace>>,
        timing: Timing,
    ) -> Self {
        Self {
            lease,
            reply,
            pending: Vec::new(),
            group: None,
            in_chain: false,
            trace,
            span,
            timing,
        }
    }

    /// The trace context its outputs carry: the event's, if its record
    /// came with a `traceparent` or something (its recorded span, the
    /// function's `trace_context()`) made one; else none, so that an
    /// untraced event's outputs cost no header.
    pub(super) fn output_trace(&mut self) -> Option<&EventTrace> {
        if self.trace.is_none() {
            self.trace = EventTrace::of_traced_record(self.lease.message().headers()).map(Box::new);
        }
        self.trace.as_deref()
    }

    /// The event's trace context, computed on first use.
    pub(super) fn trace(&mut self) -> &EventTrace {
        let msg = self.lease.message();
        self.trace
            .get_or_insert_with(|| Box::new(EventTrace::of_record(msg.headers())))
    }
}

/// The events an actor holds.
#[derive(Default)]
pub(super) struct Held {
    /// The event being processed (read one at a time).
    pub(super) current: Option<Current>,
    /// The batch being processed (read with `take_batch`), in the order read.
    pub(super) batch: Vec<Current>,
    /// Events read with acks off, waiting for the function's ack.
    pub(super) unacked: Vec<Current>,
    /// Finished events whose outputs' deliveries are reported together.
    pub(super) chain: Option<Chain>,
}

/// Which held event a produced value answers.
#[derive(Clone, Copy)]
pub(super) enum Target {
    /// The current event (none while a batch is held).
    Current,
    /// Event `i` of the batch.
    Batch(usize),
}

impl ActorCtx {
    /// Turn automatic acks off (`Stream::noack`): events the function moves
    /// past are kept until [`ack_message`](Self::ack_message) or
    /// [`ack_current`](Self::ack_current).
    pub(crate) fn set_noack(&self) {
        self.noack.store(true, Ordering::Relaxed);
    }

    /// The function is done with the current event or batch (it asks for
    /// the next one, acks, or ended): ack them, or with acks off, keep them
    /// for the function's ack.
    pub(crate) fn finish_current(&self) {
        let mut held = self.lock();
        if held.batch.is_empty() && !self.noack.load(Ordering::Relaxed) {
            // One event at a time, acks on: the common case.
            let Some(cur) = held.current.take() else {
                return;
            };
            drop(held);
            self.ack(cur);
            return;
        }
        self.finish_held(held);
    }

    /// [`finish_current`](Self::finish_current) with a batch, or acks off.
    #[cold]
    fn finish_held(&self, mut held: crate::sync::MutexGuard<'_, Held>) {
        let (cur, batch) = {
            if self.noack.load(Ordering::Relaxed) {
                let Held {
                    current,
                    batch,
                    unacked,
                    ..
                } = &mut *held;
                unacked.extend(current.take());
                unacked.append(batch);
                return;
            }
            (held.current.take(), std::mem::take(&mut held.batch))
        };
        if let Some(cur) = cur {
            self.ack(cur);
        }
        if let Some(first) = batch.first() {
            first
                .timing
                .finish_batch(self.agent.stats(), self.shard(), batch.len());
        }
        for cur in batch {
            self.ack(cur);
        }
    }

    /// Ack the current event or batch now, even with acks off.
    pub(crate) fn ack_current(&self) {
        let (cur, batch) = {
            let mut held = self.lock();
            (held.current.take(), std::mem::take(&mut held.batch))
        };
        for cur in cur.into_iter().chain(batch) {
            self.ack(cur);
        }
    }

    /// Ack the held event of `msg`; false if this actor does not hold it.
    pub(crate) fn ack_message(&self, msg: &Message) -> bool {
        let found = {
            let mut held = self.lock();
            let is = |c: &Current| std::ptr::eq(&**c.lease.message(), msg);
            if held.current.as_ref().is_some_and(is) {
                held.current.take()
            } else if let Some(i) = held.unacked.iter().position(is) {
                Some(held.unacked.remove(i))
            } else {
                let i = held.batch.iter().position(is);
                i.map(|i| held.batch.remove(i))
            }
        };
        match found {
            Some(cur) => {
                self.ack(cur);
                true
            }
            None => false,
        }
    }

    /// Ack one event, at once or once its outputs are delivered.
    #[inline]
    fn ack(&self, cur: Current) {
        cur.timing.finish(self.agent.stats(), self.shard());
        if cur.in_chain {
            self.ack_in_chain(cur);
            return;
        }
        if cur.pending.is_empty() {
            match cur.group {
                None => self.agent.event_done(cur.lease.message(), None),
                Some(group) => self.reported().ack_when_delivered(
                    cur.lease,
                    group,
                    self.agent.context().ack_tasks.token(),
                ),
            }
            return;
        }
        self.ack_when_delivered(cur.lease, cur.pending, cur.group, None);
    }

    /// Ack the event of `lease` once `pending`, `group` and `chain` say its
    /// outputs are delivered; the actor goes on.
    fn ack_when_delivered(
        &self,
        lease: Lease,
        pending: Vec<DeliveryFuture>,
        group: Option<std::sync::Arc<DeliveryGroup>>,
        chain: Option<oneshot::Receiver<crate::error::Result<()>>>,
    ) {
        let acker = self.acker.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(ack_when_delivered(
                self.agent.clone(),
                rx,
                self.unacked.clone(),
            ));
            tx
        });
        let waiting = Waiting {
            lease,
            pending,
            group,
            chain,
            _stop_waits: self.agent.context().ack_tasks.token(),
        };
        self.unacked.count.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError(waiting)) = acker.send(waiting) {
            self.unacked.done(1);
            // The acker is gone (its runtime is shutting down): nothing
            // will deliver the outputs, so the event stays unacked.
            waiting.lease.abandon();
        }
    }

    /// A finished event whose outputs are in the actor's chain joins its
    /// finished events; the chain is closed if it is due.
    fn ack_in_chain(&self, cur: Current) {
        let Current { lease, pending, .. } = cur;
        let (due, waits) = {
            let mut held = self.lock();
            let Some(chain) = held.chain.as_mut() else {
                // Never: a member keeps its chain open.
                drop(held);
                tracing::error!("an event's delivery chain is gone: it stays unacked");
                lease.abandon();
                return;
            };
            chain.members_held -= 1;
            let waits = if pending.is_empty() {
                chain.leases.push(lease);
                self.unacked.count.fetch_add(1, Ordering::AcqRel);
                None
            } else {
                // The producer made some outputs wait: the event waits for
                // those and for the chain.
                let (tx, rx) = oneshot::channel();
                chain.listeners.push(tx);
                Some((lease, pending, rx))
            };
            let due = chain.closable() && (chain.yielded || chain.leases.len() >= CHAIN_MAX);
            (due.then(|| held.chain.take()).flatten(), waits)
        };
        if let Some((lease, pending, rx)) = waits {
            self.ack_when_delivered(lease, pending, None, Some(rx));
        }
        if let Some(chain) = due {
            self.reported().ack_chain(chain);
        }
    }

    /// The actor is about to wait: close its chain now, or, if the event
    /// it is processing has outputs in it, once that event is finished.
    pub(crate) fn close_chain(&self) {
        if !self.chains {
            // Never has one: no lock on each wait.
            return;
        }
        let chain = {
            let mut held = self.lock();
            match held.chain.as_mut() {
                None => return,
                Some(chain) if !chain.closable() => {
                    chain.yielded = true;
                    return;
                }
                Some(_) => held.chain.take(),
            }
        };
        if let Some(chain) = chain {
            self.reported().ack_chain(chain);
        }
    }

    /// Close `chain` after its held members were taken out of the actor
    /// (they leave it unfinished).
    fn close_taken_chain(&self, chain: Option<Chain>) {
        if let Some(mut chain) = chain {
            chain.members_held = 0;
            self.reported().ack_chain(chain);
        }
    }

    /// What acks this actor's events whose deliveries are reported.
    fn reported(&self) -> &std::sync::Arc<Reported> {
        self.reported.get_or_init(|| {
            std::sync::Arc::new(Reported {
                agent: self.agent.clone(),
                unacked: self.unacked.clone(),
                runtime: tokio::runtime::Handle::try_current().ok(),
            })
        })
    }

    /// Whether it holds the event at `offset` of `tp`.
    pub(crate) fn holds(&self, tp: &crate::record::TopicPartition, offset: i64) -> bool {
        let held = self.lock();
        let is = |c: &Current| {
            let m = c.lease.message();
            m.offset() == offset && m.partition() == tp.partition && m.topic() == &*tp.topic
        };
        held.current.as_ref().is_some_and(is)
            || held.batch.iter().any(is)
            || held.unacked.iter().any(is)
    }

    /// Drop every held event without acking it (aborted actor).
    pub(crate) fn abandon_current(&self) {
        let held = std::mem::take(&mut *self.lock());
        let Held {
            current,
            batch,
            unacked,
            chain,
        } = held;
        for cur in current.into_iter().chain(batch).chain(unacked) {
            cur.lease.abandon();
        }
        // Its finished events are acked once their outputs are delivered.
        self.close_taken_chain(chain);
    }

    /// The function crashed: the current event fails as it always did
    /// (reported, answered with the error, dead-lettered, acked), unless
    /// acks are the function's; the batch being processed and the events
    /// waiting for a manual ack go back to the front of the queue, unacked,
    /// for the actor that takes over (or, if none does, to be delivered
    /// again after a restart or rebalance: they are never committed).
    pub(crate) async fn crashed(&self, err: &Error) {
        let noack = self.noack.load(Ordering::Relaxed);
        let Held {
            current,
            batch,
            unacked,
            chain,
        } = std::mem::take(&mut *self.lock());
        self.close_taken_chain(chain);
        // In the order they were read: those waiting for an ack, then the
        // batch or the current event.
        let mut back: Vec<Lease> = Vec::with_capacity(batch.len() + unacked.len() + 1);
        back.extend(unacked.into_iter().chain(batch).map(|c| c.lease));
        match current {
            Some(cur) if !noack => {
                self.fail_event(cur.lease, cur.reply, cur.trace, err).await;
            }
            Some(cur) => {
                self.agent.report_error(err).await;
                back.push(cur.lease);
            }
            None => self.agent.report_error(err).await,
        }
        self.give_back(back);
    }

    /// The function returned: its current event or batch is acked; events
    /// it left without an ack (acks off) go back to the queue, unacked.
    pub(crate) fn finished(&self) {
        self.finish_current();
        let (unacked, chain) = {
            let mut held = self.lock();
            (std::mem::take(&mut held.unacked), held.chain.take())
        };
        self.close_taken_chain(chain);
        self.give_back(unacked.into_iter().map(|c| c.lease).collect());
    }

    /// Put events back at the front of the queue, unacked.
    pub(super) fn give_back(&self, mut leases: Vec<Lease>) {
        if leases.is_empty() {
            return;
        }
        for lease in &mut leases {
            lease.release();
        }
        if self.agent.inbox().is_some() {
            // A channel's values were handed over, not encoded: nothing can
            // read them again (a channel keeps nothing, as at a stop).
            tracing::warn!(
                agent = %self.agent.name(),
                values = leases.len(),
                "unfinished values of a channel are lost"
            );
            return;
        }
        tracing::warn!(
            agent = %self.agent.name(),
            events = leases.len(),
            "unfinished events go back to the queue, unacked"
        );
        self.queue.give_back(leases);
    }
}

impl Held {
    pub(super) fn target_mut(&mut self, target: Target) -> Option<&mut Current> {
        match target {
            Target::Current => self.current.as_mut(),
            Target::Batch(i) => self.batch.get_mut(i),
        }
    }
}

impl Drop for ActorCtx {
    fn drop(&mut self) {
        // Events read with acks off and never acked stay unacked (a stream
        // dropped outside an actor); dropping a lease would ack it.
        let (unacked, chain) = {
            let mut held = self.lock();
            (std::mem::take(&mut held.unacked), held.chain.take())
        };
        for cur in unacked {
            cur.lease.abandon();
        }
        self.close_taken_chain(chain);
    }
}
