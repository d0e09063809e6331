//! Actors: one running instance of an agent function, with the state it
//! shares with its [`Stream`](super::Stream) and [`Yield`](super::Yield):
//! the events it holds (the current one, a batch, or those waiting for a
//! manual ack), their outputs, and their acks.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use await_tree::InstrumentAwait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::codec::Value;
use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::rpc::server::{self, ReplyAddr, Request};
use crate::runtime::acks::{Lease, Message, MessageRef};
use crate::runtime::queue::Queue;
use crate::sync::{Mutex, MutexGuard};
use crate::transport::producer::{GroupSlot, Latency};

use super::acker::{not_delivered, Chain, Reported, Unacked, Waiting, MAX_UNACKED};
use super::event::Event;
use super::held::{Current, Held, Target};
use super::sink::{SinkInput, SinkSend};
use super::timing::Sampler;
use super::trace;
use super::Agent;
use crate::trace_context::EventTrace;

/// What an actor shares between its runner, its stream and its `Yield`.
pub(crate) struct ActorCtx {
    pub(super) agent: Agent,
    index: Option<usize>,
    partition: Option<TopicPartition>,
    pub(super) queue: Queue,
    cancel: CancellationToken,
    pub(super) held: Mutex<Held>,
    /// Acks are the function's (`Stream::noack`): events read are kept
    /// until it acks them.
    pub(super) noack: AtomicBool,
    /// Acks the events whose outputs are still being delivered (started on
    /// the first such event).
    pub(super) acker: std::sync::OnceLock<mpsc::UnboundedSender<Waiting>>,
    /// Acks the events whose outputs' deliveries the transport reports
    /// (made on the first such event).
    pub(super) reported: std::sync::OnceLock<Arc<Reported>>,
    /// Events of this actor whose outputs are still being delivered.
    pub(super) unacked: Arc<Unacked>,
    /// Events taken since the cancellation token was last checked.
    since_check: std::sync::atomic::AtomicU32,
    /// An error thrown into the actor ([`throw`](Self::throw)): it ends
    /// with it, as if its function had returned it.
    thrown: Mutex<Option<Error>>,
    /// An event of this actor had a recorded span: polls enter the
    /// current event's span (checked so that polls skip the lock otherwise).
    spans: AtomicBool,
    label: String,
    /// Which events it times.
    pub(super) sampler: Sampler,
    /// Its events' outputs may share a [`Chain`](super::acker::Chain)
    /// (the transport reports deliveries to groups).
    pub(super) chains: bool,
}

/// The traceback entry of an actor waiting for its queue, built once (a
/// span name this long would otherwise be allocated on every wait).
fn waiting_span() -> await_tree::Span {
    static SPAN: std::sync::OnceLock<await_tree::Span> = std::sync::OnceLock::new();
    SPAN.get_or_init(|| "waiting for the next event".into())
        .clone()
}

/// Events an actor takes from a non-empty queue between two checks of its
/// cancellation token (a check takes a lock).
const CANCEL_CHECK_EVERY: u32 = 32;

impl ActorCtx {
    pub(crate) fn new(
        agent: Agent,
        index: Option<usize>,
        partition: Option<TopicPartition>,
        queue: Queue,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let agent_metrics = agent.context().config.metrics;
        let chains = agent.context().producer.reports_deliveries();
        let label = match (index, &partition) {
            (_, Some(tp)) => format!("Agent*: {} isolated={{{tp}}}", agent.name()),
            (Some(i), None) => format!("Agent*: {} #{i}", agent.name()),
            (None, None) => format!("Agent*: {}", agent.name()),
        };
        Arc::new(Self {
            agent,
            index,
            partition,
            queue,
            cancel,
            held: Mutex::new(Held::default()),
            noack: AtomicBool::new(false),
            acker: std::sync::OnceLock::new(),
            reported: std::sync::OnceLock::new(),
            unacked: Arc::default(),
            since_check: std::sync::atomic::AtomicU32::new(0),
            thrown: Mutex::new(None),
            spans: AtomicBool::new(false),
            label,
            sampler: Sampler::new(agent_metrics),
            chains,
        })
    }

    /// End the actor with `err` at its next read (its stream ends, and the
    /// actor crashes with `err` instead of finishing): Faust's `throw`.
    pub(crate) fn throw(&self, err: Error) {
        *self.thrown.lock() = Some(err);
        self.cancel.cancel();
    }

    /// The error thrown into the actor, if any.
    pub(crate) fn take_thrown(&self) -> Option<Error> {
        self.thrown.lock().take()
    }

    pub(crate) fn agent(&self) -> &Agent {
        &self.agent
    }
    pub(crate) fn index(&self) -> Option<usize> {
        self.index
    }
    pub(crate) fn partition(&self) -> Option<&TopicPartition> {
        self.partition.as_ref()
    }
    pub(crate) fn label(&self) -> &str {
        &self.label
    }
    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
    /// The processing-time histogram shard it writes.
    pub(super) fn shard(&self) -> usize {
        self.index.unwrap_or(0)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock()
    }

    pub(crate) fn current_message(&self) -> Option<MessageRef> {
        self.lock()
            .current
            .as_ref()
            .map(|c| c.lease.message().clone())
    }

    /// The span of the current event, if it is recorded.
    pub(super) fn event_span(&self) -> Option<tracing::Span> {
        if !self.spans.load(Ordering::Relaxed) {
            return None;
        }
        let held = self.lock();
        let span = &held.current.as_ref()?.span;
        (!span.is_disabled()).then(|| span.clone())
    }

    /// The trace context of the held event `target` (computed on first use).
    pub(super) fn trace_of(&self, target: Target) -> Option<EventTrace> {
        self.lock().target_mut(target).map(|c| c.trace().clone())
    }

    /// The trace context the outputs of the held event `target` carry:
    /// `None` if no such event is held, `Some(None)` if the event is not
    /// traced (see `Current::output_trace`).
    pub(super) fn output_trace_of(&self, target: Target) -> Option<Option<EventTrace>> {
        self.lock()
            .target_mut(target)
            .map(|c| c.output_trace().cloned())
    }

    /// Wait for the next message this actor may process; with it, whether
    /// the queue was empty (the actor waited for it).
    async fn recv(&self) -> Option<(Lease, bool)> {
        loop {
            let taken = self.since_check.fetch_add(1, Ordering::Relaxed);
            if taken % CANCEL_CHECK_EVERY == 0 && self.cancel.is_cancelled() {
                return None;
            }
            let (mut lease, waited) = match self.queue.try_next() {
                Some(d) => (d, false),
                None => {
                    self.close_chain();
                    tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return None,
                    d = self.queue.next().instrument_await(waiting_span()) => (d?, true),
                    }
                }
            };
            if lease.start() {
                return Some((lease, waited));
            }
            // The partition was revoked while the message sat in the queue.
        }
    }

    /// [`recv`](Self::recv), giving up (`None`) when `deadline` fires (one
    /// timer for a whole batch, registered on the first wait).
    async fn recv_until(&self, mut deadline: Pin<&mut tokio::time::Sleep>) -> Option<Lease> {
        loop {
            let mut lease = match self.queue.try_next() {
                Some(d) => d,
                None => {
                    self.close_chain();
                    tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return None,
                    d = self.queue.next().instrument_await("waiting for more events of the batch") => d?,
                    _ = deadline.as_mut() => return None,
                    }
                }
            };
            if lease.start() {
                return Some(lease);
            }
        }
    }

    /// Wait while [`MAX_UNACKED`] events of this actor wait for their
    /// outputs' delivery (each delivery ends within the transport's
    /// delivery deadline). Returns false if the actor is cancelled meanwhile.
    pub(super) async fn wait_for_deliveries(&self) -> bool {
        while self.unacked.count.load(Ordering::Acquire) >= MAX_UNACKED {
            let delivered = self.unacked.below.notified();
            tokio::pin!(delivered);
            delivered.as_mut().enable();
            if self.unacked.count.load(Ordering::Acquire) < MAX_UNACKED {
                break;
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return false,
                _ = delivered.instrument_await("waiting for the delivery of earlier outputs") => {}
            }
        }
        true
    }

    /// Read, decode and make current the next event.
    pub(crate) async fn next_event<T: Value>(self: Arc<Self>) -> Option<Event<T>> {
        if self.spans.load(Ordering::Relaxed) {
            trace::leave_event(&self);
        }
        self.finish_current();
        if !self.wait_for_deliveries().await {
            return None;
        }
        loop {
            let (mut lease, waited) = self.recv().await?;
            let msg = lease.message().clone();
            match self.value_of::<T>(&mut lease, &msg) {
                (Ok(value), reply) => {
                    self.agent.stats().record_in();
                    let timing = self.sampler.start(waited);
                    let (span, trace) = trace::event_span(self.agent.name(), &msg);
                    if !span.is_disabled() {
                        self.spans.store(true, Ordering::Relaxed);
                        trace::enter_event(&self, &span);
                    }
                    self.lock().current = Some(Current::new(lease, reply, span, trace, timing));
                    return Some(Event::new(value, msg, self.agent.key_codec().clone()));
                }
                (Err(err), reply) => {
                    self.agent.stats().record_undecodable();
                    self.fail_event(lease, reply, None, &err).await
                }
            }
        }
    }

    /// Read and decode the next event of the batch being taken (waiting
    /// until `deadline` fires, if given) and add it to the batch.
    pub(super) async fn next_batch_event<T: Value>(
        &self,
        mut deadline: Option<Pin<&mut tokio::time::Sleep>>,
    ) -> Option<Event<T>> {
        loop {
            let mut lease = match deadline.as_mut() {
                None => self.recv().await?.0,
                Some(at) => self.recv_until(at.as_mut()).await?,
            };
            let msg = lease.message().clone();
            match self.value_of::<T>(&mut lease, &msg) {
                (Ok(value), reply) => {
                    self.agent.stats().record_in();
                    let mut held = self.lock();
                    // A batch is timed as a whole, from its first event.
                    let timing = if held.batch.is_empty() {
                        self.sampler.start_batch()
                    } else {
                        Default::default()
                    };
                    // No span: the batch function runs for all of them.
                    let current = Current::new(lease, reply, tracing::Span::none(), None, timing);
                    held.batch.push(current);
                    drop(held);
                    return Some(Event::new(value, msg, self.agent.key_codec().clone()));
                }
                (Err(err), reply) => {
                    self.agent.stats().record_undecodable();
                    self.fail_event(lease, reply, None, &err).await
                }
            }
        }
    }

    /// The value of a message (decoded, or as sent through a channel) and
    /// its reply address.
    fn value_of<T: Value>(
        &self,
        lease: &mut Lease,
        msg: &Message,
    ) -> (Result<T>, Option<ReplyAddr>) {
        match lease.take_payload() {
            // Sent through a channel: the value itself.
            Some(payload) => (
                payload.downcast::<T>().map(|v| *v).map_err(|_| {
                    Error::config(format!(
                        "channel `{}` delivered a value that is not a `{}`",
                        msg.topic(),
                        std::any::type_name::<T>()
                    ))
                }),
                server::reply_address(msg.headers()),
            ),
            None => self.decode::<T>(msg),
        }
    }

    /// The decoded value and the reply address; the address is known even
    /// when the value does not decode, so the asker gets an error reply.
    fn decode<T: Value>(&self, msg: &Message) -> (Result<T>, Option<ReplyAddr>) {
        let codec = self.agent.value_codec();
        let raw: &[u8] = msg.value().map(|b| &b[..]).unwrap_or(b"null");
        let located = |err: Error| match err {
            Error::DecodeValue { codec, reason } => Error::Decode {
                topic: msg.topic().to_string(),
                partition: msg.partition(),
                offset: msg.offset(),
                codec,
                reason,
            },
            other => other,
        };
        match server::read_request(raw, msg.headers()) {
            // The envelope is JSON whatever the agent's codec (Faust's format).
            Request::Envelope(value, reply) => (
                serde_json::from_value(value).map_err(|e| located(Error::from(e))),
                Some(reply),
            ),
            Request::Plain(raw, reply) => (codec.decode(raw).map_err(located), reply),
            Request::Malformed(err, reply) => (Err(located(err)), reply),
        }
    }

    /// Produce a value for the current event: reply, then every sink, each
    /// queued in order; the event is acked when all of them are delivered.
    pub(crate) async fn emit<R: Value>(&self, value: R) -> Result<()> {
        self.emit_keyed(value, None).await
    }

    /// [`emit`](Self::emit) with the sinks' records keyed by `key` (already
    /// encoded) instead of the current event's key.
    pub(crate) async fn emit_keyed<R: Value>(&self, value: R, key: Option<Bytes>) -> Result<()> {
        self.emit_to(Target::Current, value, key).await
    }

    /// Produce a value for the held event `target`: it answers that event
    /// and its sink records carry that event's key (or `key`); they are
    /// attached to it (a value with no event to answer waits for its
    /// deliveries here).
    pub(super) async fn emit_to<R: Value>(
        &self,
        target: Target,
        value: R,
        key: Option<Bytes>,
    ) -> Result<()> {
        self.agent.stats().record_out();
        let sinks = self.agent.sinks();
        // The trace context only if a record is made: a value that only
        // goes to callbacks costs no ids.
        let records = sinks.iter().any(|s| s.key.is_some());
        // The event's group of reported deliveries, if it has one already;
        // else one is made at the first output the transport reports.
        let group = GroupSlot::new();
        let (reply, source_key, source, trace) = {
            let mut held = self.lock();
            // The current event of an actor reading one event at a time
            // with acks on shares the actor's chain.
            if self.chains
                && matches!(target, Target::Current)
                && held.batch.is_empty()
                && !self.noack.load(Ordering::Relaxed)
            {
                let Held { current, chain, .. } = &mut *held;
                // Only if it produces records (a value that only goes to
                // callbacks is acked at once, as before).
                let produces = |c: &Current| records || c.reply.is_some();
                if let Some(c) = current
                    .as_mut()
                    .filter(|c| c.group.is_none() && produces(c))
                {
                    let chain = chain
                        .get_or_insert_with(|| Chain::new(self.agent.context().ack_tasks.token()));
                    if !c.in_chain {
                        c.in_chain = true;
                        chain.members_held += 1;
                    }
                    let _ = group.set(chain.group.clone());
                }
            }
            match held.target_mut(target) {
                Some(c) => {
                    if let Some(g) = &c.group {
                        let _ = group.set(g.clone());
                    }
                    let trace = if records || c.reply.is_some() {
                        c.output_trace().cloned()
                    } else {
                        None
                    };
                    let msg = c.lease.message();
                    (
                        c.reply.clone(),
                        msg.key().cloned(),
                        Some((msg.partition(), msg.offset())),
                        trace,
                    )
                }
                None => (None, None, None, None),
            }
        };
        // A group the event had already is closed with the event, never here.
        let inherited = group.get().is_some();
        let mut pending = Vec::new();
        let ctx = self.agent.context();
        if let Some(addr) = reply {
            let reply = server::reply_record(
                &addr,
                source_key.as_ref(),
                Ok(server::reply_value(&value)?),
                trace.as_ref(),
            );
            pending.extend(
                ctx.producer
                    .enqueue_reported(reply, Latency::Immediate, &group)
                    .await?,
            );
        }
        let input = SinkInput {
            value: &value as &(dyn Any + Send + Sync),
            key: key.as_ref().or(source_key.as_ref()),
            key_codec: self.agent.key_codec(),
            source,
            trace: trace.as_ref(),
            group: &group,
        };
        for sink in sinks.iter() {
            // Most sinks finish at once: only one that waits gets a span in
            // the actor's traceback.
            let queued = match sink.send(ctx, input) {
                SinkSend::Now(queued) => queued?,
                SinkSend::Later(mut sending) => match futures::poll!(&mut sending) {
                    std::task::Poll::Ready(queued) => queued?,
                    std::task::Poll::Pending => sending.instrument_await(sink.span()).await?,
                },
            };
            pending.extend(queued);
        }
        let group = group.into_inner();
        if pending.is_empty() && group.is_none() {
            return Ok(());
        }
        let unattached = {
            let mut held = self.lock();
            match held.target_mut(target) {
                Some(c) => {
                    if c.group.is_none() && !c.in_chain {
                        c.group = group;
                    }
                    if c.pending.is_empty() {
                        c.pending = pending;
                    } else {
                        c.pending.append(&mut pending);
                    }
                    None
                }
                None => Some((pending, group)),
            }
        };
        // No event to attach them to: wait for the deliveries here.
        if let Some((pending, group)) = unattached {
            for d in pending {
                d.await?;
            }
            if let Some(group) = group.filter(|_| !inherited) {
                group.close_and_wait().await?;
            }
        }
        Ok(())
    }

    /// The event failed (decode error, handler error or crash): report it,
    /// answer its asker with the error, dead-letter it, then ack it.
    pub(super) async fn fail_event(
        &self,
        lease: Lease,
        reply: Option<ReplyAddr>,
        trace: Option<Box<EventTrace>>,
        err: &Error,
    ) {
        let msg = lease.message();
        tracing::error!(
            agent = %self.agent.name(),
            topic = %msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            error = %err,
            "event failed"
        );
        self.agent.report_error(err).await;
        self.settle_failed(lease, reply, trace, err).await;
    }

    /// Every event of the batch failed (the batch function returned an
    /// error, or not one result per event): reported once, then each is
    /// answered with the error, dead-lettered and acked.
    pub(super) async fn fail_batch(&self, err: &Error) {
        let batch = std::mem::take(&mut self.lock().batch);
        tracing::error!(agent = %self.agent.name(), events = batch.len(), error = %err, "batch failed");
        self.agent.report_error(err).await;
        for cur in batch {
            self.settle_failed(cur.lease, cur.reply, cur.trace, err)
                .await;
        }
    }

    /// Answer a failed event's asker with the error, dead-letter the event,
    /// then ack it.
    async fn settle_failed(
        &self,
        lease: Lease,
        reply: Option<ReplyAddr>,
        trace: Option<Box<EventTrace>>,
        err: &Error,
    ) {
        let msg = lease.message().clone();
        let ctx = self.agent.context();
        // The error reply and the dead-letter copy are outputs of the
        // event like any other: it is acked only once both are delivered.
        let mut undelivered = None;
        if let Some(addr) = reply {
            // Like a value's reply: in the event's trace, if it has one.
            let trace = trace.or_else(|| EventTrace::of_traced_record(msg.headers()).map(Box::new));
            let reply = server::reply_record(
                &addr,
                msg.key(),
                Err(server::error_message(err)),
                trace.as_deref(),
            );
            let sent = match ctx.producer.enqueue(reply, Latency::Immediate).await {
                Ok(Some(delivery)) => delivery.await.map(|_| ()),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            undelivered = sent.err();
        }
        if undelivered.is_none() {
            match ctx.dead_letter(&msg, err).await {
                Ok(true) => self.agent.stats().record_dead_lettered(),
                Ok(false) => {}
                Err(e) => undelivered = Some(e),
            }
        }
        if let Some(e) = undelivered {
            not_delivered(&self.agent, lease, &e).await;
            return;
        }
        self.agent.event_done(&msg, Some(err));
        drop(lease);
    }

    /// The current event (if any) failed: the function returned an error
    /// for it, or the actor crashed while it was current.
    pub(crate) async fn fail_current(&self, err: &Error) {
        let cur = self.lock().current.take();
        match cur {
            Some(cur) => {
                cur.timing.finish(self.agent.stats(), self.shard());
                self.fail_event(cur.lease, cur.reply, cur.trace, err).await
            }
            None => self.agent.report_error(err).await,
        }
    }
}

impl fmt::Debug for ActorCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}
