//! The deadline of one RPC call, over all of its steps.

use std::time::Duration;

use crate::error::{Error, Result};

/// The deadline of one RPC call, from its start to its reply: starting the
/// reply consumer, producing the requests and waiting for the replies all
/// count against it. It remembers which of these it is in, to say so when
/// it passes.
pub(crate) struct Deadline<'a> {
    /// `ask to`, `join on`, `map on`.
    call: &'static str,
    agent: &'a str,
    pub(crate) started: tokio::time::Instant,
    at: tokio::time::Instant,
    timeout: Duration,
    step: std::sync::atomic::AtomicU8,
}

/// The steps of an RPC call, as [`Deadline`] names them.
const STEPS: [&str; 3] = [
    "starting the reply consumer",
    "producing the request",
    "waiting for the reply",
];
pub(crate) const STARTING: u8 = 0;
pub(crate) const PRODUCING: u8 = 1;
pub(crate) const WAITING: u8 = 2;

impl<'a> Deadline<'a> {
    pub(crate) fn new(call: &'static str, agent: &'a str, timeout: Duration) -> Self {
        let started = tokio::time::Instant::now();
        Self {
            call,
            agent,
            started,
            at: started + timeout,
            timeout,
            step: std::sync::atomic::AtomicU8::new(STARTING),
        }
    }

    pub(crate) fn step(&self, step: u8) {
        self.step.store(step, std::sync::atomic::Ordering::Relaxed);
    }

    /// `fut`, or a timeout error naming the call and the step it was in.
    pub(crate) async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout_at(self.at, fut).await {
            Ok(result) => result,
            Err(_) => Err(self.passed()),
        }
    }

    /// The error of a call whose deadline passed: what it was doing and the
    /// time it actually spent.
    fn passed(&self) -> Error {
        let step = self.step.load(std::sync::atomic::Ordering::Relaxed);
        Error::Timeout {
            what: format!(
                "{} agent `{}` while {} (deadline {:?})",
                self.call,
                self.agent,
                STEPS[usize::from(step).min(STEPS.len() - 1)],
                self.timeout
            ),
            after: self.started.elapsed(),
        }
    }
}
