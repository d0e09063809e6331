//! The stream an actor reads its events from, the events themselves, and
//! [`Yield`], through which a value-producing agent answers them.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

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
/// Reading the next event (or batch) acks the previous one; the actor
/// ending acks the last one. An event that produced records is acked once
/// they are delivered; a partition is committed only up to its first
/// unacked event. A message that does not decode is
/// reported to the agent's `on_error` with its topic, partition and offset,
/// sent to the dead-letter topic if the app has one, acked and skipped: it
/// never crashes the actor and is never silently lost.
///
/// If the function crashes (returns an error or panics), the event current
/// at the crash fails: it is reported, answered with the error if it was a
/// request, dead-lettered and acked. A batch being processed
/// ([`take_batch`](Self::take_batch)) and events waiting for a manual ack
/// ([`noack`](Self::noack)) are not acked: they go back to the front of the
/// queue, and the actor that takes over (the restarted one) reads them
/// first. Nothing of them is committed until they are processed. (A
/// channel agent loses them instead: a channel keeps nothing to read again.)
///
/// The stream ends (`None`) when the actor is cancelled or stopped.
///
/// # Combinators
///
/// `Stream` implements `futures::Stream`. Combinators that take one item at
/// a time and finish with it before asking for the next keep acks right
/// (`map`, `filter`, `filter_map`, `then`, `enumerate`, `take_while`,
/// `inspect`). Combinators that read ahead do not: `chunks`,
/// `ready_chunks`, `buffered`, `buffer_unordered`, `for_each_concurrent`
/// and `peekable` ask for the next event before the earlier ones are
/// processed, which acks them, so a crash loses them. Batch with
/// [`take_batch`](Self::take_batch) instead.
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

    /// Ack the current event (or the batch [`take_batch`](Self::take_batch) returned
    /// last) now instead of when the next one is read, once the records it
    /// produced are delivered; with [`noack`](Self::noack) too.
    pub fn ack(&self) {
        self.ctx.ack_current();
    }

    /// Ack one event this stream handed out: the current one, one of the
    /// batch, or one kept by [`noack`](Self::noack). Returns false if the
    /// stream holds no such event (already acked, or from another stream).
    pub fn ack_event(&self, event: &Event<T>) -> bool {
        self.ctx.ack_message(event.message())
    }

    /// This stream with automatic acks off (Faust's `noack()`): moving to
    /// the next event no longer acks the previous one; each event is acked
    /// only by [`ack`](Self::ack) or [`ack_event`](Self::ack_event), and a
    /// partition is not committed past an event you never ack. If the
    /// function crashes or returns, the events it did not ack go back to
    /// the queue unacked (they are processed again).
    ///
    /// ```
    /// # use faust_core as faust;
    /// use faust::{Event, Stream};
    ///
    /// async fn store_then_ack(stream: Stream<String>) -> faust::Result<()> {
    ///     let mut stream = stream.noack();
    ///     let mut written: Vec<Event<String>> = Vec::new();
    ///     while let Some(event) = stream.next_event().await {
    ///         written.push(event);
    ///         if written.len() == 10 {
    ///             // ... flush the ten somewhere durable, then:
    ///             for event in written.drain(..) {
    ///                 stream.ack_event(&event);
    ///             }
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn noack(self) -> Self {
        self.ctx.set_noack();
        self
    }

    /// The next batch of values (Faust's `take`; named apart from
    /// `futures::StreamExt::take`, which ends a stream after `n` items): at
    /// least one, then as many as are there, up to `max` (0 counts as 1),
    /// waiting at most `within` after the first for more (the first is
    /// awaited as long as it takes). `None` when the stream ends.
    ///
    /// The batch's events are acked together when the function is done
    /// with the batch, that is when it asks for the next batch or event or
    /// returns, never before; a crash while it is processing the batch
    /// acks none of them and they are processed again (see [`Stream`]).
    /// Events that do not decode are reported and skipped, as with
    /// [`next`](Self::next).
    ///
    /// ```
    /// # use faust_core as faust;
    /// use std::time::Duration;
    /// use faust::Stream;
    ///
    /// async fn insert_rows(mut rows: Stream<String>) -> faust::Result<()> {
    ///     while let Some(batch) = rows.take_batch(100, Duration::from_secs(1)).await {
    ///         // one write of up to 100 rows; if it fails, none of them is
    ///         // committed
    ///         println!("writing {} rows", batch.len());
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn take_batch(&mut self, max: usize, within: Duration) -> Option<Vec<T>> {
        let events = self.take_batch_events(max, within).await?;
        Some(events.into_iter().map(|e| e.value).collect())
    }

    /// [`take_batch`](Self::take_batch), giving the events (value and
    /// message).
    pub async fn take_batch_events(
        &mut self,
        max: usize,
        within: Duration,
    ) -> Option<Vec<Event<T>>> {
        let first = match self.pending.take() {
            // A read the function left half done opens the batch.
            Some(fut) => Some(fut.await?),
            None => None,
        };
        self.ctx.read_batch(max, within, first).await
    }

    /// The stream's events (value and message) as a `futures::Stream`,
    /// with the acks of [`next_event`](Self::next_event).
    pub fn events(&mut self) -> Events<'_, T> {
        Events { stream: self }
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

impl<T: Value> Stream<T> {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event<T>>> {
        let fut = self
            .pending
            .get_or_insert_with(|| self.ctx.clone().next_event::<T>().boxed());
        let ready = fut.poll_unpin(cx);
        if ready.is_ready() {
            self.pending = None;
        }
        ready
    }
}

impl<T: Value> futures::Stream for Stream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll_event(cx).map(|ev| ev.map(|e| e.value))
    }
}

/// The events of a [`Stream`] as a `futures::Stream` (from
/// [`Stream::events`]): reading the next acks the previous one.
pub struct Events<'a, T> {
    stream: &'a mut Stream<T>,
}

impl<T: Value> futures::Stream for Events<'_, T> {
    type Item = Event<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<T>>> {
        self.stream.poll_event(cx)
    }
}

impl<T> fmt::Debug for Events<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Events({})", self.stream.ctx.label())
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
