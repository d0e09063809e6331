//! The embedded in-memory broker (`memory://` and `memory://<name>`).
//!
//! It behaves like a single Kafka broker so that tests written against it
//! stay true on Kafka:
//!
//! - **Topics** have a fixed number of partitions. They are created by
//!   [`Transport::create_topic`] (idempotent) or automatically, with
//!   [`DEFAULT_PARTITIONS`] partitions unless configured otherwise, on the
//!   first `send`, `subscribe` or `assign` naming them.
//! - **Producing** appends to a partition log with consecutive offsets from 0.
//!   The partition is the explicit one, else Kafka's default partitioner for
//!   keyed records (`murmur2(key) & 0x7fffffff % partitions`, see
//!   [`partition_for_key`]), else round-robin per topic. Headers and
//!   timestamps are kept exactly; a record sent without a timestamp is
//!   stamped from the kernel's coarse clock (resolution 1 to 4 ms).
//!   Sending is synchronous, so `flush` has nothing to do.
//! - **Retention**: a record is kept until every consumer group that
//!   subscribed to its topic has committed past it and every assigned
//!   consumer reading its partition has read it; records of a partition no
//!   consumer has read yet are all kept. Memory is freed in chunks of
//!   [`RETENTION_CHUNK`] records. A group that joins later starts at the
//!   oldest retained record (as with Kafka's retention). Group consumers
//!   ask the runtime to commit every [`COMMIT_INTERVAL`], so a steady stream holds
//!   only a few milliseconds of records. At the memory bound (below), the
//!   newest chunk of a partition goes too once every reader has read all
//!   of it. `TopicSpec::retention` and
//!   `cleanup_policy` are recorded (see [`Transport::describe_topic`]) but
//!   not applied.
//! - **Memory** is bounded: once the records retained reach `max_bytes`
//!   ([`DEFAULT_MAX_BYTES`], `memory://?max_bytes=N`), a send from outside
//!   an agent waits until consumers free room (at most `max_block_ms`,
//!   [`DEFAULT_MAX_BLOCK`], then it fails), as a Kafka producer waits for
//!   room in its queue. Sends made while an agent processes an event (its
//!   outputs, replies) are never held back: they are what lets the
//!   consumers commit and free room, so holding them could deadlock.
//! - **Consumer groups** use range assignment per topic over the members
//!   ordered by join order, and an eager rebalance whenever a member joins or
//!   leaves: a member whose assignment changes first gets
//!   [`ConsumerEvent::Revoked`](super::ConsumerEvent::Revoked) with the partitions it loses, then
//!   [`ConsumerEvent::Assigned`](super::ConsumerEvent::Assigned) with the ones it gains. A partition moving
//!   from A to B is handed to B only once A has finished its revocation (A
//!   called `poll` again after `Revoked`, or closed or dropped its consumer),
//!   or after the rebalance deadline ([`DEFAULT_REBALANCE_TIMEOUT`]); A is
//!   then fenced: its later commits for that partition fail. B starts at the
//!   group's committed offset, or per [`OffsetReset`](super::OffsetReset) without one.
//! - **Polling** returns rebalance events first, then batches of at most
//!   [`MAX_BATCH`] records shared fairly among the assigned partitions, and
//!   otherwise waits without busy polling: appends wake the consumers
//!   reading the partition. `poll` is cancel-safe.
//! - **Assigned consumers** ([`Transport::assign`]) have no group, read their
//!   partitions from the oldest retained record, and do not commit.
//!
//! This file is the broker itself (topics, producing, the named-broker
//! registry); the partition logs are in `log`, the group coordinator in
//! `group` and the consumer in `consumer`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use rustc_hash::FxHashMap;
use tokio::time::Instant;

use super::{
    dedup_partitions, validate_topic_name, Consumer, Enqueued, SubscribeOptions, TopicSpec,
    Transport,
};
use crate::error::{Error, Result};
use crate::record::{coarse_now_millis, ProducerRecord, RecordMetadata, TopicPartition};
use crate::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use crate::sync::{std_atomic, Mutex, Notify, RwLock};

mod consumer;
mod group;
mod log;
mod retained;
#[cfg(test)]
mod tests;

pub use super::partitioner::{murmur2, partition_for_key};
use consumer::MemoryConsumer;
use group::{Group, Subscription};
use log::{Fetch, Partition, Stored, Topic};
use retained::Retained;

/// Partitions of a topic created automatically (by `send`, `subscribe` or
/// `assign` naming an unknown topic), unless set with
/// [`MemoryBroker::with_default_partitions`].
pub const DEFAULT_PARTITIONS: i32 = 8;

/// How long a rebalance waits for a member to release a revoked partition
/// before handing it to its new owner anyway, unless set with
/// [`MemoryBroker::with_rebalance_timeout`].
pub const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most records one [`Consumer::poll`] returns.
pub const MAX_BATCH: usize = 512;

/// Records per storage chunk of a partition log (appends never move
/// records; retention frees whole chunks).
pub const RETENTION_CHUNK: usize = 1024;

/// Bytes of records a broker retains before sends from outside agents
/// wait for room (256 MiB), unless set with [`MemoryBroker::with_max_bytes`]
/// or `memory://?max_bytes=N`. What a record counts: its key, value and
/// headers, plus about 100 bytes of bookkeeping.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// How long a send waits for room in a full broker before it fails (60 s,
/// the Java producer's `max.block.ms`), unless set with
/// [`MemoryBroker::with_max_block`] or `memory://?max_block_ms=N`.
pub const DEFAULT_MAX_BLOCK: Duration = Duration::from_secs(60);

/// How often consumers of this broker want the runtime to commit (see
/// [`Consumer::commit_interval`]): commits are cheap here and free memory.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(20);

/// The state of one broker, shared by its handle and its consumers.
struct Inner {
    url: String,
    default_partitions: AtomicI32,
    rebalance_timeout_ns: AtomicU64,
    topics: RwLock<FxHashMap<String, Arc<Topic>>>,
    /// The spec each topic was created with by `create_topic` (topics
    /// created automatically have none: broker defaults).
    specs: RwLock<FxHashMap<String, TopicSpec>>,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    next_consumer: AtomicU64,
    retained: Arc<Retained>,
    max_block_ms: AtomicU64,
}

impl Inner {
    fn rebalance_timeout(&self) -> Duration {
        Duration::from_nanos(self.rebalance_timeout_ns.load(Ordering::Relaxed))
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topic, created with at least `min_partitions` (and the default
    /// count) partitions if it does not exist.
    fn topic_or_create(&self, name: &str, min_partitions: i32) -> Result<Arc<Topic>> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        validate_topic_name(name)?;
        let partitions = self
            .default_partitions
            .load(Ordering::Relaxed)
            .max(min_partitions)
            .max(1);
        let mut created = false;
        let topic = self
            .topics
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                tracing::debug!(
                    topic = name,
                    partitions,
                    "memory broker: auto-created topic"
                );
                created = true;
                Arc::new(Topic::new(name, partitions, &self.retained))
            })
            .clone();
        if created {
            self.created(&topic);
        }
        Ok(topic)
    }

    /// A topic was created: groups with a matching pattern read it.
    fn created(&self, topic: &Arc<Topic>) {
        let groups: Vec<_> = self.groups.lock().values().cloned().collect();
        for group in groups {
            group
                .lock()
                .topic_created(topic, Instant::now(), self.rebalance_timeout());
        }
    }
}

/// The embedded in-memory broker: a [`Transport`] for `memory://` URLs.
///
/// See the [module documentation](self) for its semantics. Clones of the
/// `Arc` returned by [`MemoryBroker::named`] share one broker; separate
/// brokers share nothing.
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topics = self.inner.topics.read().len();
        f.debug_struct("MemoryBroker")
            .field("url", &self.inner.url)
            .field("topics", &topics)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<MemoryBroker>>>> = OnceLock::new();
static PRIVATE: std_atomic::AtomicU64 = std_atomic::AtomicU64::new(1);

impl MemoryBroker {
    /// Whether a record sent now must wait for room: the broker holds
    /// `max_bytes` and the send does not come from an agent's processing.
    #[inline]
    fn must_wait(&self) -> bool {
        self.inner.retained.is_full() && !crate::agent::trace::in_actor()
    }

    /// Wait for room for a send, until [`DEFAULT_MAX_BLOCK`] (or the
    /// configured `max_block`) has passed.
    async fn wait_for_room(&self, topic: &str) -> Result<()> {
        let max_block = self.max_block();
        let deadline = Instant::now() + max_block;
        while self.must_wait() {
            if Instant::now() >= deadline {
                let retained = &self.inner.retained;
                return Err(Error::Timeout {
                    what: format!(
                        "room for a record to topic `{topic}` in the broker {}: it holds {} bytes \
                         its consumers have not committed (max_bytes={})",
                        self.inner.url,
                        retained.bytes(),
                        retained.max()
                    ),
                    after: max_block,
                });
            }
            self.inner.retained.room(deadline).await;
        }
        Ok(())
    }

    /// Append a record to its partition (synchronous: nothing waits).
    fn append(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        {
            // Existing topic (the common case): no reference count to touch.
            let topics = self.inner.topics.read();
            if let Some(topic) = topics.get(&*record.topic) {
                return Self::append_to(topic, record);
            }
        }
        let topic = self.inner.topic_or_create(&record.topic, 1)?;
        Self::append_to(&topic, record)
    }

    fn append_to(topic: &Topic, record: ProducerRecord) -> Result<RecordMetadata> {
        let count = topic.count();
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => {
                if p < 0 || p >= count {
                    return Err(Error::Broker(format!(
                        "partition {p} of topic `{}` does not exist (it has {count})",
                        record.topic
                    )));
                }
                p
            }
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => {
                (topic.round_robin.fetch_add(1, Ordering::Relaxed) % topic.partitions.len()) as i32
            }
        };
        let timestamp = record.timestamp.unwrap_or_else(coarse_now_millis);
        let offset = topic.partitions[partition as usize].append(Stored {
            timestamp,
            key: record.key,
            value: record.value,
            headers: record.headers,
        });
        Ok(RecordMetadata {
            topic: record.topic,
            partition,
            offset,
            timestamp,
        })
    }

    fn with_url(url: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                url,
                default_partitions: AtomicI32::new(DEFAULT_PARTITIONS),
                rebalance_timeout_ns: AtomicU64::new(DEFAULT_REBALANCE_TIMEOUT.as_nanos() as u64),
                topics: RwLock::new(FxHashMap::default()),
                specs: RwLock::new(FxHashMap::default()),
                groups: Mutex::new(HashMap::new()),
                next_consumer: AtomicU64::new(1),
                retained: Arc::new(Retained::new(DEFAULT_MAX_BYTES)),
                max_block_ms: AtomicU64::new(DEFAULT_MAX_BLOCK.as_millis() as u64),
            }),
        }
    }

    /// A private broker, shared with nobody (its URL, `memory://<private-N>`,
    /// is for display only: connecting to it does not reach this broker).
    pub fn new() -> Self {
        let n = PRIVATE.fetch_add(1, Ordering::Relaxed);
        Self::with_url(format!("memory://<private-{n}>"))
    }

    /// The process-wide broker called `name` (URL `memory://<name>`; the
    /// empty name is the default broker of `memory://`). The same name
    /// always returns the same broker.
    pub fn named(name: &str) -> Arc<dyn Transport> {
        Self::shared(name)
    }

    /// [`named`](Self::named), as the concrete type (for its settings and
    /// inspection methods).
    pub fn shared(name: &str) -> Arc<MemoryBroker> {
        let registry = REGISTRY.get_or_init(|| Mutex::new(HashMap::new()));
        registry
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Self::with_url(format!("memory://{name}"))))
            .clone()
    }

    /// The broker of a `memory://[<name>][?max_bytes=N&max_block_ms=M]`
    /// URL: the process-wide broker `name` (see [`named`](Self::named)),
    /// with the settings the URL gives (`max_bytes` takes a number of bytes,
    /// or one with a `KiB`, `MiB` or `GiB` suffix).
    pub fn from_url(url: &str) -> Result<Arc<dyn Transport>> {
        let bad = |reason: String| Error::BrokerUrl {
            url: crate::redact::redact_url(url),
            reason,
        };
        let rest = url
            .strip_prefix("memory://")
            .ok_or_else(|| bad("expected `memory://`".into()))?;
        let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut max_bytes = None;
        let mut max_block = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "max_bytes" => {
                    max_bytes = Some(parse_bytes(value).ok_or_else(|| {
                        bad(format!(
                            "`max_bytes={value}` is not a size (bytes, or with KiB, MiB or GiB)"
                        ))
                    })?)
                }
                "max_block_ms" => {
                    let ms: u64 = value.parse().map_err(|_| {
                        bad(format!(
                            "`max_block_ms={value}` is not a number of milliseconds"
                        ))
                    })?;
                    max_block = Some(Duration::from_millis(ms));
                }
                other => {
                    return Err(bad(format!(
                        "unknown setting `{other}` (memory:// takes max_bytes and max_block_ms)"
                    )))
                }
            }
        }
        let broker = Self::shared(name);
        if let Some(max_bytes) = max_bytes {
            broker.set_max_bytes(max_bytes);
        }
        if let Some(max_block) = max_block {
            broker.set_max_block(max_block);
        }
        Ok(broker)
    }

    /// Set the partition count of automatically created topics.
    pub fn with_default_partitions(self, partitions: i32) -> Self {
        self.set_default_partitions(partitions);
        self
    }

    /// Set how long a rebalance waits for a member to release a revoked
    /// partition before giving it to its new owner anyway.
    pub fn with_rebalance_timeout(self, timeout: Duration) -> Self {
        self.set_rebalance_timeout(timeout);
        self
    }

    /// Set how many bytes of records the broker retains before sends from
    /// outside agents wait for consumers to free room (see
    /// [`DEFAULT_MAX_BYTES`]).
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        self.set_max_bytes(max_bytes);
        self
    }

    /// Set how long a send waits for room before it fails (see
    /// [`DEFAULT_MAX_BLOCK`]).
    pub fn with_max_block(self, max_block: Duration) -> Self {
        self.set_max_block(max_block);
        self
    }

    /// Like [`with_max_bytes`](Self::with_max_bytes), for a shared broker.
    pub fn set_max_bytes(&self, max_bytes: usize) {
        self.inner.retained.set_max(max_bytes);
    }

    /// Like [`with_max_block`](Self::with_max_block), for a shared broker.
    pub fn set_max_block(&self, max_block: Duration) {
        let ms = u64::try_from(max_block.as_millis()).unwrap_or(u64::MAX);
        self.inner.max_block_ms.store(ms, Ordering::Relaxed);
    }

    /// Bytes of records the broker retains now, as counted against
    /// `max_bytes` (each partition counts its newest records in steps of
    /// 64 KiB, so this may lag by up to that much per partition).
    pub fn retained_bytes(&self) -> usize {
        self.inner.retained.bytes()
    }

    /// The bound on [`retained_bytes`](Self::retained_bytes).
    pub fn max_bytes(&self) -> usize {
        self.inner.retained.max()
    }

    /// How long a send waits for room before it fails.
    pub fn max_block(&self) -> Duration {
        Duration::from_millis(self.inner.max_block_ms.load(Ordering::Relaxed))
    }

    /// Like [`with_default_partitions`](Self::with_default_partitions), for a
    /// shared broker; affects topics created afterwards.
    pub fn set_default_partitions(&self, partitions: i32) {
        self.inner
            .default_partitions
            .store(partitions.max(1), Ordering::Relaxed);
    }

    /// Like [`with_rebalance_timeout`](Self::with_rebalance_timeout), for a
    /// shared broker; affects rebalances started afterwards.
    pub fn set_rebalance_timeout(&self, timeout: Duration) {
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.inner.rebalance_timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// Names of the existing topics, sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.topics.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Offset the next record of this partition will get (its record count),
    /// or `None` if the partition does not exist.
    pub fn end_offset(&self, tp: &TopicPartition) -> Option<i64> {
        self.inner
            .topic(&tp.topic)
            .and_then(|t| t.partition(tp.partition).map(Partition::end))
    }

    /// Offset of the oldest retained record of this partition (records
    /// below it were freed), or `None` if the partition does not exist.
    pub fn start_offset(&self, tp: &TopicPartition) -> Option<i64> {
        self.inner
            .topic(&tp.topic)
            .and_then(|t| t.partition(tp.partition).map(|p| p.start()))
    }

    /// Offset committed by `group` for this partition.
    pub fn committed_offset(&self, group: &str, tp: &TopicPartition) -> Option<i64> {
        let group = self.inner.groups.lock().get(group).cloned()?;
        let offset = group.lock().committed(tp);
        offset
    }
}

/// `123`, `64KiB`, `256MiB` or `1GiB` as bytes.
fn parse_bytes(value: &str) -> Option<usize> {
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, ""),
    };
    let scale: usize = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

#[async_trait]
impl Transport for MemoryBroker {
    fn url(&self) -> &str {
        &self.inner.url
    }

    async fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        spec.validate()?;
        let mut created = None;
        self.inner
            .topics
            .write()
            .entry(spec.name.clone())
            .or_insert_with(|| {
                let topic = Arc::new(Topic::new(
                    &spec.name,
                    spec.partitions,
                    &self.inner.retained,
                ));
                created = Some(topic.clone());
                topic
            });
        if let Some(topic) = created {
            let mut spec = spec.clone();
            spec.partitions = topic.count();
            self.inner.specs.write().insert(spec.name.clone(), spec);
            self.inner.created(&topic);
        }
        Ok(())
    }

    /// Consumers reading the topic keep what they hold; a topic created
    /// again under its name starts empty.
    async fn delete_topic(&self, topic: &str) -> Result<()> {
        self.inner.topics.write().remove(topic);
        self.inner.specs.write().remove(topic);
        Ok(())
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        Ok(self.inner.topic(topic).map(|t| t.count()))
    }

    /// The spec the topic was created with (its `configs` left out); for a
    /// topic created automatically, its partitions, replication 1 and
    /// broker defaults.
    async fn describe_topic(&self, topic: &str) -> Result<Option<TopicSpec>> {
        let Some(found) = self.inner.topic(topic) else {
            return Ok(None);
        };
        let spec = self.inner.specs.read().get(topic).cloned();
        Ok(Some(match spec {
            Some(spec) => TopicSpec {
                configs: Vec::new(),
                ..spec
            },
            None => TopicSpec::new(topic, found.count()),
        }))
    }

    async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        // Appending never waits; a loop of sends still yields to the other
        // tasks of its thread now and then (tokio's cooperative budget),
        // as a send to Kafka would. Without this, a producer loop starves
        // the agents woken on its thread until it ends.
        tokio::task::consume_budget().await;
        if self.must_wait() {
            self.wait_for_room(&record.topic).await?;
        }
        self.append(record)
    }

    fn try_enqueue(&self, record: ProducerRecord) -> Result<Enqueued> {
        if self.must_wait() {
            return Ok(Enqueued::WouldWait(record));
        }
        // Appending never waits: the record is delivered already.
        Ok(Enqueued::Delivered(self.append(record)?))
    }

    async fn flush(&self, _timeout: Duration) -> Result<()> {
        Ok(())
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Consumer>> {
        let mut topics: Vec<Arc<Topic>> = Vec::with_capacity(options.topics.len());
        for name in &options.topics {
            if topics.iter().all(|t| &*t.name != name.as_str()) {
                topics.push(self.inner.topic_or_create(name, 1)?);
            }
        }
        let matching: Vec<Arc<Topic>> = self
            .inner
            .topics
            .read()
            .values()
            .filter(|t| options.patterns.iter().any(|p| p.matches(&t.name)))
            .cloned()
            .collect();
        for topic in matching {
            if topics.iter().all(|t| t.name != topic.name) {
                topics.push(topic);
            }
        }
        let group = self
            .inner
            .groups
            .lock()
            .entry(options.group.clone())
            .or_insert_with(|| {
                let id = self.inner.next_consumer.fetch_add(1, Ordering::Relaxed);
                Arc::new(Mutex::new(Group::new(id, &options.group)))
            })
            .clone();
        let id = self.inner.next_consumer.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        group.lock().join(
            id,
            Subscription {
                topics,
                patterns: options.patterns.clone(),
            },
            notify.clone(),
            options.offset_reset,
            Instant::now(),
            self.inner.rebalance_timeout(),
        );
        tracing::debug!(group = %options.group, member = id, topics = ?options.topics, "memory broker: member joined");
        Ok(Box::new(MemoryConsumer::new(
            self.inner.clone(),
            id,
            notify,
            Some(group),
            None,
        )))
    }

    async fn assign(&self, partitions: Vec<TopicPartition>) -> Result<Box<dyn Consumer>> {
        let tps = dedup_partitions(partitions)?;
        let mut fetch = Vec::with_capacity(tps.len());
        for tp in &tps {
            let needed = tps
                .iter()
                .filter(|t| t.topic == tp.topic)
                .map(|t| t.partition + 1)
                .max()
                .unwrap_or(1);
            let topic = self.inner.topic_or_create(&tp.topic, needed)?;
            if tp.partition < 0 || tp.partition >= topic.count() {
                return Err(Error::Broker(format!(
                    "cannot assign {tp}: topic `{}` has {} partitions",
                    tp.topic,
                    topic.count()
                )));
            }
            fetch.push(Fetch {
                tp: tp.clone(),
                topic,
                position: 0,
            });
        }
        let id = self.inner.next_consumer.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let mut consumer = MemoryConsumer::new(self.inner.clone(), id, notify, None, Some(tps));
        for f in fetch {
            f.partition().add_reader(id, f.position);
            consumer.start_fetch(f);
        }
        Ok(Box::new(consumer))
    }
}
