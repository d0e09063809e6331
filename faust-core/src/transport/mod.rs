//! The transport abstraction: what the runtime needs from a broker.
//!
//! Two implementations exist: the embedded in-memory broker of this crate
//! ([`memory`], URL `memory://`) and Kafka (crate `faust-kafka`, URL
//! `kafka://host:port`). Both must show the same observable semantics, so
//! tests written against one stay true on the other.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::record::{ProducerRecord, Record, RecordMetadata, TopicPartition};

mod delivery;
pub mod memory;
pub mod partitioner;
pub(crate) mod producer;

pub use delivery::DeliveryGroup;
#[cfg(feature = "testkit")]
pub mod testkit;

/// The delivery of an enqueued record.
pub type DeliveryFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RecordMetadata>> + Send>>;

/// A commit started by [`Consumer::start_commit`]; it does not borrow the
/// consumer, so the consumer can be polled while it runs.
pub type CommitFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// What [`Transport::try_enqueue`] did with a record.
pub enum Enqueued {
    /// The broker has it already (a transport that produces synchronously,
    /// like the embedded broker): nothing to wait for.
    Delivered(RecordMetadata),
    /// The producer took it: its delivery.
    Queued(DeliveryFuture),
    /// The producer could not take it without waiting (its queue is full,
    /// or it only produces asynchronously): the record back, for
    /// [`Transport::enqueue`].
    WouldWait(ProducerRecord),
    /// The producer took it and will report its delivery to the group it
    /// was given (only from [`Transport::try_enqueue_reported`]).
    Reported,
}

/// How soon a record must go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// It may wait to be batched with others (outputs, sends).
    Batched,
    /// Someone waits for it now (requests, replies): see
    /// [`Transport::try_enqueue_immediate`].
    Immediate,
}

impl Enqueued {
    /// The delivery to wait for (`None`: delivered already), or the record
    /// back when the producer could not take it (not an error: the caller
    /// hands it to `enqueue`, so it is returned unboxed).
    #[allow(clippy::result_large_err)]
    pub(crate) fn into_delivery(
        self,
    ) -> std::result::Result<Option<DeliveryFuture>, ProducerRecord> {
        match self {
            Enqueued::Delivered(_) | Enqueued::Reported => Ok(None),
            Enqueued::Queued(delivery) => Ok(Some(delivery)),
            Enqueued::WouldWait(record) => Err(record),
        }
    }
}

impl fmt::Debug for Enqueued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Enqueued::Delivered(m) => f.debug_tuple("Delivered").field(m).finish(),
            Enqueued::Queued(_) => f.write_str("Queued(..)"),
            Enqueued::WouldWait(r) => f.debug_tuple("WouldWait").field(r).finish(),
            Enqueued::Reported => f.write_str("Reported"),
        }
    }
}

/// What a broker does with old records of a topic (Kafka's `cleanup.policy`).
///
/// ```
/// # use faust_core as faust;
/// use faust::transport::CleanupPolicy;
/// assert_eq!(CleanupPolicy::CompactDelete.as_str(), "compact,delete");
/// assert_eq!("delete,compact".parse::<CleanupPolicy>().unwrap(), CleanupPolicy::CompactDelete);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CleanupPolicy {
    /// Delete records older than the retention (`delete`, Kafka's default).
    #[default]
    Delete,
    /// Keep the latest record of each key (`compact`): a changelog.
    Compact,
    /// Compact, and also delete records older than the retention
    /// (`compact,delete`).
    CompactDelete,
}

impl CleanupPolicy {
    /// The value of Kafka's `cleanup.policy`: `delete`, `compact` or
    /// `compact,delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CleanupPolicy {
    type Err = Error;

    /// Parse a `cleanup.policy` value (the two parts in either order).
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let has = |p: &str| parts.contains(&p);
        let known = parts.iter().all(|p| *p == "delete" || *p == "compact");
        match (known, has("compact"), has("delete")) {
            (true, true, true) => Ok(CleanupPolicy::CompactDelete),
            (true, true, false) => Ok(CleanupPolicy::Compact),
            (true, false, true) => Ok(CleanupPolicy::Delete),
            _ => Err(Error::config(format!(
                "unknown cleanup policy `{s}`; expected `delete`, `compact` or `compact,delete`"
            ))),
        }
    }
}

/// How to create a topic, and what [`Transport::describe_topic`] finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i16,
    /// Retention of records (`retention.ms`), `None` for the broker default.
    pub retention: Option<Duration>,
    /// What happens to old records (`cleanup.policy`).
    pub cleanup_policy: CleanupPolicy,
    /// Further topic configs set at creation (`("min.insync.replicas",
    /// "2")`); a description leaves them out.
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic with `partitions` partitions, replication 1 and broker defaults.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication: 1,
            retention: None,
            cleanup_policy: CleanupPolicy::Delete,
            configs: Vec::new(),
        }
    }

    /// The checks every transport makes before creating a topic: a
    /// non-empty name and at least one partition.
    pub fn validate(&self) -> Result<()> {
        validate_topic_name(&self.name)?;
        if self.partitions < 1 {
            return Err(Error::Broker(format!(
                "cannot create topic `{}` with {} partitions: at least 1 is needed",
                self.name, self.partitions
            )));
        }
        Ok(())
    }
}

/// A topic name a transport accepts: not empty.
pub(crate) fn validate_topic_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::Broker("invalid topic name: empty".into()));
    }
    Ok(())
}

/// The partitions of a [`Transport::assign`] call without repetitions, in
/// their first order; an error if there are none.
pub fn dedup_partitions(partitions: Vec<TopicPartition>) -> Result<Vec<TopicPartition>> {
    let mut tps: Vec<TopicPartition> = Vec::with_capacity(partitions.len());
    for tp in partitions {
        if !tps.contains(&tp) {
            tps.push(tp);
        }
    }
    if tps.is_empty() {
        return Err(Error::config("assign needs at least one partition"));
    }
    Ok(tps)
}

/// Where a consumer without committed offsets starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// From the oldest retained record (Faust's default).
    #[default]
    Earliest,
    /// Only records produced after the consumer started.
    Latest,
}

/// What a [`Consumer`] hands out.
#[derive(Clone, Debug, PartialEq)]
pub enum ConsumerEvent {
    /// Records in partition order (each partition's records are in offset order).
    Records(Vec<Record>),
    /// These partitions are taken away. The caller must finish, commit and
    /// drop everything it holds for them **before** calling
    /// [`Consumer::poll`] again: the transport hands them to their new owner
    /// only after that call (or after its rebalance deadline).
    Revoked(Vec<TopicPartition>),
    /// These partitions are now owned by this consumer; their records follow.
    Assigned(Vec<TopicPartition>),
}

/// Options of a group consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Consumer group id.
    pub group: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// Patterns of further topics to subscribe to: every topic whose whole
    /// name matches one ([`TopicPattern`]), including topics created later.
    pub patterns: Vec<TopicPattern>,
    /// Where to start without a committed offset.
    pub offset_reset: OffsetReset,
}

/// A pattern of topic names (a regular expression, `regex` crate syntax)
/// that must match a whole name: `orders-.*` matches `orders-eu`, not
/// `old-orders-eu`.
#[derive(Clone)]
pub struct TopicPattern {
    source: String,
    regex: regex::Regex,
}

impl TopicPattern {
    /// Compile a pattern; an invalid one is a configuration error.
    pub fn new(pattern: &str) -> Result<Self> {
        let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Error::config(format!("invalid topic pattern `{pattern}`: {e}")))?;
        Ok(Self {
            source: pattern.to_string(),
            regex,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

impl fmt::Debug for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicPattern({:?})", self.source)
    }
}

impl PartialEq for TopicPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for TopicPattern {}

/// A broker connection: producing, topic administration and consumers.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The URL this transport was created from.
    fn url(&self) -> &str;

    /// Create a topic if it does not exist. An existing topic is not an error.
    async fn create_topic(&self, spec: &TopicSpec) -> Result<()>;

    /// Number of partitions of a topic, or `None` if it does not exist.
    async fn partition_count(&self, topic: &str) -> Result<Option<i32>>;

    /// The settings of an existing topic (partitions, replication,
    /// retention, cleanup policy; `configs` empty), or `None` if it does
    /// not exist. It does not create the topic. The default says the
    /// transport cannot: the app asks only about topics declared with
    /// settings to check.
    async fn describe_topic(&self, topic: &str) -> Result<Option<TopicSpec>> {
        Err(Error::Broker(format!(
            "cannot check the settings of topic `{topic}`: the transport `{}` does not \
             describe topics",
            crate::redact::redact_url(self.url())
        )))
    }

    /// Delete a topic and its records. A missing topic is not an error.
    /// The default says the transport cannot.
    async fn delete_topic(&self, topic: &str) -> Result<()> {
        Err(Error::Broker(format!(
            "cannot delete topic `{topic}`: the transport `{}` does not delete topics",
            crate::redact::redact_url(self.url())
        )))
    }

    /// Produce one record and wait until the broker has it.
    async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata>;

    /// Hand one record to the producer and return as soon as it is queued
    /// (waiting only while the producer's queue is full), with a future of
    /// its delivery. Records enqueued in order keep their order per
    /// partition. The default waits for the delivery, like [`send`](Transport::send).
    async fn enqueue(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let delivered = self.send(record).await;
        Ok(Box::pin(std::future::ready(delivered)))
    }

    /// Hand one record to the producer if it can take it without waiting,
    /// like [`enqueue`](Transport::enqueue) without the wait. The default
    /// always gives the record back.
    fn try_enqueue(&self, record: ProducerRecord) -> Result<Enqueued> {
        Ok(Enqueued::WouldWait(record))
    }

    /// [`try_enqueue`](Transport::try_enqueue) for a record someone waits
    /// for now (a request of `ask`, `map` or `join`, or a reply): send it
    /// at once rather than batching it with other records. The Kafka
    /// transport sends these through a producer of their own that does not
    /// linger (`linger.ms=0`), so records are in order per partition among
    /// those of one kind. A record given back (`WouldWait`) goes to
    /// [`enqueue`](Transport::enqueue) like any other. The default is
    /// `try_enqueue`.
    fn try_enqueue_immediate(&self, record: ProducerRecord) -> Result<Enqueued> {
        self.try_enqueue(record)
    }

    /// Whether this transport reports deliveries to a [`DeliveryGroup`]
    /// ([`try_enqueue_reported`](Transport::try_enqueue_reported)); the
    /// runtime asks once. The default: no.
    fn reports_deliveries(&self) -> bool {
        false
    }

    /// [`try_enqueue`](Transport::try_enqueue) (or, with
    /// [`Latency::Immediate`], [`try_enqueue_immediate`](Transport::try_enqueue_immediate))
    /// reporting the record's delivery to `group` instead of returning a
    /// future of it: `Enqueued::Reported` says the transport took the record
    /// and will call [`DeliveryGroup::delivered`] or [`DeliveryGroup::failed`]
    /// once for it. The runtime calls it only if
    /// [`reports_deliveries`](Transport::reports_deliveries) says so; the
    /// default is `try_enqueue` (or `try_enqueue_immediate`).
    fn try_enqueue_reported(
        &self,
        record: ProducerRecord,
        latency: Latency,
        group: &Arc<DeliveryGroup>,
    ) -> Result<Enqueued> {
        let _ = group;
        match latency {
            Latency::Batched => self.try_enqueue(record),
            Latency::Immediate => self.try_enqueue_immediate(record),
        }
    }

    /// Wait until every record sent so far is delivered.
    async fn flush(&self, timeout: Duration) -> Result<()>;

    /// Join a consumer group subscribed to `options.topics`.
    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Consumer>>;

    /// A consumer without a group reading exactly these partitions from
    /// their oldest retained record (used for reply topics).
    async fn assign(&self, partitions: Vec<TopicPartition>) -> Result<Box<dyn Consumer>>;
}

/// A consumer handed out by a [`Transport`].
///
/// [`poll`](Consumer::poll) must be cancel-safe: dropping its future loses nothing.
#[async_trait]
pub trait Consumer: Send + 'static {
    /// Wait for the next event.
    async fn poll(&mut self) -> Result<ConsumerEvent>;

    /// Whether a rebalance event (`Revoked`/`Assigned`) is waiting, so that
    /// the next [`poll`](Consumer::poll) returns it before further records.
    /// The runtime checks this while it is busy, to handle revocations at once.
    fn rebalance_pending(&self) -> bool {
        false
    }

    /// How often this consumer wants commits, when more often than the app's
    /// `commit_interval` (the embedded broker frees committed records, so
    /// it asks for frequent, cheap commits). `None`: the app's setting.
    fn commit_interval(&self) -> Option<Duration> {
        None
    }

    /// Commit these offsets (the offset of the *next* record to read) for
    /// the group, and wait until the broker has them. The runtime uses it
    /// where a commit must land before it goes on (on revoke, on close).
    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()>;

    /// Start committing these offsets (like [`commit`](Consumer::commit))
    /// and return at once with the commit's outcome, so that records keep
    /// being polled meanwhile. The runtime starts one at a time, on its
    /// commit cadence. `None` (the default): this consumer only commits with
    /// `commit`, which the runtime then awaits.
    fn start_commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Option<CommitFuture> {
        let _ = offsets;
        None
    }

    /// Committed offset of a partition for this consumer's group.
    async fn committed(&mut self, tp: &TopicPartition) -> Result<Option<i64>>;

    /// The end offset (the offset the next record written will get) of
    /// assigned partitions, as the consumer last learnt it without asking
    /// the broker (for the lag metrics). Partitions it knows nothing of
    /// are left out; by default it knows none.
    fn end_offsets(&self) -> Vec<(TopicPartition, i64)> {
        Vec::new()
    }

    /// Leave the group and release every partition, within `timeout`.
    async fn close(self: Box<Self>, timeout: Duration) -> Result<()>;
}

/// Builds a transport for a URL scheme other than `memory://`.
pub type TransportFactory = fn(&str) -> Result<Arc<dyn Transport>>;

/// Connect to the broker named by `url`.
///
/// `memory://` and `memory://<name>` (with `?max_bytes=N&max_block_ms=M`,
/// see [`MemoryBroker::from_url`](memory::MemoryBroker::from_url)) are built in; other schemes are looked up
/// in `factories` by scheme (e.g. `kafka`).
pub fn connect(url: &str, factories: &[(&str, TransportFactory)]) -> Result<Arc<dyn Transport>> {
    let scheme = url.split("://").next().unwrap_or_default();
    if !url.contains("://") {
        return Err(Error::BrokerUrl {
            url: crate::redact::redact_url(url),
            reason: "expected `memory://` or `kafka://host:port`".into(),
        });
    }
    if scheme == "memory" {
        return memory::MemoryBroker::from_url(url);
    }
    match factories.iter().find(|(s, _)| *s == scheme) {
        Some((_, factory)) => factory(url),
        None => Err(Error::BrokerUrl {
            url: crate::redact::redact_url(url),
            reason: format!(
                "no transport for scheme `{scheme}`; available: memory{}",
                factories
                    .iter()
                    .map(|(s, _)| format!(", {s}"))
                    .collect::<String>()
            ),
        }),
    }
}
