//! The reply consumer: one fetcher per reply topic, dispatching each reply
//! to whatever waits for its correlation id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::ReplyWaiter;
use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::rpc::wire::{self, ReqRepResponse};
use crate::sync::{Mutex, MutexGuard};
use crate::transport::{CleanupPolicy, ConsumerEvent, TopicSpec, Transport};

type Waiting = Arc<Mutex<HashMap<String, Arc<dyn ReplyWaiter>>>>;

/// How reply topics are created and joined.
#[derive(Clone, Debug)]
pub(crate) struct ReplyTopics {
    /// The broker the topics are on.
    pub(crate) transport: Arc<dyn Transport>,
    /// Replication factor of a created reply topic.
    pub(crate) replication: i16,
    /// Retention of a created reply topic.
    pub(crate) retention: Duration,
    /// Deadline of each broker operation of a start.
    pub(crate) deadline: Duration,
    /// The broker, for errors (secrets redacted).
    pub(crate) broker: String,
}

/// Reads reply topics and fulfils promises (Faust's `ReplyConsumer`).
///
/// Unlike Faust: the fetcher is assigned its topic *before* the first
/// request is sent (no fixed 3 s sleep, no lost early reply); replies with an
/// unknown or duplicate correlation id are ignored with a debug log; entries
/// are removed when fulfilled or when the asker gives up.
pub struct ReplyConsumer {
    topics: ReplyTopics,
    waiting: Waiting,
    /// The fetcher of each started reply topic; every ask looks here, so
    /// it is a lock held for a lookup only.
    fetchers: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Held while a fetcher starts, so that concurrent asks start one.
    starting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ReplyConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyConsumer").finish_non_exhaustive()
    }
}

impl ReplyConsumer {
    pub(crate) fn new(topics: ReplyTopics) -> Self {
        Self {
            topics,
            waiting: Waiting::default(),
            fetchers: Mutex::default(),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<String, Arc<dyn ReplyWaiter>>> {
        self.waiting.lock()
    }

    fn fetchers(&self) -> MutexGuard<'_, HashMap<String, JoinHandle<()>>> {
        self.fetchers.lock()
    }

    /// Start the fetcher of `reply_to` (creating the topic with one
    /// partition and the app's reply retention) and wait until it is
    /// assigned. A call for a started topic returns at once, without
    /// waiting on any other call.
    pub async fn start(&self, reply_to: &str) -> Result<()> {
        if self.fetchers().contains_key(reply_to) {
            return Ok(());
        }
        let _starting = self.starting.lock().await;
        if self.fetchers().contains_key(reply_to) {
            return Ok(());
        }
        let cfg = &self.topics;
        let spec = TopicSpec {
            name: reply_to.to_string(),
            partitions: 1,
            replication: cfg.replication,
            retention: Some(cfg.retention),
            cleanup_policy: CleanupPolicy::Delete,
            configs: Vec::new(),
        };
        let deadline = cfg.deadline;
        let timeout = |what: &str| Error::Timeout {
            what: format!("{what} reply topic `{reply_to}` on {}", cfg.broker),
            after: deadline,
        };
        tokio::time::timeout(deadline, cfg.transport.create_topic(&spec))
            .await
            .map_err(|_| timeout("creating"))??;
        let tp = TopicPartition::new(reply_to, 0);
        let mut consumer = tokio::time::timeout(deadline, cfg.transport.assign(vec![tp]))
            .await
            .map_err(|_| timeout("subscribing to"))??;
        // Wait for the assignment, keeping any records that come with it.
        let mut early = Vec::new();
        tokio::time::timeout(deadline, async {
            loop {
                match consumer.poll().await? {
                    ConsumerEvent::Assigned(_) => return Ok::<_, Error>(()),
                    ConsumerEvent::Records(r) => early.extend(r),
                    ConsumerEvent::Revoked(_) => {}
                }
            }
        })
        .await
        .map_err(|_| timeout("waiting for the assignment of"))??;
        let waiting = self.waiting.clone();
        let topic = reply_to.to_string();
        let task = tokio::spawn(async move {
            dispatch(&waiting, &topic, early);
            loop {
                match consumer.poll().await {
                    Ok(ConsumerEvent::Records(records)) => dispatch(&waiting, &topic, records),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(topic = %topic, error = %e, "reply consumer poll failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        self.fetchers().insert(reply_to.to_string(), task);
        tracing::debug!(topic = %reply_to, "reply consumer assigned");
        Ok(())
    }

    /// Wait for the reply with this correlation id. The fetcher of the
    /// waiter's reply topic must be started (see [`start`](Self::start)).
    pub fn add(&self, correlation_id: impl Into<String>, waiter: Arc<dyn ReplyWaiter>) {
        self.waiting().insert(correlation_id.into(), waiter);
    }

    /// Stop waiting for a correlation id.
    pub fn remove(&self, correlation_id: &str) {
        self.waiting().remove(correlation_id);
    }

    /// Whether this reply topic is being read (its fetcher started and the
    /// app has not stopped).
    pub fn is_reading(&self, reply_to: &str) -> bool {
        self.fetchers().contains_key(reply_to)
    }

    /// Number of correlation ids still waited for.
    pub fn pending(&self) -> usize {
        self.waiting().len()
    }

    pub(crate) fn stop(&self) {
        for (_, task) in self.fetchers().drain() {
            task.abort();
        }
    }
}

fn dispatch(waiting: &Waiting, topic: &str, records: Vec<crate::record::Record>) {
    for record in records {
        let raw = record.value.as_deref().unwrap_or(b"null");
        let response = match ReqRepResponse::decode(raw) {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::warn!(
                    topic,
                    offset = record.offset,
                    "ignoring a record that is not a ReqRepResponse"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(topic, offset = record.offset, error = %e, "ignoring an undecodable reply");
                continue;
            }
        };
        let waiter = waiting.lock().remove(&response.correlation_id);
        let Some(waiter) = waiter else {
            tracing::debug!(topic, correlation_id = %response.correlation_id, "reply for an unknown or already answered correlation id ignored");
            continue;
        };
        let cid = response.correlation_id;
        match wire::error_from_headers(&record.headers) {
            Some(message) => waiter.fail(&cid, message),
            None => waiter.fulfill(&cid, response.value),
        };
    }
}
