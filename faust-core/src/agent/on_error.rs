//! [`OnError`]: what an agent calls when it fails, a function or an async
//! function, run within the agent.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::error::Error;

use super::Agent;

/// What an agent calls when it fails: a function or an async function
/// ([`AgentSpec::on_error`](super::AgentSpec::on_error),
/// [`AgentSpec::on_error_async`](super::AgentSpec::on_error_async)). Either runs
/// with [`current_agent`](crate::current_agent) set to the agent, also
/// after a crash, and the failed event waits for it (Faust awaits it).
#[derive(Clone)]
pub struct OnError(ErrorFn);

/// A synchronous error handler.
type SyncErrorFn = dyn Fn(&Agent, &Error) + Send + Sync;
/// An async error handler, its future boxed.
type AsyncErrorFn = dyn Fn(Agent, Error) -> futures::future::BoxFuture<'static, ()> + Send + Sync;

#[derive(Clone)]
enum ErrorFn {
    Sync(Arc<SyncErrorFn>),
    Async(Arc<AsyncErrorFn>),
}

impl OnError {
    /// A function called with the agent and the error.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&Agent, &Error) + Send + Sync + 'static,
    {
        OnError(ErrorFn::Sync(Arc::new(f)))
    }

    /// An async function called with the agent and the error, and awaited.
    pub fn new_async<F, Fut>(f: F) -> Self
    where
        F: Fn(Agent, Error) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        OnError(ErrorFn::Async(Arc::new(move |agent, err| {
            Box::pin(f(agent, err))
        })))
    }

    /// Call it for `agent` failing with `err`, within the agent.
    pub(crate) async fn call(&self, agent: &Agent, err: &Error) {
        match &self.0 {
            ErrorFn::Sync(f) => super::body::within_agent_sync(agent.clone(), || f(agent, err)),
            ErrorFn::Async(f) => {
                super::body::within_agent(agent.clone(), f(agent.clone(), err.clone())).await
            }
        }
    }
}

impl fmt::Debug for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            ErrorFn::Sync(_) => "OnError(fn)",
            ErrorFn::Async(_) => "OnError(async fn)",
        })
    }
}
