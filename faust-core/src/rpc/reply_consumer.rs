//! The reply consumer: one fetcher per reply topic, dispatching each reply
//! to whatever waits for its correlation id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::ReplyWaiter;
use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::rpc::wire::{self, ReqRepResponse};
use crate::sync::{Mutex, MutexGuard};
use crate::transport::{CleanupPolicy, ConsumerEvent, TopicSpec, Transport};

type Waiting = Arc<Mutex<HashMap<String, Waiters>>>;

/// What waits for one correlation id: one waiter (the common case, no
/// allocation beyond the map's), or several (Faust keeps a set per id).
enum Waiters {
    One(Arc<dyn ReplyWaiter>),
    Many(Vec<Arc<dyn ReplyWaiter>>),
}

impl Waiters {
    fn push(&mut self, waiter: Arc<dyn ReplyWaiter>) {
        match self {
            Waiters::One(first) => *self = Waiters::Many(vec![first.clone(), waiter]),
            Waiters::Many(all) => all.push(waiter),
        }
    }

    /// Remove `waiter`; true when none is left.
    fn remove(&mut self, waiter: &Arc<dyn ReplyWaiter>) -> bool {
        match self {
            Waiters::One(one) => Arc::ptr_eq(one, waiter),
            Waiters::Many(all) => {
                all.retain(|w| !Arc::ptr_eq(w, waiter));
                all.is_empty()
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Waiters::One(_) => 1,
            Waiters::Many(all) => all.len(),
        }
    }
}

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
    /// Replies read, and those of them no one waited for.
    counts: Arc<ReplyCounts>,
}

/// What the reply consumer has read.
#[derive(Debug, Default)]
struct ReplyCounts {
    received: AtomicU64,
    unmatched: AtomicU64,
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
            counts: Arc::default(),
            fetchers: Mutex::default(),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<String, Waiters>> {
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
        let counts = self.counts.clone();
        let topic = reply_to.to_string();
        let task = tokio::spawn(async move {
            dispatch(&waiting, &counts, &topic, early);
            loop {
                match consumer.poll().await {
                    Ok(ConsumerEvent::Records(records)) => {
                        dispatch(&waiting, &counts, &topic, records)
                    }
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
    /// Several waiters may wait for one id: its reply goes to each of them.
    pub fn add(&self, correlation_id: impl Into<String>, waiter: Arc<dyn ReplyWaiter>) {
        use std::collections::hash_map::Entry;
        match self.waiting().entry(correlation_id.into()) {
            Entry::Occupied(mut waiters) => waiters.get_mut().push(waiter),
            Entry::Vacant(slot) => {
                slot.insert(Waiters::One(waiter));
            }
        }
    }

    /// Stop waiting for a correlation id: every waiter of it is dropped.
    pub fn remove(&self, correlation_id: &str) {
        self.waiting().remove(correlation_id);
    }

    /// Stop one waiter (the same `Arc`) waiting for a correlation id; the
    /// others keep waiting.
    pub fn remove_waiter(&self, correlation_id: &str, waiter: &Arc<dyn ReplyWaiter>) {
        let mut waiting = self.waiting();
        if let Some(waiters) = waiting.get_mut(correlation_id) {
            if waiters.remove(waiter) {
                waiting.remove(correlation_id);
            }
        }
    }

    /// Replies read from the reply topics (well-formed `ReqRepResponse`s).
    pub fn replies_received(&self) -> u64 {
        self.counts.received.load(Ordering::Relaxed)
    }

    /// Replies read whose correlation id no one waited for (any more).
    pub fn replies_unmatched(&self) -> u64 {
        self.counts.unmatched.load(Ordering::Relaxed)
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

    /// Number of waiters of one correlation id.
    pub fn waiters(&self, correlation_id: &str) -> usize {
        self.waiting().get(correlation_id).map_or(0, Waiters::len)
    }

    pub(crate) fn stop(&self) {
        for (_, task) in self.fetchers().drain() {
            task.abort();
        }
    }
}

fn dispatch(
    waiting: &Waiting,
    counts: &ReplyCounts,
    topic: &str,
    records: Vec<crate::record::Record>,
) {
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
        counts.received.fetch_add(1, Ordering::Relaxed);
        let waiters = waiting.lock().remove(&response.correlation_id);
        let Some(waiters) = waiters else {
            counts.unmatched.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(topic, correlation_id = %response.correlation_id, "reply for an unknown or already answered correlation id ignored");
            continue;
        };
        let cid = response.correlation_id;
        let error = wire::error_from_headers(&record.headers);
        let answer = |waiter: &dyn ReplyWaiter, value: serde_json::Value| match &error {
            Some(message) => waiter.fail(&cid, message.clone()),
            None => waiter.fulfill(&cid, value),
        };
        match waiters {
            // The value moves to a single waiter: no copy on the common path.
            Waiters::One(waiter) => {
                answer(waiter.as_ref(), response.value);
            }
            Waiters::Many(all) => {
                for waiter in &all {
                    answer(waiter.as_ref(), response.value.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::record::ProducerRecord;
    use crate::rpc::{BarrierState, ReplyPromise};
    use crate::transport::memory::MemoryBroker;

    fn consumer() -> (ReplyConsumer, Arc<dyn Transport>) {
        let transport: Arc<dyn Transport> = Arc::new(MemoryBroker::new());
        let consumer = ReplyConsumer::new(ReplyTopics {
            transport: transport.clone(),
            replication: 1,
            retention: Duration::from_secs(60),
            deadline: Duration::from_secs(5),
            broker: "memory://".into(),
        });
        (consumer, transport)
    }

    /// A reply record as an agent produces it.
    fn reply(topic: &str, cid: &str, value: serde_json::Value) -> ProducerRecord {
        let body = ReqRepResponse::new(json!(null), value, cid).encode();
        ProducerRecord::new(topic.to_string(), body)
    }

    fn failed(topic: &str, cid: &str, message: &str) -> ProducerRecord {
        let mut record = reply(topic, cid, json!(null));
        record.headers.push((
            wire::ERROR_HEADER.into(),
            message.as_bytes().to_vec().into(),
        ));
        record
    }

    async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .expect("within 5 s")
    }

    #[tokio::test]
    async fn start_creates_the_topic_once_and_reads_it() {
        let (replies, transport) = consumer();
        assert!(!replies.is_reading("r"));
        replies.start("r").await.unwrap();
        replies.start("r").await.unwrap();
        assert!(replies.is_reading("r"));
        assert_eq!(transport.partition_count("r").await.unwrap(), Some(1));
        let spec = transport.describe_topic("r").await.unwrap().unwrap();
        assert_eq!(spec.retention, Some(Duration::from_secs(60)));
        replies.stop();
        assert!(!replies.is_reading("r"));
    }

    #[tokio::test]
    async fn a_reply_fulfils_its_promise_and_is_forgotten() {
        let (replies, transport) = consumer();
        replies.start("r").await.unwrap();
        let promise = ReplyPromise::new("r", "c1").unwrap();
        replies.add("c1", Arc::new(promise.clone()));
        assert_eq!(replies.pending(), 1);
        transport.send(reply("r", "c1", json!(42))).await.unwrap();
        assert_eq!(within(promise.wait()).await.unwrap(), json!(42));
        assert_eq!(replies.pending(), 0);
    }

    #[tokio::test]
    async fn an_error_reply_fails_the_promise_with_the_message() {
        let (replies, transport) = consumer();
        replies.start("r").await.unwrap();
        let promise = ReplyPromise::new("r", "c1").unwrap();
        replies.add("c1", Arc::new(promise.clone()));
        transport
            .send(failed("r", "c1", "no such order"))
            .await
            .unwrap();
        let err = within(promise.wait()).await.unwrap_err();
        assert!(err.to_string().contains("no such order"), "{err}");
    }

    #[tokio::test]
    async fn every_waiter_of_one_correlation_id_gets_the_reply() {
        let (replies, transport) = consumer();
        replies.start("r").await.unwrap();
        let first = ReplyPromise::new("r", "c1").unwrap();
        let second = ReplyPromise::new("r", "c1").unwrap();
        let barrier = BarrierState::new("r");
        barrier.add_correlation_id("c1").unwrap();
        barrier.finalize();
        replies.add("c1", Arc::new(first.clone()));
        replies.add("c1", Arc::new(second.clone()));
        replies.add("c1", Arc::new(barrier.clone()));
        assert_eq!((replies.pending(), replies.waiters("c1")), (1, 3));
        transport.send(reply("r", "c1", json!("x"))).await.unwrap();
        assert_eq!(within(first.wait()).await.unwrap(), json!("x"));
        assert_eq!(within(second.wait()).await.unwrap(), json!("x"));
        within(barrier.wait()).await;
        assert_eq!(barrier.drain()[0].value, Ok(json!("x")));
    }

    #[tokio::test]
    async fn a_removed_waiter_gets_nothing_and_the_others_still_do() {
        let (replies, transport) = consumer();
        replies.start("r").await.unwrap();
        let kept = ReplyPromise::new("r", "c1").unwrap();
        let gone: Arc<dyn ReplyWaiter> = Arc::new(ReplyPromise::new("r", "c1").unwrap());
        replies.add("c1", Arc::new(kept.clone()));
        replies.add("c1", gone.clone());
        replies.remove_waiter("c1", &gone);
        assert_eq!(replies.waiters("c1"), 1);
        transport.send(reply("r", "c1", json!(1))).await.unwrap();
        assert_eq!(within(kept.wait()).await.unwrap(), json!(1));
        // The last waiter removed: the id is forgotten.
        let only: Arc<dyn ReplyWaiter> = Arc::new(ReplyPromise::new("r", "c2").unwrap());
        replies.add("c2", only.clone());
        replies.remove_waiter("c2", &only);
        assert_eq!(replies.pending(), 0);
    }

    #[tokio::test]
    async fn unknown_duplicate_and_foreign_records_are_ignored() {
        let (replies, transport) = consumer();
        replies.start("r").await.unwrap();
        let promise = ReplyPromise::new("r", "c1").unwrap();
        replies.add("c1", Arc::new(promise.clone()));
        // Not a reply, not JSON, a reply nobody waits for: all skipped.
        transport
            .send(ProducerRecord::new("r".to_string(), &br#"{"a":1}"#[..]))
            .await
            .unwrap();
        transport
            .send(ProducerRecord::new("r".to_string(), &b"\xff"[..]))
            .await
            .unwrap();
        transport
            .send(reply("r", "nobody", json!(0)))
            .await
            .unwrap();
        transport.send(reply("r", "c1", json!(1))).await.unwrap();
        transport.send(reply("r", "c1", json!(2))).await.unwrap();
        // The first reply wins; the duplicate changes nothing.
        assert_eq!(within(promise.wait()).await.unwrap(), json!(1));
        let later = ReplyPromise::new("r", "c3").unwrap();
        replies.add("c3", Arc::new(later.clone()));
        transport.send(reply("r", "c3", json!(3))).await.unwrap();
        assert_eq!(within(later.wait()).await.unwrap(), json!(3));
        assert_eq!(promise.wait().await.unwrap(), json!(1));
    }
}
