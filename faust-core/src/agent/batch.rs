//! Batches: an actor reading up to `max` events within a time
//! ([`Stream::take_batch`](super::Stream::take_batch)), holding them unacked until the
//! function is done with them, and the batch handler form
//! (`async fn(Vec<T>) -> Result<Vec<R>>`), which answers each event of the
//! batch with its own result.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::codec::Value;
use crate::error::{Error, Result};

use super::actor::ActorCtx;
use super::body::{user_error, ActorBody, BoxError};
use super::event::Event;
use super::held::Target;
use super::stream::Stream;

impl ActorCtx {
    /// The next batch: the current event or batch is finished first, then
    /// the first event is awaited (as long as it takes), then more are
    /// taken until there are `max` or `within` has passed since the first.
    /// `first`, if given, is an event already read and held as current (a
    /// read the function left half done): it opens the batch. `None` when
    /// the stream ends before any event.
    pub(super) async fn read_batch<T: Value>(
        &self,
        max: usize,
        within: Duration,
        first: Option<Event<T>>,
    ) -> Option<Vec<Event<T>>> {
        let max = max.max(1);
        let first = match first {
            Some(event) => {
                let mut held = self.lock();
                let cur = held.current.take();
                held.batch.extend(cur);
                event
            }
            None => {
                self.finish_current();
                if !self.wait_for_deliveries().await {
                    return None;
                }
                self.next_batch_event::<T>(None).await?
            }
        };
        // Sized for what is likely to come (a large `max` is a bound, not
        // a promise).
        let mut events = Vec::with_capacity(max.min(1024));
        events.push(first);
        let deadline = tokio::time::sleep(within);
        tokio::pin!(deadline);
        while events.len() < max {
            match self.next_batch_event::<T>(Some(deadline.as_mut())).await {
                Some(event) => events.push(event),
                None => break,
            }
        }
        Some(events)
    }
}

/// `async fn(Vec<T>) -> Result<Vec<R>, E>`: one call per batch; result `i`
/// answers event `i` and goes to the sinks with its key. An error, or not
/// one result per event, fails every event of the batch (reported once,
/// each answered with the error, dead-lettered, acked) and the actor goes
/// on; a panic crashes the actor and the batch goes back to the queue.
pub(crate) struct BatchHandlerBody<T, R, F> {
    pub(crate) f: Arc<F>,
    pub(crate) max: usize,
    pub(crate) within: Duration,
    pub(crate) _types: PhantomData<fn(T, R)>,
}

impl<T, R, F, Fut, E> ActorBody for BatchHandlerBody<T, R, F>
where
    T: Value,
    R: Value,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Vec<R>, E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    fn run(&self, ctx: Arc<ActorCtx>) -> BoxFuture<'static, Result<()>> {
        let (f, max, within) = (self.f.clone(), self.max, self.within);
        async move {
            let mut stream = Stream::<T>::new(ctx.clone());
            while let Some(values) = stream.take_batch(max, within).await {
                let events = values.len();
                match f(values).await {
                    Ok(results) if results.len() == events => {
                        for (i, result) in results.into_iter().enumerate() {
                            ctx.emit_to(Target::Batch(i), result, None).await?;
                        }
                    }
                    Ok(results) => {
                        let err = Error::BatchResults {
                            agent: ctx.agent().name().to_string(),
                            events,
                            results: results.len(),
                        };
                        ctx.fail_batch(&err).await;
                    }
                    Err(e) => ctx.fail_batch(&user_error(ctx.agent(), e)).await,
                }
            }
            Ok(())
        }
        .boxed()
    }
}
