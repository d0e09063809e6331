//! The agent function in its four one-event forms (consumer, yielding,
//! producer, handler; the batch form is in `batch.rs`), erased behind
//! [`ActorBody`], and [`run_actor`], which runs one to its end as an actor.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::codec::Value;
use crate::error::{Error, Result};

use super::actor::ActorCtx;
use super::stream::{Stream, Yield};
use super::Agent;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

tokio::task_local! {
    static CURRENT_AGENT: Agent;
}

/// The agent whose actor is running the current task, or `None` elsewhere.
///
/// Set for the agent function and everything it awaits (sinks, replies and
/// `on_error` included), and for tasks started with [`spawn`] from there;
/// a task started with `tokio::spawn` does not inherit it.
pub fn current_agent() -> Option<Agent> {
    CURRENT_AGENT.try_with(|a| a.clone()).ok()
}

/// Run `future` within `agent`: [`current_agent`] gives it there.
pub(crate) fn within_agent<F: Future>(
    agent: Agent,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<Agent, F> {
    CURRENT_AGENT.scope(agent, future)
}

/// Run `f` within `agent` (synchronous code).
pub(crate) fn within_agent_sync<R>(agent: Agent, f: impl FnOnce() -> R) -> R {
    CURRENT_AGENT.sync_scope(agent, f)
}

/// `tokio::spawn`, with [`current_agent`] inherited by the task (as Faust
/// copies the current agent into tasks an agent starts). Outside an agent
/// it is `tokio::spawn`.
///
/// ```
/// # use faust_core as faust;
/// # async fn body(mut s: faust::Stream<i64>) -> faust::Result<()> {
/// while let Some(v) = s.next().await {
///     faust::spawn(async move {
///         let agent = faust::current_agent().expect("inherited");
///         tracing::info!(agent = agent.name(), v, "in the background");
///     });
/// }
/// # Ok(()) }
/// ```
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current_agent() {
        Some(agent) => tokio::spawn(within_agent(agent, future)),
        None => tokio::spawn(future),
    }
}

/// How an actor ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The function returned `Ok(())` (or its stream ended).
    Finished,
    /// The function returned an error or panicked.
    Crashed(Error),
}

/// The agent function, with its form erased.
pub(crate) trait ActorBody: Send + Sync + 'static {
    /// Run one actor to completion.
    fn run(&self, ctx: Arc<ActorCtx>) -> BoxFuture<'static, Result<()>>;
}

pub(super) fn user_error<E: Into<BoxError>>(agent: &Agent, e: E) -> Error {
    match e.into().downcast::<Error>() {
        Ok(own) => *own,
        Err(other) => Error::Agent {
            agent: agent.name().to_string(),
            message: other.to_string(),
        },
    }
}

/// `async fn(Stream<T>) -> Result<(), E>`
pub(crate) struct ConsumerBody<T, F>(pub(crate) F, pub(crate) PhantomData<fn(T)>);

impl<T, F, Fut, E> ActorBody for ConsumerBody<T, F>
where
    T: Value,
    F: Fn(Stream<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    fn run(&self, ctx: Arc<ActorCtx>) -> BoxFuture<'static, Result<()>> {
        let agent = ctx.agent().clone();
        (self.0)(Stream::new(ctx))
            .map(move |r| r.map_err(|e| user_error(&agent, e)))
            .boxed()
    }
}

/// `async fn(Stream<T>, Yield<R>) -> Result<(), E>`
pub(crate) struct YieldingBody<T, R, F>(pub(crate) F, pub(crate) PhantomData<fn(T, R)>);

impl<T, R, F, Fut, E> ActorBody for YieldingBody<T, R, F>
where
    T: Value,
    R: Value,
    F: Fn(Stream<T>, Yield<R>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    fn run(&self, ctx: Arc<ActorCtx>) -> BoxFuture<'static, Result<()>> {
        let agent = ctx.agent().clone();
        (self.0)(Stream::new(ctx.clone()), Yield::new(ctx))
            .map(move |r| r.map_err(|e| user_error(&agent, e)))
            .boxed()
    }
}

/// `fn(Stream<T>) -> impl futures::Stream<Item = Result<R, E>>`
pub(crate) struct ProducerBody<T, R, F>(pub(crate) F, pub(crate) PhantomData<fn(T, R)>);

impl<T, R, F, S, E> ActorBody for ProducerBody<T, R, F>
where
    T: Value,
    R: Value,
    F: Fn(Stream<T>) -> S + Send + Sync + 'static,
    S: futures::Stream<Item = std::result::Result<R, E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    fn run(&self, ctx: Arc<ActorCtx>) -> BoxFuture<'static, Result<()>> {
        let out = (self.0)(Stream::new(ctx.clone()));
        async move {
            let mut out = std::pin::pin!(out);
            while let Some(item) = futures::StreamExt::next(&mut out).await {
                let value = item.map_err(|e| user_error(ctx.agent(), e))?;
                ctx.emit(value).await?;
            }
            Ok(())
        }
        .boxed()
    }
}

/// `async fn(T) -> Result<R, E>`: one call per event; an error fails that
/// event only (reported, answered, dead-lettered, acked) and the actor goes on.
pub(crate) struct HandlerBody<T, R, F>(pub(crate) Arc<F>, pub(crate) PhantomData<fn(T, R)>);

impl<T, R, F, Fut, E> ActorBody for HandlerBody<T, R, F>
where
    T: Value,
    R: Value,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<R, E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    fn run(&self, ctx: Arc<ActorCtx>) -> BoxFuture<'static, Result<()>> {
        let f = self.0.clone();
        async move {
            let mut stream = Stream::<T>::new(ctx.clone());
            while let Some(value) = stream.next().await {
                match f(value).await {
                    Ok(out) => ctx.emit(out).await?,
                    Err(e) => ctx.fail_current(&user_error(ctx.agent(), e)).await,
                }
            }
            Ok(())
        }
        .boxed()
    }
}

/// Run one actor to its end and report how it ended.
pub(crate) async fn run_actor(
    ctx: Arc<ActorCtx>,
    body: Arc<dyn ActorBody>,
    root: await_tree::TreeRoot,
) -> Outcome {
    let agent = ctx.agent().clone();
    let fut = within_agent(
        agent.clone(),
        super::trace::WithinActor::new(ctx.clone(), body.run(ctx.clone())),
    );
    let result = AssertUnwindSafe(root.instrument(fut)).catch_unwind().await;
    let outcome = match result {
        Ok(Ok(())) => match ctx.take_thrown() {
            Some(thrown) => Outcome::Crashed(thrown),
            None => Outcome::Finished,
        },
        Ok(Err(err)) => Outcome::Crashed(err),
        Err(panic) => Outcome::Crashed(Error::Panic {
            agent: agent.name().to_string(),
            message: panic_message(&panic),
        }),
    };
    match &outcome {
        Outcome::Finished => ctx.finished(),
        Outcome::Crashed(err) => {
            agent.stats().record_crash();
            ctx.crashed(err).await;
        }
    }
    outcome
}

/// The message of a panic payload when it is a string.
pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
