//! The options of a test context and of its `put`, and the event `put` returns.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::agent::supervisor::SupervisorStrategyT;
use crate::agent::{Agent, OnError};
use crate::error::Error;
use crate::record::Headers;

/// Options of [`TestContext::put_with`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// Raw key.
    pub key: Option<Bytes>,
    /// Partition (default 0).
    pub partition: Option<i32>,
    /// Timestamp in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Headers,
    /// Make the event a request answered to this topic.
    pub reply_to: Option<String>,
    /// Correlation id of the request.
    pub correlation_id: Option<String>,
    /// Do not wait for the agent to process the event.
    pub no_wait: bool,
    /// How long to wait (default: the context's timeout, 5 s).
    pub timeout: Option<Duration>,
}

impl PutOptions {
    /// Set the raw key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Set the partition.
    pub fn partition(mut self, p: i32) -> Self {
        self.partition = Some(p);
        self
    }
    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Return as soon as the event is sent.
    pub fn no_wait(mut self) -> Self {
        self.no_wait = true;
        self
    }
    /// Wait at most this long.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

/// Options of [`Agent::test_context_with`](crate::Agent::test_context_with)
/// (Faust's `test_context(channel, supervisor_strategy, on_error)`).
#[derive(Clone, Default)]
#[must_use]
pub struct TestOptions {
    pub(super) supervisor: Option<Arc<dyn SupervisorStrategyT>>,
    pub(super) on_error: Option<OnError>,
    pub(super) channel: Option<String>,
    pub(super) timeout: Option<Duration>,
}

impl TestOptions {
    /// The copy's supervisor strategy (default: crashing, so that a crash
    /// fails the test; one-for-one lets it restart and read on).
    pub fn supervisor(mut self, strategy: impl SupervisorStrategyT) -> Self {
        self.supervisor = Some(Arc::new(strategy));
        self
    }

    /// The copy's `on_error`, instead of the agent's.
    pub fn on_error<F>(mut self, f: F) -> Self
    where
        F: Fn(&Agent, &Error) + Send + Sync + 'static,
    {
        self.on_error = Some(OnError::new(f));
        self
    }

    /// The copy's `on_error`, an async function, instead of the agent's.
    pub fn on_error_async<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Agent, Error) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.on_error = Some(OnError::new_async(f));
        self
    }

    /// Read this in-memory channel instead of the agent's topics (Faust's
    /// `channel=`): `put` hands values to it. Not for isolated partitions.
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        self.channel = Some(name.into());
        self
    }

    /// How long `put` waits by default (5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl std::fmt::Debug for TestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOptions")
            .field(
                "supervisor",
                &self.supervisor.as_ref().map(|s| s.name().to_string()),
            )
            .field("on_error", &self.on_error.is_some())
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An event sent by [`TestContext::put`].
#[derive(Clone, Debug, PartialEq)]
pub struct TestEvent {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Raw key.
    pub key: Option<Bytes>,
    /// Raw value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Headers,
}
