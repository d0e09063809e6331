//! The stream an actor reads its events from, the events themselves, and
//! [`Yield`], through which a value-producing agent answers them.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::codec::Value;
use crate::error::Result;
use crate::record::TopicPartition;
use crate::runtime::acks::MessageRef;

use super::actor::ActorCtx;
pub use super::event::Event;

/// The events of one actor, decoded into `T`.
///
/// Reading the next event acks the previous one; dropping the stream (or the
/// actor ending) acks the last one. An event that produced records is acked
/// once they are delivered. A message that does not decode is
/// reported to the agent's `on_error` with its topic, partition and offset,
/// sent to the dead-letter topic if the app has one, acked and skipped: it
/// never crashes the actor and is never silently lost.
///
/// The stream ends (`None`) when the actor is cancelled or stopped.
pub struct Stream<T> {
    ctx: Arc<ActorCtx>,
    pending: Option<BoxFuture<'static, Option<Event<T>>>>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Value> Stream<T> {
    pub(crate) fn new(ctx: Arc<ActorCtx>) -> Self {
        Self {
            ctx,
            pending: None,
            _t: PhantomData,
        }
    }

    /// The next value, or `None` when the actor is stopping.
    pub async fn next(&mut self) -> Option<T> {
        self.next_event().await.map(|e| e.value)
    }

    /// The next event (value plus message), or `None` when the actor is stopping.
    pub async fn next_event(&mut self) -> Option<Event<T>> {
        if let Some(fut) = self.pending.take() {
            return fut.await;
        }
        self.ctx.clone().next_event::<T>().await
    }

    /// The message currently being processed by this actor, if any.
    pub fn current_message(&self) -> Option<MessageRef> {
        self.ctx.current_message()
    }

    /// Ack the current event now instead of when the next one is read (once
    /// the records it produced are delivered).
    pub fn ack(&self) {
        self.ctx.finish_current();
    }

    /// Which of the agent's actors reads this stream (`None` without concurrency).
    pub fn concurrency_index(&self) -> Option<usize> {
        self.ctx.index()
    }

    /// The topic partition this stream is limited to, for isolated-partition
    /// agents (Faust's `active_partitions`, one here).
    pub fn active_partition(&self) -> Option<TopicPartition> {
        self.ctx.partition().cloned()
    }

    /// The agent this stream belongs to.
    pub fn agent(&self) -> &crate::agent::Agent {
        self.ctx.agent()
    }
}

impl<T: Value> futures::Stream for Stream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.pending.is_none() {
            let ctx = self.ctx.clone();
            self.pending = Some(ctx.next_event::<T>().boxed());
        }
        let fut = self.pending.as_mut().expect("set above");
        match fut.poll_unpin(cx) {
            Poll::Ready(ev) => {
                self.pending = None;
                Poll::Ready(ev.map(|e| e.value))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stream({})", self.ctx.label())
    }
}

/// Where a value-producing agent puts its values: Faust's `yield`.
///
/// Each value answers the event being processed (if it was a request) and
/// goes to every sink in order; [`Yield::send`] returns when the records
/// are queued with the producer and the callbacks are done (the event is
/// acked once its records are delivered). Values produced when no event is
/// current go to the sinks only, and `send` then waits for their delivery.
pub struct Yield<R> {
    ctx: Arc<ActorCtx>,
    _r: PhantomData<fn(R)>,
}

impl<R: Value> Yield<R> {
    pub(crate) fn new(ctx: Arc<ActorCtx>) -> Self {
        Self {
            ctx,
            _r: PhantomData,
        }
    }

    /// Produce one value. Agent and topic sinks key its records with the
    /// current event's key.
    pub async fn send(&self, value: R) -> Result<()> {
        self.ctx.emit(value).await
    }

    /// Produce one value whose sink records carry `key`, encoded with the
    /// agent's key codec (raw by default: a `String` or bytes), instead of
    /// the current event's key. The reply to a request keeps the request's
    /// key.
    pub async fn send_keyed<K: serde::Serialize + ?Sized>(&self, key: &K, value: R) -> Result<()> {
        let key = self.ctx.agent().key_codec().encode_bytes(key)?;
        self.ctx.emit_keyed(value, Some(key)).await
    }
}

impl<R> Clone for Yield<R> {
    fn clone(&self) -> Self {
        Self {
            ctx: self.ctx.clone(),
            _r: PhantomData,
        }
    }
}

impl<R> fmt::Debug for Yield<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Yield({})", self.ctx.label())
    }
}
