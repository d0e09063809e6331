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
//!   only a few milliseconds of records. `TopicSpec::retention` is ignored.
//! - **Consumer groups** use range assignment per topic over the members
//!   ordered by join order, and an eager rebalance whenever a member joins or
//!   leaves: a member whose assignment changes first gets
//!   [`ConsumerEvent::Revoked`] with the partitions it loses, then
//!   [`ConsumerEvent::Assigned`] with the ones it gains. A partition moving
//!   from A to B is handed to B only once A has finished its revocation (A
//!   called `poll` again after `Revoked`, or closed or dropped its consumer),
//!   or after the rebalance deadline ([`DEFAULT_REBALANCE_TIMEOUT`]); A is
//!   then fenced: its later commits for that partition fail. B starts at the
//!   group's committed offset, or per [`OffsetReset`] without one.
//! - **Polling** returns rebalance events first, then batches of at most
//!   [`MAX_BATCH`] records shared fairly among the assigned partitions, and
//!   otherwise waits without busy polling: appends wake the consumers
//!   reading the partition. `poll` is cancel-safe.
//! - **Assigned consumers** ([`Transport::assign`]) have no group, read their
//!   partitions from the oldest retained record, and do not commit.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    dedup_partitions, validate_topic_name, CommitFuture, Consumer, ConsumerEvent, Enqueued,
    OffsetReset, SubscribeOptions, TopicSpec, Transport,
};
use crate::error::{Error, Result};
use crate::record::{
    coarse_now_millis, Headers, ProducerRecord, Record, RecordMetadata, TopicPartition,
};

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
const CHUNK: usize = RETENTION_CHUNK;

/// How often consumers of this broker want the runtime to commit (see
/// [`Consumer::commit_interval`]): commits are cheap here and free memory.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(20);

/// Lock a mutex, recovering it if a thread panicked while holding it: no
/// critical section of this module panics halfway through an update.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kafka's murmur2 hash (as in the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = words.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `toPositive(murmur2(key)) % partitions`. `partitions` must be positive.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

// ---------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------

/// A record as stored in a partition log (topic, partition and offset are
/// implied by where it is stored).
struct Stored {
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Headers,
}

/// A consumer waiting for appends to a partition.
struct Watcher {
    consumer: u64,
    notify: Arc<Notify>,
    /// The consumer waits for records: only then do appends wake it (a
    /// wake-up is a read-modify-write on a line the consumer also writes).
    sleeping: Arc<AtomicBool>,
}

struct Log {
    /// Records in chunks of [`CHUNK`], so appending never moves old records.
    chunks: VecDeque<Vec<Stored>>,
    /// Offset of the first record of `chunks[0]` (a multiple of [`CHUNK`]).
    base: i64,
    /// Consumers reading this partition, woken on every append.
    watchers: Vec<Watcher>,
    /// Who still needs records, by id: groups (their committed offset) and
    /// assigned consumers (their position). Records below the lowest are freed.
    readers: Vec<(u64, i64)>,
}

struct Partition {
    /// Number of records (the offset of the next one); written under the log
    /// lock, readable without it.
    end: AtomicI64,
    /// Offset of the oldest retained record; written under the log lock.
    start: AtomicI64,
    log: Mutex<Log>,
}

impl Partition {
    fn new() -> Self {
        Self {
            end: AtomicI64::new(0),
            start: AtomicI64::new(0),
            log: Mutex::new(Log {
                chunks: VecDeque::new(),
                base: 0,
                watchers: Vec::new(),
                readers: Vec::new(),
            }),
        }
    }

    fn end(&self) -> i64 {
        self.end.load(Ordering::Acquire)
    }

    fn start(&self) -> i64 {
        self.start.load(Ordering::Acquire)
    }

    /// Register a reader that needs records from `low` on, unless known.
    fn add_reader(&self, id: u64, low: i64) {
        let mut log = lock(&self.log);
        if !log.readers.iter().any(|(r, _)| *r == id) {
            log.readers.push((id, low));
        }
    }

    /// Reader `id` needs nothing below `low` any more: free what no reader needs.
    fn advance_reader(&self, id: u64, low: i64) {
        let mut log = lock(&self.log);
        match log.readers.iter_mut().find(|(r, _)| *r == id) {
            Some((_, l)) if *l >= low => return,
            Some((_, l)) => *l = low,
            None => log.readers.push((id, low)),
        }
        self.trim(&mut log);
    }

    /// Forget reader `id` (an assigned consumer that closed).
    fn remove_reader(&self, id: u64) {
        let mut log = lock(&self.log);
        log.readers.retain(|(r, _)| *r != id);
        self.trim(&mut log);
    }

    fn trim(&self, log: &mut Log) {
        let Some(low) = log.readers.iter().map(|(_, l)| *l).min() else {
            return;
        };
        let mut freed = false;
        while log.chunks.len() > 1 && log.base + CHUNK as i64 <= low {
            log.chunks.pop_front();
            log.base += CHUNK as i64;
            freed = true;
        }
        if freed {
            self.start.store(log.base, Ordering::Release);
        }
    }

    /// Append a record, wake the readers and return its offset.
    fn append(&self, stored: Stored) -> i64 {
        let mut log = lock(&self.log);
        let offset = self.end.load(Ordering::Relaxed);
        match log.chunks.back_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(stored),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(stored);
                log.chunks.push_back(chunk);
            }
        }
        self.end.store(offset + 1, Ordering::Release);
        // Under the log lock, which a consumer going to sleep takes after
        // saying so: either it sees the new end, or this sees it sleeping.
        for w in &log.watchers {
            if w.sleeping.load(Ordering::Relaxed) {
                w.notify.notify_one();
            }
        }
        offset
    }

    /// Append `count` records from offset `from` (at or above `start()`,
    /// below `end()`) to `out`.
    fn read_into(
        &self,
        topic: &Arc<str>,
        partition: i32,
        from: i64,
        count: usize,
        out: &mut Vec<Record>,
    ) {
        let log = lock(&self.log);
        let base = log.base as usize;
        let mut offset = (from.max(0) as usize).max(base);
        let end = offset + count;
        while offset < end {
            let Some(chunk) = log.chunks.get((offset - base) / CHUNK) else {
                break;
            };
            let start = offset % CHUNK;
            let n = (chunk.len().saturating_sub(start)).min(end - offset);
            if n == 0 {
                break;
            }
            out.extend(
                chunk[start..start + n]
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Record {
                        topic: topic.clone(),
                        partition,
                        offset: (offset + i) as i64,
                        timestamp: s.timestamp,
                        key: s.key.clone(),
                        value: s.value.clone(),
                        headers: s.headers.clone(),
                    }),
            );
            offset += n;
        }
    }

    /// Whether records at or above `position` exist, read under the log
    /// lock (so an append either is seen or sees the reader's state).
    fn has_records_from(&self, position: i64) -> bool {
        let _log = lock(&self.log);
        self.end.load(Ordering::Acquire) > position
    }

    fn watch(&self, consumer: u64, notify: &Arc<Notify>, sleeping: &Arc<AtomicBool>) {
        let mut log = lock(&self.log);
        if !log.watchers.iter().any(|w| w.consumer == consumer) {
            log.watchers.push(Watcher {
                consumer,
                notify: notify.clone(),
                sleeping: sleeping.clone(),
            });
        }
    }

    fn unwatch(&self, consumer: u64) {
        lock(&self.log).watchers.retain(|w| w.consumer != consumer);
    }
}

struct Topic {
    name: Arc<str>,
    partitions: Box<[Partition]>,
    /// Next partition for records without key and partition.
    round_robin: AtomicUsize,
}

impl Topic {
    fn new(name: &str, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions: (0..partitions.max(1)).map(|_| Partition::new()).collect(),
            round_robin: AtomicUsize::new(0),
        }
    }

    fn count(&self) -> i32 {
        self.partitions.len() as i32
    }

    fn partition(&self, p: i32) -> Option<&Partition> {
        usize::try_from(p).ok().and_then(|p| self.partitions.get(p))
    }
}

// ---------------------------------------------------------------------------
// Group coordinator
// ---------------------------------------------------------------------------

/// Who holds a partition of a group, and until when it may keep it if a
/// rebalance gave it to someone else.
struct Holder {
    member: u64,
    deadline: Option<Instant>,
}

struct Member {
    topics: Vec<Arc<Topic>>,
    notify: Arc<Notify>,
    offset_reset: OffsetReset,
    /// Assignment decided by the last rebalance.
    target: BTreeSet<TopicPartition>,
    /// Partitions this member holds (announced or about to be announced as
    /// assigned, not yet released).
    held: BTreeSet<TopicPartition>,
    /// Announced as revoked, released at the member's next poll.
    revoking: Vec<TopicPartition>,
    /// Taken away at the rebalance deadline, not yet announced as revoked.
    forced: Vec<TopicPartition>,
    /// Taken away at the rebalance deadline: commits for them fail.
    fenced: HashSet<TopicPartition>,
    /// Something may have changed for this member since its last poll.
    pending: bool,
}

struct Group {
    /// Reader id of the group in partition logs (from the consumer id counter).
    id: u64,
    name: String,
    /// By member id, which is also the join order.
    members: BTreeMap<u64, Member>,
    holders: HashMap<TopicPartition, Holder>,
    committed: HashMap<TopicPartition, i64>,
    /// Earliest holder deadline (may be stale, never late).
    next_deadline: Option<Instant>,
}

impl Group {
    fn new(id: u64, name: &str) -> Self {
        Self {
            id,
            name: name.to_string(),
            members: BTreeMap::new(),
            holders: HashMap::new(),
            committed: HashMap::new(),
            next_deadline: None,
        }
    }

    /// Range assignment per topic over the subscribed members in id order;
    /// members whose assignment changes are woken.
    fn rebalance(&mut self, now: Instant, timeout: Duration) {
        let mut subscribers: BTreeMap<Arc<str>, (usize, Vec<u64>)> = BTreeMap::new();
        for (id, m) in &self.members {
            for t in &m.topics {
                subscribers
                    .entry(t.name.clone())
                    .or_insert_with(|| (t.partitions.len(), Vec::new()))
                    .1
                    .push(*id);
            }
        }
        let mut targets: HashMap<u64, BTreeSet<TopicPartition>> = HashMap::new();
        for (topic, (partitions, ids)) in subscribers {
            let per = partitions / ids.len();
            let extra = partitions % ids.len();
            let mut next = 0;
            for (i, id) in ids.iter().enumerate() {
                let n = per + usize::from(i < extra);
                let target = targets.entry(*id).or_default();
                for p in next..next + n {
                    target.insert(TopicPartition::new(topic.clone(), p as i32));
                }
                next += n;
            }
        }
        for (id, m) in self.members.iter_mut() {
            let target = targets.remove(id).unwrap_or_default();
            if target != m.target {
                m.target = target;
                m.pending = true;
                m.notify.notify_one();
            }
        }
        for (tp, h) in self.holders.iter_mut() {
            let keeps = self
                .members
                .get(&h.member)
                .is_some_and(|m| m.target.contains(tp));
            if keeps {
                h.deadline = None;
            } else if h.deadline.is_none() {
                h.deadline = Some(now + timeout);
            }
        }
        self.next_deadline = self.holders.values().filter_map(|h| h.deadline).min();
        tracing::debug!(
            group = %self.name,
            members = self.members.len(),
            "memory broker: group rebalanced"
        );
    }

    /// Free a partition and wake the member it is assigned to.
    fn release(&mut self, tp: &TopicPartition) {
        self.holders.remove(tp);
        for m in self.members.values_mut() {
            if m.target.contains(tp) {
                m.pending = true;
                m.notify.notify_one();
            }
        }
    }

    /// Take away the partitions whose holders missed the rebalance deadline.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<(TopicPartition, u64)> = self
            .holders
            .iter()
            .filter(|(_, h)| h.deadline.is_some_and(|d| d <= now))
            .map(|(tp, h)| (tp.clone(), h.member))
            .collect();
        for (tp, member) in expired {
            tracing::warn!(
                group = %self.name,
                partition = %tp,
                member,
                "memory broker: rebalance deadline passed before the member released the partition; \
                 handing it to its new owner"
            );
            if let Some(m) = self.members.get_mut(&member) {
                m.held.remove(&tp);
                if let Some(i) = m.revoking.iter().position(|t| *t == tp) {
                    m.revoking.remove(i);
                } else {
                    m.forced.push(tp.clone());
                }
                m.fenced.insert(tp.clone());
                m.pending = true;
                m.notify.notify_one();
            }
            self.release(&tp);
        }
        self.next_deadline = self.holders.values().filter_map(|h| h.deadline).min();
    }

    /// Remove a member, free its partitions at once and rebalance.
    fn leave(&mut self, id: u64, now: Instant, timeout: Duration) {
        let Some(m) = self.members.remove(&id) else {
            return;
        };
        self.rebalance(now, timeout);
        for tp in &m.held {
            if self.holders.get(tp).is_some_and(|h| h.member == id) {
                self.release(tp);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------

struct Inner {
    url: String,
    default_partitions: AtomicI32,
    rebalance_timeout_ns: AtomicU64,
    topics: RwLock<FxHashMap<String, Arc<Topic>>>,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    next_consumer: AtomicU64,
}

impl Inner {
    fn rebalance_timeout(&self) -> Duration {
        Duration::from_nanos(self.rebalance_timeout_ns.load(Ordering::Relaxed))
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
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
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let topic = topics
            .entry(name.to_string())
            .or_insert_with(|| {
                tracing::debug!(
                    topic = name,
                    partitions,
                    "memory broker: auto-created topic"
                );
                Arc::new(Topic::new(name, partitions))
            })
            .clone();
        Ok(topic)
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
        let topics = self
            .inner
            .topics
            .read()
            .map(|t| t.len())
            .unwrap_or_else(|e| e.into_inner().len());
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
static PRIVATE: AtomicU64 = AtomicU64::new(1);

impl MemoryBroker {
    /// Append a record to its partition (synchronous: nothing waits).
    fn append(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        {
            // Existing topic (the common case): no reference count to touch.
            let topics = self.inner.topics.read().unwrap_or_else(|e| e.into_inner());
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
                groups: Mutex::new(HashMap::new()),
                next_consumer: AtomicU64::new(1),
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
        lock(registry)
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Self::with_url(format!("memory://{name}"))))
            .clone()
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
        let mut names: Vec<String> = self
            .inner
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
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
        let group = lock(&self.inner.groups).get(group).cloned()?;
        let offset = lock(&group).committed.get(tp).copied();
        offset
    }
}

#[async_trait]
impl Transport for MemoryBroker {
    fn url(&self) -> &str {
        &self.inner.url
    }

    async fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        spec.validate()?;
        let mut topics = self.inner.topics.write().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(spec.name.clone())
            .or_insert_with(|| Arc::new(Topic::new(&spec.name, spec.partitions)));
        Ok(())
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        Ok(self.inner.topic(topic).map(|t| t.count()))
    }

    async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        // Appending never waits; a loop of sends still yields to the other
        // tasks of its thread now and then (tokio's cooperative budget),
        // as a send to Kafka would. Without this, a producer loop starves
        // the agents woken on its thread until it ends.
        tokio::task::consume_budget().await;
        self.append(record)
    }

    fn try_enqueue(&self, record: ProducerRecord) -> Result<Enqueued> {
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
        let group = lock(&self.inner.groups)
            .entry(options.group.clone())
            .or_insert_with(|| {
                let id = self.inner.next_consumer.fetch_add(1, Ordering::Relaxed);
                Arc::new(Mutex::new(Group::new(id, &options.group)))
            })
            .clone();
        let id = self.inner.next_consumer.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        {
            let mut g = lock(&group);
            // The group needs its topics' records from its committed offsets.
            for topic in &topics {
                for (p, partition) in topic.partitions.iter().enumerate() {
                    let tp = TopicPartition::new(topic.name.clone(), p as i32);
                    partition.add_reader(g.id, g.committed.get(&tp).copied().unwrap_or(0));
                }
            }
            g.members.insert(
                id,
                Member {
                    topics,
                    notify: notify.clone(),
                    offset_reset: options.offset_reset,
                    target: BTreeSet::new(),
                    held: BTreeSet::new(),
                    revoking: Vec::new(),
                    forced: Vec::new(),
                    fenced: HashSet::new(),
                    pending: true,
                },
            );
            g.rebalance(Instant::now(), self.inner.rebalance_timeout());
        }
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

// ---------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------

/// A partition a consumer reads.
struct Fetch {
    tp: TopicPartition,
    topic: Arc<Topic>,
    /// Offset of the next record to return.
    position: i64,
}

impl Fetch {
    fn partition(&self) -> &Partition {
        &self.topic.partitions[self.tp.partition as usize]
    }
}

struct MemoryConsumer {
    broker: Arc<Inner>,
    id: u64,
    notify: Arc<Notify>,
    /// Set while `poll` waits for records (see `Watcher::sleeping`).
    sleeping: Arc<AtomicBool>,
    group: Option<Arc<Mutex<Group>>>,
    fetch: Vec<Fetch>,
    /// First partition of the next batch (round-robin fairness).
    cursor: usize,
    /// The `Assigned` event of an assigned consumer's first poll.
    initial: Option<Vec<TopicPartition>>,
    /// Per fetched partition: (available, taken) while building a batch.
    scratch: Vec<(usize, usize)>,
    left: bool,
}

impl MemoryConsumer {
    fn new(
        broker: Arc<Inner>,
        id: u64,
        notify: Arc<Notify>,
        group: Option<Arc<Mutex<Group>>>,
        initial: Option<Vec<TopicPartition>>,
    ) -> Self {
        Self {
            broker,
            id,
            notify,
            sleeping: Arc::new(AtomicBool::new(false)),
            group,
            fetch: Vec::new(),
            cursor: 0,
            initial,
            scratch: Vec::new(),
            left: false,
        }
    }

    fn start_fetch(&mut self, f: Fetch) {
        f.partition().watch(self.id, &self.notify, &self.sleeping);
        self.fetch.push(f);
    }

    fn stop_fetch(&mut self, tps: &[TopicPartition]) {
        let id = self.id;
        self.fetch.retain(|f| {
            let keep = !tps.contains(&f.tp);
            if !keep {
                f.partition().unwatch(id);
            }
            keep
        });
    }

    /// Rebalance bookkeeping of a group member: the next event, or how long
    /// the member may wait for one (a holder's deadline).
    fn group_step(
        &mut self,
        group: &Mutex<Group>,
    ) -> Result<(Option<ConsumerEvent>, Option<Instant>)> {
        let mut guard = lock(group);
        let g = &mut *guard;
        let now = Instant::now();
        let id = self.id;
        let gone = || Error::Stopped(format!("memory broker consumer {id} (it left its group)"));

        // 1. A poll after `Revoked` releases the revoked partitions.
        let confirmed = std::mem::take(&mut g.members.get_mut(&id).ok_or_else(gone)?.revoking);
        for tp in &confirmed {
            if let Some(m) = g.members.get_mut(&id) {
                m.held.remove(tp);
            }
            if g.holders.get(tp).is_some_and(|h| h.member == id) {
                g.release(tp);
            }
        }

        // 2. Holders that missed the rebalance deadline lose their partitions.
        if g.next_deadline.is_some_and(|d| d <= now) {
            g.expire(now);
        }

        let m = g.members.get_mut(&id).ok_or_else(gone)?;
        if !m.pending {
            return Ok((None, None));
        }

        // 3. Partitions this member loses.
        let lost: Vec<TopicPartition> = m
            .held
            .iter()
            .filter(|tp| !m.target.contains(*tp))
            .cloned()
            .collect();
        if !lost.is_empty() || !m.forced.is_empty() {
            let mut revoked = lost.clone();
            revoked.append(&mut m.forced);
            revoked.sort();
            revoked.dedup();
            m.revoking = lost;
            self.stop_fetch(&revoked);
            return Ok((Some(ConsumerEvent::Revoked(revoked)), None));
        }

        // 4. Partitions this member gains, once their previous holders released them.
        let mut acquired = Vec::new();
        let mut wait: Option<Instant> = None;
        for tp in &m.target {
            if m.held.contains(tp) {
                continue;
            }
            match g.holders.get(tp) {
                Some(h) => {
                    if let Some(d) = h.deadline {
                        wait = Some(wait.map_or(d, |w| w.min(d)));
                    }
                }
                None => acquired.push(tp.clone()),
            }
        }
        let mut fetches = Vec::with_capacity(acquired.len());
        for tp in &acquired {
            let Some(topic) = m.topics.iter().find(|t| t.name == tp.topic).cloned() else {
                continue;
            };
            let Some(partition) = topic.partition(tp.partition) else {
                continue;
            };
            let (start, end) = (partition.start(), partition.end());
            let position = match g.committed.get(tp) {
                Some(&o) if (start..=end).contains(&o) => o,
                _ => match m.offset_reset {
                    OffsetReset::Earliest => start,
                    OffsetReset::Latest => end,
                },
            };
            g.holders.insert(
                tp.clone(),
                Holder {
                    member: id,
                    deadline: None,
                },
            );
            m.held.insert(tp.clone());
            m.fenced.remove(tp);
            fetches.push(Fetch {
                tp: tp.clone(),
                topic,
                position,
            });
        }
        m.pending = m.held.len() != m.target.len();
        drop(guard);
        for f in fetches {
            self.start_fetch(f);
        }
        if acquired.is_empty() {
            Ok((None, wait))
        } else {
            Ok((Some(ConsumerEvent::Assigned(acquired)), None))
        }
    }

    /// Take a batch of available records, shared fairly among the partitions.
    fn fetch_records(&mut self) -> Option<Vec<Record>> {
        let n = self.fetch.len();
        if n == 0 {
            return None;
        }
        self.scratch.clear();
        let mut total = 0usize;
        for f in &mut self.fetch {
            // Records below the log start were freed (only a group that
            // joined late or an assigned consumer starting at 0 sees this).
            f.position = f.position.max(f.partition().start());
            let available = (f.partition().end() - f.position).max(0) as usize;
            total += available;
            self.scratch.push((available, 0));
        }
        if total == 0 {
            return None;
        }
        let start = self.cursor % n;
        self.cursor = start + 1;
        if total <= MAX_BATCH {
            for s in &mut self.scratch {
                s.1 = s.0;
            }
        } else {
            // Water-filling: equal shares, leftovers to the partitions with more.
            let mut remaining = MAX_BATCH;
            while remaining > 0 {
                let hungry = self.scratch.iter().filter(|(a, t)| t < a).count();
                if hungry == 0 {
                    break;
                }
                let share = (remaining / hungry).max(1);
                for k in 0..n {
                    let (available, taken) = &mut self.scratch[(start + k) % n];
                    if *taken < *available {
                        let more = (*available - *taken).min(share).min(remaining);
                        *taken += more;
                        remaining -= more;
                        if remaining == 0 {
                            break;
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(total.min(MAX_BATCH));
        for k in 0..n {
            let i = (start + k) % n;
            let take = self.scratch[i].1;
            if take == 0 {
                continue;
            }
            let f = &mut self.fetch[i];
            let before = out.len();
            f.partition()
                .read_into(&f.topic.name, f.tp.partition, f.position, take, &mut out);
            f.position += (out.len() - before) as i64;
            if self.group.is_none() {
                f.partition().advance_reader(self.id, f.position);
            }
        }
        Some(out)
    }

    /// Leave the group and stop reading (idempotent).
    fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        let id = self.id;
        for f in self.fetch.drain(..) {
            f.partition().unwatch(id);
            if self.group.is_none() {
                f.partition().remove_reader(id);
            }
        }
        if let Some(group) = &self.group {
            let mut g = lock(group);
            g.leave(id, Instant::now(), self.broker.rebalance_timeout());
            tracing::debug!(group = %g.name, member = id, "memory broker: member left");
        }
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    fn commit_interval(&self) -> Option<Duration> {
        self.group.is_some().then_some(COMMIT_INTERVAL)
    }

    fn rebalance_pending(&self) -> bool {
        self.initial.is_some()
            || self.group.as_ref().is_some_and(|g| {
                lock(g)
                    .members
                    .get(&self.id)
                    .is_some_and(|m| m.pending || !m.revoking.is_empty())
            })
    }

    async fn poll(&mut self) -> Result<ConsumerEvent> {
        if self.left {
            return Err(Error::Stopped("memory broker consumer".into()));
        }
        loop {
            // Everything up to returning an event is synchronous: dropping
            // this future at the await below loses nothing.
            if let Some(tps) = self.initial.take() {
                return Ok(ConsumerEvent::Assigned(tps));
            }
            let mut wait = None;
            if let Some(group) = self.group.clone() {
                let (event, deadline) = self.group_step(&group)?;
                if let Some(event) = event {
                    return Ok(event);
                }
                wait = deadline;
            }
            if let Some(records) = self.fetch_records() {
                return Ok(ConsumerEvent::Records(records));
            }
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Appends wake only a sleeping consumer: say so, then look
            // once more under each log's lock (see `Partition::append`).
            self.sleeping.store(true, Ordering::Relaxed);
            if self
                .fetch
                .iter()
                .any(|f| f.partition().has_records_from(f.position))
            {
                self.sleeping.store(false, Ordering::Relaxed);
                continue;
            }
            match wait {
                Some(deadline) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => notified.await,
            }
            self.sleeping.store(false, Ordering::Relaxed);
        }
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.commit_now(offsets)
    }

    /// Commits here are immediate: the outcome is ready at once.
    fn start_commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Option<CommitFuture> {
        Some(Box::pin(std::future::ready(self.commit_now(offsets))))
    }

    async fn committed(&mut self, tp: &TopicPartition) -> Result<Option<i64>> {
        Ok(self
            .group
            .as_ref()
            .and_then(|g| lock(g).committed.get(tp).copied()))
    }

    async fn close(mut self: Box<Self>, _timeout: Duration) -> Result<()> {
        self.leave();
        Ok(())
    }
}

impl MemoryConsumer {
    /// Commit `offsets` for the group (synchronous: nothing waits).
    fn commit_now(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let mut g = lock(group);
        let g = &mut *g;
        let fenced = g.members.get(&self.id).map(|m| &m.fenced);
        let mut rejected = Vec::new();
        for (tp, offset) in offsets {
            let allowed = match g.holders.get(tp) {
                Some(h) => h.member == self.id,
                None => !fenced.is_some_and(|f| f.contains(tp)),
            };
            if allowed && !self.left {
                g.committed.insert(tp.clone(), *offset);
                let partition = g
                    .members
                    .get(&self.id)
                    .and_then(|m| m.topics.iter().find(|t| t.name == tp.topic))
                    .and_then(|t| t.partition(tp.partition));
                if let Some(partition) = partition {
                    partition.advance_reader(g.id, *offset);
                }
            } else {
                rejected.push(tp.to_string());
            }
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(Error::Broker(format!(
                "commit rejected for {} of group `{}`: reassigned to another member after a rebalance",
                rejected.join(", "),
                g.name
            )))
        }
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);

    fn tp(topic: &str, p: i32) -> TopicPartition {
        TopicPartition::new(topic, p)
    }

    fn broker() -> Arc<MemoryBroker> {
        Arc::new(MemoryBroker::new())
    }

    async fn poll(c: &mut Box<dyn Consumer>) -> ConsumerEvent {
        timeout(WAIT, c.poll())
            .await
            .expect("poll timed out")
            .expect("poll failed")
    }

    /// Poll for `d`; `None` if nothing came.
    async fn poll_for(c: &mut Box<dyn Consumer>, d: Duration) -> Option<ConsumerEvent> {
        timeout(d, c.poll())
            .await
            .ok()
            .map(|r| r.expect("poll failed"))
    }

    async fn send(b: &MemoryBroker, topic: &str, key: Option<&str>, value: &str) -> RecordMetadata {
        let mut r = ProducerRecord::new(topic, value.to_string());
        r.key = key.map(|k| Bytes::from(k.to_string()));
        b.send(r).await.expect("send")
    }

    async fn send_to(b: &MemoryBroker, topic: &str, partition: i32, value: &str) -> RecordMetadata {
        let mut r = ProducerRecord::new(topic, value.to_string());
        r.partition = Some(partition);
        b.send(r).await.expect("send")
    }

    async fn join(b: &MemoryBroker, group: &str, topic: &str) -> Box<dyn Consumer> {
        b.subscribe(SubscribeOptions {
            group: group.into(),
            topics: vec![topic.into()],
            offset_reset: OffsetReset::Earliest,
        })
        .await
        .expect("subscribe")
    }

    /// A group member driven by the tests, checking the protocol as it goes.
    struct M {
        c: Box<dyn Consumer>,
        assigned: BTreeSet<TopicPartition>,
        next: BTreeMap<TopicPartition, i64>,
        seen: Vec<Record>,
        events: Vec<String>,
        commit_on_revoke: bool,
    }

    impl M {
        fn new(c: Box<dyn Consumer>) -> Self {
            Self {
                c,
                assigned: BTreeSet::new(),
                next: BTreeMap::new(),
                seen: Vec::new(),
                events: Vec::new(),
                commit_on_revoke: true,
            }
        }

        /// Poll once for at most `d`; true if an event came.
        async fn step(&mut self, d: Duration) -> bool {
            let Some(ev) = poll_for(&mut self.c, d).await else {
                return false;
            };
            match ev {
                ConsumerEvent::Records(rs) => {
                    assert!(!rs.is_empty());
                    for r in rs {
                        let tp = r.topic_partition();
                        assert!(self.assigned.contains(&tp), "record of unassigned {tp}");
                        if let Some(n) = self.next.get(&tp) {
                            assert_eq!(r.offset, *n, "offsets of {tp} not consecutive");
                        }
                        self.next.insert(tp, r.offset + 1);
                        self.seen.push(r);
                    }
                }
                ConsumerEvent::Revoked(tps) => {
                    self.events.push(format!("revoked {tps:?}"));
                    assert!(!tps.is_empty());
                    let mut offsets = Vec::new();
                    for tp in &tps {
                        assert!(self.assigned.remove(tp), "revoked {tp} not assigned");
                        if let Some(n) = self.next.remove(tp) {
                            offsets.push((tp.clone(), n));
                        }
                    }
                    if self.commit_on_revoke {
                        self.c.commit(&offsets).await.expect("commit on revoke");
                    }
                }
                ConsumerEvent::Assigned(tps) => {
                    self.events.push(format!("assigned {tps:?}"));
                    assert!(!tps.is_empty());
                    for tp in tps {
                        assert!(self.assigned.insert(tp.clone()), "{tp} assigned twice");
                    }
                }
            }
            true
        }

        async fn commit_all(&mut self) {
            let offsets: Vec<_> = self.next.iter().map(|(t, o)| (t.clone(), *o)).collect();
            self.c.commit(&offsets).await.expect("commit");
        }
    }

    /// Step every member in turn until `done` holds (panics after 10 s).
    async fn drive(ms: &mut [&mut M], done: impl Fn(&[&mut M]) -> bool) {
        let start = std::time::Instant::now();
        while !done(ms) {
            assert!(start.elapsed() < Duration::from_secs(10), "drive timed out");
            for m in ms.iter_mut() {
                m.step(Duration::from_millis(5)).await;
            }
        }
    }

    fn sizes(ms: &[&mut M]) -> Vec<usize> {
        ms.iter().map(|m| m.assigned.len()).collect()
    }

    fn total_seen(ms: &[&mut M]) -> usize {
        ms.iter().map(|m| m.seen.len()).sum()
    }

    /// Every (partition, offset) of `ms` exactly once, and all of `expected`.
    fn assert_exactly_once(ms: &[&mut M], expected: usize) {
        let mut all = BTreeSet::new();
        for m in ms {
            for r in &m.seen {
                assert!(
                    all.insert((r.partition, r.offset)),
                    "duplicate {}@{}",
                    r.partition,
                    r.offset
                );
            }
        }
        assert_eq!(all.len(), expected);
    }

    #[test]
    fn murmur2_matches_kafka() {
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
        // 1173551340 % 8
        assert_eq!(partition_for_key(b"21", 8), 4);
    }

    #[tokio::test]
    async fn produce_consume_in_order_with_offsets() {
        let b = broker();
        b.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
        for i in 0..10 {
            let md = send(&b, "t", None, &format!("v{i}")).await;
            assert_eq!((&*md.topic, md.partition, md.offset), ("t", 0, i));
        }
        let mut c = b.assign(vec![tp("t", 0)]).await.unwrap();
        assert_eq!(
            poll(&mut c).await,
            ConsumerEvent::Assigned(vec![tp("t", 0)])
        );
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        let got: Vec<(i64, Bytes)> = rs
            .iter()
            .map(|r| (r.offset, r.value.clone().unwrap()))
            .collect();
        let want: Vec<(i64, Bytes)> = (0..10).map(|i| (i, Bytes::from(format!("v{i}")))).collect();
        assert_eq!(got, want);
        assert!(rs.iter().all(|r| &*r.topic == "t" && r.partition == 0));
        // Nothing more, then a later record wakes the waiting consumer.
        assert!(poll_for(&mut c, Duration::from_millis(50)).await.is_none());
        let b2 = b.clone();
        let producer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            send(&b2, "t", None, "late").await
        });
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].offset, 10);
        assert_eq!(producer.await.unwrap().offset, 10);
        assert_eq!(b.end_offset(&tp("t", 0)), Some(11));
    }

    #[tokio::test]
    async fn topics_are_created_idempotently_or_automatically() {
        let b = Arc::new(MemoryBroker::new().with_default_partitions(3));
        assert_eq!(b.partition_count("x").await.unwrap(), None);
        b.create_topic(&TopicSpec::new("x", 5)).await.unwrap();
        b.create_topic(&TopicSpec::new("x", 2)).await.unwrap();
        assert_eq!(b.partition_count("x").await.unwrap(), Some(5));
        assert!(b.create_topic(&TopicSpec::new("bad", 0)).await.is_err());
        send(&b, "auto", None, "v").await;
        assert_eq!(b.partition_count("auto").await.unwrap(), Some(3));
        assert_eq!(broker().partition_count("auto").await.unwrap(), None);
        let mut r = ProducerRecord::new("x", "v");
        r.partition = Some(5);
        assert!(matches!(b.send(r).await, Err(Error::Broker(_))));
        assert_eq!(b.topics(), vec!["auto".to_string(), "x".to_string()]);
    }

    #[tokio::test]
    async fn keyed_records_use_kafka_partitioner() {
        let b = broker();
        b.create_topic(&TopicSpec::new("k", 8)).await.unwrap();
        assert_eq!(send(&b, "k", Some("21"), "a").await.partition, 4);
        for key in ["foobar", "abc", "a-little-bit-long-string", "user-17", ""] {
            let p = send(&b, "k", Some(key), "a").await.partition;
            assert_eq!(p, ((murmur2(key.as_bytes()) & 0x7fffffff) % 8));
            for _ in 0..3 {
                assert_eq!(
                    send(&b, "k", Some(key), "b").await.partition,
                    p,
                    "key {key} moved"
                );
            }
        }
    }

    #[tokio::test]
    async fn keyless_records_are_round_robin() {
        let b = broker();
        b.create_topic(&TopicSpec::new("rr", 4)).await.unwrap();
        let parts: Vec<i32> = {
            let mut v = Vec::new();
            for _ in 0..12 {
                v.push(send(&b, "rr", None, "v").await.partition);
            }
            v
        };
        for w in parts.windows(2) {
            assert_eq!(w[1], (w[0] + 1) % 4);
        }
        for p in 0..4 {
            assert_eq!(parts.iter().filter(|x| **x == p).count(), 3);
            assert_eq!(b.end_offset(&tp("rr", p)), Some(3));
        }
    }

    #[tokio::test]
    async fn headers_and_timestamps_are_preserved() {
        let b = broker();
        let headers: Headers = vec![
            ("b".into(), Bytes::from_static(b"1")),
            ("a".into(), Bytes::from_static(b"2")),
            ("b".into(), Bytes::from_static(b"3")),
            ("empty".into(), Bytes::new()),
        ];
        let r = ProducerRecord {
            topic: "h".into(),
            partition: Some(0),
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: headers.clone(),
            timestamp: Some(1_234_567),
        };
        let md = b.send(r).await.unwrap();
        assert_eq!(md.timestamp, 1_234_567);
        // Stamped from the coarse clock: within a few ticks of the precise one.
        let before = crate::record::now_millis();
        let md2 = send_to(&b, "h", 0, "now").await;
        let after = crate::record::now_millis();
        assert!(
            md2.timestamp >= before - 50 && md2.timestamp <= after + 50,
            "{before} <= {} <= {after}",
            md2.timestamp
        );
        let mut c = b.assign(vec![tp("h", 0)]).await.unwrap();
        poll(&mut c).await;
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        assert_eq!(rs[0].headers, headers);
        assert_eq!(rs[0].timestamp, 1_234_567);
        assert_eq!(rs[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(rs[0].value, None);
        assert_eq!(rs[1].timestamp, md2.timestamp);
        assert!(rs[1].headers.is_empty());
    }

    #[tokio::test]
    async fn two_members_split_partitions_and_see_each_record_once() {
        let b = broker();
        b.create_topic(&TopicSpec::new("s", 8)).await.unwrap();
        let mut m1 = M::new(join(&b, "g", "s").await);
        // m1 takes everything first, so m2 must wait for m1's revocation.
        drive(&mut [&mut m1], |ms| sizes(ms) == [8]).await;
        let mut m2 = M::new(join(&b, "g", "s").await);
        drive(&mut [&mut m1, &mut m2], |ms| sizes(ms) == [4, 4]).await;
        assert!(m1.assigned.is_disjoint(&m2.assigned));
        assert_eq!(m1.assigned, (0..4).map(|p| tp("s", p)).collect());
        assert_eq!(m2.assigned, (4..8).map(|p| tp("s", p)).collect());
        assert_eq!(
            m1.events[1],
            format!(
                "revoked {:?}",
                (4..8).map(|p| tp("s", p)).collect::<Vec<_>>()
            )
        );
        for i in 0..1000 {
            send(&b, "s", Some(&format!("key-{i}")), "v").await;
        }
        drive(&mut [&mut m1, &mut m2], |ms| total_seen(ms) == 1000).await;
        assert!(!m1.seen.is_empty() && !m2.seen.is_empty());
        assert_exactly_once(&[&mut m1, &mut m2], 1000);
        // Nothing more for anybody.
        assert!(!m1.step(Duration::from_millis(30)).await);
        assert!(!m2.step(Duration::from_millis(30)).await);
    }

    #[tokio::test]
    async fn handoff_waits_for_revocation_and_starts_at_committed_offset() {
        let b = broker();
        b.create_topic(&TopicSpec::new("h", 2)).await.unwrap();
        for i in 0..10 {
            send_to(&b, "h", 1, &format!("v{i}")).await;
        }
        let mut a = join(&b, "g", "h").await;
        assert_eq!(
            poll(&mut a).await,
            ConsumerEvent::Assigned(vec![tp("h", 0), tp("h", 1)])
        );
        let ConsumerEvent::Records(rs) = poll(&mut a).await else {
            panic!("expected records")
        };
        assert_eq!(rs.len(), 10);
        let mut c = join(&b, "g", "h").await;
        // A has not revoked yet: C gets nothing.
        assert_eq!(poll_for(&mut c, Duration::from_millis(100)).await, None);
        assert_eq!(poll(&mut a).await, ConsumerEvent::Revoked(vec![tp("h", 1)]));
        // A is still revoking (has not polled again): still nothing for C.
        assert_eq!(poll_for(&mut c, Duration::from_millis(100)).await, None);
        a.commit(&[(tp("h", 1), 6)]).await.unwrap();
        assert_eq!(poll_for(&mut a, Duration::from_millis(20)).await, None);
        assert_eq!(
            poll(&mut c).await,
            ConsumerEvent::Assigned(vec![tp("h", 1)])
        );
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        assert_eq!(
            rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![6, 7, 8, 9]
        );
        assert_eq!(c.committed(&tp("h", 1)).await.unwrap(), Some(6));
        assert_eq!(b.committed_offset("g", &tp("h", 1)), Some(6));
        // A no longer owns it: its commits are refused.
        assert!(a.commit(&[(tp("h", 1), 7)]).await.is_err());
    }

    #[tokio::test]
    async fn rebalance_deadline_hands_over_and_fences_the_old_owner() {
        let b = Arc::new(MemoryBroker::new().with_rebalance_timeout(Duration::from_millis(200)));
        b.create_topic(&TopicSpec::new("d", 2)).await.unwrap();
        let mut a = join(&b, "g", "d").await;
        assert_eq!(
            poll(&mut a).await,
            ConsumerEvent::Assigned(vec![tp("d", 0), tp("d", 1)])
        );
        let mut c = join(&b, "g", "d").await;
        let started = std::time::Instant::now();
        // A never polls: C gets partition 1 after the deadline.
        assert_eq!(
            poll(&mut c).await,
            ConsumerEvent::Assigned(vec![tp("d", 1)])
        );
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(a.commit(&[(tp("d", 1), 1)]).await.is_err());
        assert_eq!(poll(&mut a).await, ConsumerEvent::Revoked(vec![tp("d", 1)]));
        send_to(&b, "d", 1, "x").await;
        send_to(&b, "d", 0, "y").await;
        let ConsumerEvent::Records(rs) = poll(&mut a).await else {
            panic!("expected records")
        };
        assert_eq!((rs.len(), rs[0].partition), (1, 0));
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        assert_eq!((rs.len(), rs[0].partition), (1, 1));
    }

    #[tokio::test]
    async fn third_member_triggers_revoke_then_assign_without_loss_or_duplicates() {
        let b = broker();
        b.create_topic(&TopicSpec::new("j", 8)).await.unwrap();
        let mut m1 = M::new(join(&b, "g", "j").await);
        let mut m2 = M::new(join(&b, "g", "j").await);
        drive(&mut [&mut m1, &mut m2], |ms| sizes(ms) == [4, 4]).await;
        for i in 0..800 {
            send(&b, "j", None, &format!("a{i}")).await;
        }
        // Consume part of it, commit, then a third member joins mid-stream.
        drive(&mut [&mut m1, &mut m2], |ms| total_seen(ms) >= 100).await;
        m1.commit_all().await;
        m2.commit_all().await;
        let mut m3 = M::new(join(&b, "g", "j").await);
        drive(&mut [&mut m1, &mut m2, &mut m3], |ms| {
            sizes(ms) == [3, 3, 2]
        })
        .await;
        assert_eq!(m1.assigned, (0..3).map(|p| tp("j", p)).collect());
        assert_eq!(m2.assigned, (3..6).map(|p| tp("j", p)).collect());
        assert_eq!(m3.assigned, (6..8).map(|p| tp("j", p)).collect());
        // m2 lost 6 and 7, then gained 3: revoke strictly before assign.
        let tail: Vec<&String> = m2.events.iter().rev().take(2).collect();
        assert_eq!(
            tail[1],
            &format!("revoked {:?}", vec![tp("j", 6), tp("j", 7)])
        );
        assert_eq!(tail[0], &format!("assigned {:?}", vec![tp("j", 3)]));
        assert_eq!(
            m3.events,
            vec![format!("assigned {:?}", vec![tp("j", 6), tp("j", 7)])]
        );
        for i in 0..800 {
            send(&b, "j", None, &format!("b{i}")).await;
        }
        drive(&mut [&mut m1, &mut m2, &mut m3], |ms| {
            total_seen(ms) >= 1600
        })
        .await;
        for m in [&mut m1, &mut m2, &mut m3] {
            assert!(!m.step(Duration::from_millis(20)).await);
        }
        assert_exactly_once(&[&mut m1, &mut m2, &mut m3], 1600);
        assert!(!m3.seen.is_empty());
    }

    #[tokio::test]
    async fn leaving_members_release_their_partitions() {
        for by_drop in [false, true] {
            let b = broker();
            b.create_topic(&TopicSpec::new("l", 8)).await.unwrap();
            let mut m1 = M::new(join(&b, "g", "l").await);
            let mut m2 = M::new(join(&b, "g", "l").await);
            drive(&mut [&mut m1, &mut m2], |ms| sizes(ms) == [4, 4]).await;
            for i in 0..80 {
                send(&b, "l", None, &format!("{i}")).await;
            }
            drive(&mut [&mut m1, &mut m2], |ms| total_seen(ms) == 80).await;
            m2.commit_all().await;
            let seen_by_m2 = m2.seen.len();
            if by_drop {
                drop(m2);
            } else {
                m2.c.close(Duration::from_secs(1)).await.unwrap();
            }
            drive(&mut [&mut m1], |ms| sizes(ms) == [8]).await;
            for i in 0..80 {
                send(&b, "l", None, &format!("{i}")).await;
            }
            drive(&mut [&mut m1], |ms| total_seen(ms) == 80 - seen_by_m2 + 80).await;
            assert!(
                !m1.step(Duration::from_millis(20)).await,
                "re-delivered records"
            );
            assert_eq!(m1.seen.len(), 160 - seen_by_m2);
        }
    }

    #[tokio::test]
    async fn two_groups_each_see_every_record() {
        let b = broker();
        let mut g1 = M::new(join(&b, "g1", "two").await);
        let mut g2 = M::new(join(&b, "g2", "two").await);
        for i in 0..200 {
            send(&b, "two", Some(&i.to_string()), "v").await;
        }
        drive(&mut [&mut g1, &mut g2], |ms| {
            ms.iter().all(|m| m.seen.len() >= 200)
        })
        .await;
        assert_exactly_once(&[&mut g1], 200);
        assert_exactly_once(&[&mut g2], 200);
    }

    #[tokio::test]
    async fn subscribe_creates_topic_and_latest_skips_old_records() {
        let b = broker();
        let mut c = join(&b, "g", "late").await;
        assert_eq!(
            b.partition_count("late").await.unwrap(),
            Some(DEFAULT_PARTITIONS)
        );
        assert!(matches!(poll(&mut c).await, ConsumerEvent::Assigned(v) if v.len() == 8));
        send(&b, "late", None, "hello").await;
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        assert_eq!(rs[0].value.as_deref(), Some(&b"hello"[..]));

        let mut latest = b
            .subscribe(SubscribeOptions {
                group: "other".into(),
                topics: vec!["late".into()],
                offset_reset: OffsetReset::Latest,
            })
            .await
            .unwrap();
        assert!(matches!(
            poll(&mut latest).await,
            ConsumerEvent::Assigned(_)
        ));
        assert_eq!(poll_for(&mut latest, Duration::from_millis(50)).await, None);
        send(&b, "late", None, "new").await;
        let ConsumerEvent::Records(rs) = poll(&mut latest).await else {
            panic!("expected records")
        };
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].value.as_deref(), Some(&b"new"[..]));
    }

    #[tokio::test]
    async fn assigned_consumer_reads_from_zero_without_group() {
        let b = broker();
        for i in 0..5 {
            send_to(&b, "a", 2, &i.to_string()).await;
        }
        let mut c = b.assign(vec![tp("a", 2)]).await.unwrap();
        assert_eq!(
            poll(&mut c).await,
            ConsumerEvent::Assigned(vec![tp("a", 2)])
        );
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        assert_eq!(
            rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        c.commit(&[(tp("a", 2), 5)]).await.unwrap();
        assert_eq!(c.committed(&tp("a", 2)).await.unwrap(), None);
        // A missing topic is created with enough partitions.
        let mut r = b.assign(vec![tp("reply", 11)]).await.unwrap();
        assert_eq!(b.partition_count("reply").await.unwrap(), Some(12));
        assert_eq!(
            poll(&mut r).await,
            ConsumerEvent::Assigned(vec![tp("reply", 11)])
        );
        send_to(&b, "reply", 11, "r").await;
        assert!(matches!(poll(&mut r).await, ConsumerEvent::Records(v) if v.len() == 1));
    }

    #[tokio::test]
    async fn try_enqueue_appends_at_once() {
        let b = broker();
        b.create_topic(&TopicSpec::new("q", 1)).await.unwrap();
        let mut r = ProducerRecord::new("q", "v");
        r.partition = Some(0);
        match b.try_enqueue(r).unwrap() {
            Enqueued::Delivered(md) => assert_eq!((md.partition, md.offset), (0, 0)),
            other => panic!("expected Delivered, got {other:?}"),
        }
        assert_eq!(b.end_offset(&tp("q", 0)), Some(1));
        let mut bad = ProducerRecord::new("q", "v");
        bad.partition = Some(3);
        assert!(
            b.try_enqueue(bad).is_err(),
            "a missing partition is an error"
        );
    }

    /// Read records of one partition until `n` were seen; returns the offsets.
    async fn drain(c: &mut Box<dyn Consumer>, n: usize) -> Vec<i64> {
        let mut offsets = Vec::new();
        while offsets.len() < n {
            match poll(c).await {
                ConsumerEvent::Records(rs) => offsets.extend(rs.iter().map(|r| r.offset)),
                ConsumerEvent::Assigned(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        offsets
    }

    #[tokio::test]
    async fn committed_records_are_freed_in_chunks() {
        let b = broker();
        b.create_topic(&TopicSpec::new("r", 1)).await.unwrap();
        let total = 3 * RETENTION_CHUNK + 10;
        for i in 0..total {
            send_to(&b, "r", 0, &i.to_string()).await;
        }
        let mut c = join(&b, "g", "r").await;
        assert_eq!(c.commit_interval(), Some(COMMIT_INTERVAL));
        drain(&mut c, total).await;
        // Read but not committed: everything is kept.
        assert_eq!(b.start_offset(&tp("r", 0)), Some(0));
        let half = (RETENTION_CHUNK + RETENTION_CHUNK / 2) as i64;
        c.commit(&[(tp("r", 0), half)]).await.unwrap();
        assert_eq!(b.start_offset(&tp("r", 0)), Some(RETENTION_CHUNK as i64));
        c.commit(&[(tp("r", 0), total as i64)]).await.unwrap();
        // The newest chunk stays, whole chunks below the commit go.
        assert_eq!(
            b.start_offset(&tp("r", 0)),
            Some(3 * RETENTION_CHUNK as i64)
        );
        assert_eq!(b.end_offset(&tp("r", 0)), Some(total as i64));
        drop(c);
        // The same group resumes at its commit; a new group starts at the
        // oldest retained record, as after Kafka's retention.
        send_to(&b, "r", 0, "next").await;
        let mut again = join(&b, "g", "r").await;
        assert_eq!(drain(&mut again, 1).await, vec![total as i64]);
        let mut late = join(&b, "late", "r").await;
        let offsets = drain(&mut late, 11).await;
        assert_eq!(offsets[0], 3 * RETENTION_CHUNK as i64);
    }

    #[tokio::test]
    async fn records_are_kept_for_every_group_and_assigned_reader() {
        let b = broker();
        b.create_topic(&TopicSpec::new("k", 1)).await.unwrap();
        let total = 2 * RETENTION_CHUNK + 1;
        for i in 0..total {
            send_to(&b, "k", 0, &i.to_string()).await;
        }
        let mut fast = join(&b, "fast", "k").await;
        let _slow = join(&b, "slow", "k").await; // never reads nor commits
        drain(&mut fast, total).await;
        fast.commit(&[(tp("k", 0), total as i64)]).await.unwrap();
        assert_eq!(b.start_offset(&tp("k", 0)), Some(0), "`slow` needs them");

        // Without groups, an assigned reader frees what it has read.
        b.create_topic(&TopicSpec::new("a", 1)).await.unwrap();
        for i in 0..total {
            send_to(&b, "a", 0, &i.to_string()).await;
        }
        assert_eq!(b.start_offset(&tp("a", 0)), Some(0), "no reader yet: kept");
        let mut reader = b.assign(vec![tp("a", 0)]).await.unwrap();
        drain(&mut reader, total).await;
        assert_eq!(
            b.start_offset(&tp("a", 0)),
            Some(2 * RETENTION_CHUNK as i64)
        );
    }

    #[tokio::test]
    async fn batches_are_bounded_and_fair() {
        let b = broker();
        b.create_topic(&TopicSpec::new("f", 2)).await.unwrap();
        for _ in 0..2000 {
            send_to(&b, "f", 0, "busy").await;
        }
        for _ in 0..10 {
            send_to(&b, "f", 1, "quiet").await;
        }
        let mut c = b.assign(vec![tp("f", 0), tp("f", 1)]).await.unwrap();
        poll(&mut c).await;
        let ConsumerEvent::Records(rs) = poll(&mut c).await else {
            panic!("expected records")
        };
        assert_eq!(rs.len(), MAX_BATCH);
        assert_eq!(rs.iter().filter(|r| r.partition == 1).count(), 10);
        let mut next = [0i64; 2];
        let mut total = rs.len();
        for r in &rs {
            assert_eq!(r.offset, next[r.partition as usize]);
            next[r.partition as usize] += 1;
        }
        while total < 2010 {
            let ConsumerEvent::Records(rs) = poll(&mut c).await else {
                panic!("expected records")
            };
            assert!(rs.len() <= MAX_BATCH);
            for r in &rs {
                assert_eq!(r.offset, next[r.partition as usize]);
                next[r.partition as usize] += 1;
            }
            total += rs.len();
        }
        assert_eq!(next, [2000, 10]);
    }

    #[tokio::test]
    async fn named_brokers_are_shared_by_name() {
        let a1 = MemoryBroker::shared("memtest-a");
        let a2 = MemoryBroker::shared("memtest-a");
        let other = MemoryBroker::shared("memtest-b");
        assert!(Arc::ptr_eq(&a1, &a2));
        assert!(!Arc::ptr_eq(&a1, &other));
        assert_eq!(a1.url(), "memory://memtest-a");
        assert_eq!(MemoryBroker::named("").url(), "memory://");
        let via_url = super::super::connect("memory://memtest-a", &[]).unwrap();
        let via_named = MemoryBroker::named("memtest-a");
        assert_eq!(
            Arc::as_ptr(&via_url) as *const (),
            Arc::as_ptr(&a1) as *const ()
        );
        assert_eq!(
            Arc::as_ptr(&via_named) as *const (),
            Arc::as_ptr(&a1) as *const ()
        );
        via_url
            .create_topic(&TopicSpec::new("only-a", 3))
            .await
            .unwrap();
        assert_eq!(a2.partition_count("only-a").await.unwrap(), Some(3));
        let b_url = super::super::connect("memory://memtest-b", &[]).unwrap();
        assert_eq!(b_url.partition_count("only-a").await.unwrap(), None);
        assert_ne!(MemoryBroker::new().url(), MemoryBroker::new().url());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_producers_and_group_consumers() {
        let b = broker();
        b.create_topic(&TopicSpec::new("c", 8)).await.unwrap();
        // Both consumers commit after every batch, like an app, and run
        // until the group as a whole has seen everything.
        let total = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let mut c = join(&b, "g", "c").await;
            let total = total.clone();
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                let start = std::time::Instant::now();
                while total.load(Ordering::SeqCst) < 20_000 {
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "consumer timed out"
                    );
                    match timeout(Duration::from_millis(20), c.poll()).await {
                        Ok(Ok(ConsumerEvent::Records(rs))) => {
                            total.fetch_add(rs.len(), Ordering::SeqCst);
                            let mut next = BTreeMap::new();
                            for r in rs {
                                next.insert(r.topic_partition(), r.offset + 1);
                                seen.push((r.partition, r.offset));
                            }
                            let offsets: Vec<_> = next.into_iter().collect();
                            c.commit(&offsets).await.unwrap();
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => panic!("{e}"),
                        Err(_) => {}
                    }
                }
                (c, seen)
            }));
        }
        let mut producers = Vec::new();
        for t in 0..4 {
            let b = b.clone();
            producers.push(tokio::spawn(async move {
                for i in 0..5000 {
                    send(&b, "c", Some(&format!("{t}-{i}")), "v").await;
                }
            }));
        }
        for p in producers {
            p.await.unwrap();
        }
        let mut all = BTreeSet::new();
        let mut consumers = Vec::new();
        for t in tasks {
            let (c, seen) = timeout(Duration::from_secs(15), t).await.unwrap().unwrap();
            assert!(!seen.is_empty(), "one consumer got nothing");
            consumers.push(c);
            for s in seen {
                assert!(all.insert(s), "duplicate {s:?}");
            }
        }
        assert_eq!(all.len(), 20_000);
    }
}
