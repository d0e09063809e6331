//! [`ReplyPromise`]: the future side of one `ask`, and [`ReplyWaiter`], the
//! entry point the reply consumer uses to deliver replies.

use std::fmt;
use std::future::IntoFuture;
use std::pin::pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::sync::Mutex;

/// Something waiting for replies, registered with the reply consumer under
/// one or more correlation ids (a [`ReplyPromise`] or a
/// [`BarrierState`](super::BarrierState)).
///
/// The reply consumer stores `Arc<dyn ReplyWaiter>` and calls one of these
/// for every reply whose correlation id it registered. Neither method
/// panics: a reply that is not wanted (duplicate, unknown correlation id,
/// already complete) is ignored and `false` returned.
pub trait ReplyWaiter: Send + Sync {
    /// A reply carrying `value` arrived for `correlation_id`.
    /// Returns whether it was accepted.
    fn fulfill(&self, correlation_id: &str, value: Value) -> bool;

    /// A reply arrived for `correlation_id` saying the agent failed with
    /// `message`. Returns whether it was accepted.
    fn fail(&self, correlation_id: &str, message: String) -> bool;
}

/// The outcome of a reply: the value, or the error message the agent sent.
type Outcome = std::result::Result<Value, String>;

/// A promise of the reply to one request, resolved by the reply consumer.
///
/// Cloning gives another handle to the same promise (the reply consumer and
/// the asker each hold one). The first accepted [`fulfill`](Self::fulfill) or
/// [`fail`](Self::fail) resolves it for good; later ones are ignored. A
/// resolution that happens before anyone waits is kept.
///
/// Await it with [`wait`](Self::wait) or `promise.await`. There is no
/// timeout: wrap the wait in `tokio::time::timeout`.
#[derive(Clone)]
pub struct ReplyPromise {
    inner: Arc<Inner>,
}

struct Inner {
    reply_to: String,
    correlation_id: String,
    outcome: Mutex<Option<Outcome>>,
    notify: Notify,
}

impl ReplyPromise {
    /// A pending promise for the reply to request `correlation_id`, expected
    /// on topic `reply_to`.
    ///
    /// Fails with [`Error::Rpc`] if `correlation_id` is empty.
    pub fn new(reply_to: impl Into<String>, correlation_id: impl Into<String>) -> Result<Self> {
        let correlation_id = correlation_id.into();
        if correlation_id.is_empty() {
            return Err(Error::Rpc("ReplyPromise missing correlation_id".to_owned()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                reply_to: reply_to.into(),
                correlation_id,
                outcome: Mutex::new(None),
                notify: Notify::new(),
            }),
        })
    }

    /// The topic the reply is expected on.
    pub fn reply_to(&self) -> &str {
        &self.inner.reply_to
    }

    /// The correlation id of the request.
    pub fn correlation_id(&self) -> &str {
        &self.inner.correlation_id
    }

    /// Whether a reply (value or error) has been received.
    pub fn is_done(&self) -> bool {
        self.inner.outcome.lock().is_some()
    }

    /// Resolve with `value`. Returns `false` and changes nothing if
    /// `correlation_id` is not this promise's or it is already resolved.
    pub fn fulfill(&self, correlation_id: &str, value: Value) -> bool {
        self.resolve(correlation_id, Ok(value))
    }

    /// Resolve with the agent's error `message`. Returns `false` and changes
    /// nothing if `correlation_id` is not this promise's or it is already
    /// resolved.
    pub fn fail(&self, correlation_id: &str, message: String) -> bool {
        self.resolve(correlation_id, Err(message))
    }

    fn resolve(&self, correlation_id: &str, outcome: Outcome) -> bool {
        if correlation_id != self.inner.correlation_id {
            return false;
        }
        {
            let mut slot = self.inner.outcome.lock();
            if slot.is_some() {
                return false;
            }
            *slot = Some(outcome);
        }
        self.inner.notify.notify_waiters();
        true
    }

    /// Wait for the reply; every handle and every call gets it (a copy).
    ///
    /// A failed reply gives [`Error::Remote`] with an empty `agent` (the
    /// caller knows the agent name and fills it in).
    pub async fn wait(&self) -> Result<Value> {
        self.ready().await;
        into_result(self.inner.outcome.lock().clone().unwrap_or(Ok(Value::Null)))
    }

    /// Wait until resolved.
    async fn ready(&self) {
        loop {
            let mut notified = pin!(self.inner.notify.notified());
            // Register before checking, so a resolution in between is seen.
            notified.as_mut().enable();
            if self.is_done() {
                return;
            }
            notified.await;
        }
    }

    /// Wait, then move the value out if this is the last handle.
    async fn into_wait(self) -> Result<Value> {
        self.ready().await;
        let mut slot = self.inner.outcome.lock();
        // The only handle: nobody can observe the slot after us.
        let outcome = if Arc::strong_count(&self.inner) == 1 {
            slot.take()
        } else {
            slot.clone()
        };
        drop(slot);
        into_result(outcome.unwrap_or(Ok(Value::Null)))
    }
}

fn into_result(outcome: Outcome) -> Result<Value> {
    outcome.map_err(|message| Error::Remote {
        agent: String::new(),
        message,
    })
}

impl ReplyWaiter for ReplyPromise {
    fn fulfill(&self, correlation_id: &str, value: Value) -> bool {
        ReplyPromise::fulfill(self, correlation_id, value)
    }

    fn fail(&self, correlation_id: &str, message: String) -> bool {
        ReplyPromise::fail(self, correlation_id, message)
    }
}

impl IntoFuture for ReplyPromise {
    type Output = Result<Value>;
    type IntoFuture = BoxFuture<'static, Result<Value>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.into_wait())
    }
}

impl fmt::Debug for ReplyPromise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyPromise")
            .field("reply_to", &self.inner.reply_to)
            .field("correlation_id", &self.inner.correlation_id)
            .field("done", &self.is_done())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tokio::time::timeout;

    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn test_reply_promise() {
        let r = ReplyPromise::new("rt", "id1").unwrap();
        assert_eq!(r.reply_to(), "rt");
        assert_eq!(r.correlation_id(), "id1");
        assert!(!r.is_done());
        assert!(r.fulfill("id1", json!("value")));
        assert!(r.is_done());
        assert_eq!(timeout(T, r.wait()).await.unwrap().unwrap(), json!("value"));
        assert_eq!(timeout(T, r).await.unwrap().unwrap(), json!("value"));

        let err = ReplyPromise::new("rt", "").unwrap_err();
        assert!(matches!(err, Error::Rpc(ref m) if m == "ReplyPromise missing correlation_id"));
    }

    #[tokio::test]
    async fn duplicate_and_mismatched_fulfil_ignored() {
        let r = ReplyPromise::new("rt", "id1").unwrap();
        assert!(!r.fulfill("other", json!(0)));
        assert!(!r.is_done());
        assert!(r.fulfill("id1", json!(1)));
        assert!(!r.fulfill("id1", json!(2)));
        assert!(!r.fail("id1", "late".into()));
        assert_eq!(r.wait().await.unwrap(), json!(1));
    }

    #[tokio::test]
    async fn fulfil_before_wait_not_lost() {
        let r = ReplyPromise::new("rt", "id1").unwrap();
        let consumer_side: Arc<dyn ReplyWaiter> = Arc::new(r.clone());
        assert!(consumer_side.fulfill("id1", json!([1, 2])));
        drop(consumer_side);
        assert_eq!(timeout(T, r).await.unwrap().unwrap(), json!([1, 2]));
    }

    #[tokio::test(start_paused = true)]
    async fn fulfil_from_another_task_wakes_waiters() {
        let r = ReplyPromise::new("rt", "id1").unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move { r.await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!r.is_done());
        let r2 = r.clone();
        tokio::spawn(async move { r2.fulfill("id1", json!(42)) });
        for w in waiters {
            let v = timeout(T, w).await.unwrap().unwrap().unwrap();
            assert_eq!(v, json!(42));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_fulfil_and_wait_across_threads() {
        for i in 0..2000 {
            let cid = format!("cid-{i}");
            let r = ReplyPromise::new("rt", cid.clone()).unwrap();
            let waiter: Arc<dyn ReplyWaiter> = Arc::new(r.clone());
            let f = tokio::spawn(async move { waiter.fulfill(&cid, json!(i)) });
            assert_eq!(timeout(T, r).await.unwrap().unwrap(), json!(i));
            assert!(f.await.unwrap());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unfulfilled_promise_times_out() {
        let r = ReplyPromise::new("rt", "id1").unwrap();
        assert!(timeout(Duration::from_secs(1), r.wait()).await.is_err());
    }

    #[tokio::test]
    async fn failed_reply_is_remote_error() {
        let r = ReplyPromise::new("rt", "id1").unwrap();
        assert!(r.fail("id1", "boom".into()));
        assert!(r.is_done());
        match r.wait().await {
            Err(Error::Remote { agent, message }) => {
                assert_eq!(agent, "");
                assert_eq!(message, "boom");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(r.await, Err(Error::Remote { .. })));
    }

    #[test]
    fn debug_shows_state() {
        let r = ReplyPromise::new("rt", "id1").unwrap();
        let d = format!("{r:?}");
        assert!(d.contains("id1") && d.contains("done: false"), "{d}");
    }
}
