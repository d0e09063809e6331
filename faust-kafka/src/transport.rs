//! The Kafka transport: a producer, an admin client for topics and
//! metadata, and a consumer thread per subscription.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use faust_core::redact::redact_url;
use faust_core::transport::{
    dedup_partitions, CleanupPolicy, Consumer, OffsetReset, SubscribeOptions, TopicSpec, Transport,
};
use faust_core::transport::{DeliveryFuture, DeliveryGroup, Enqueued, Latency};
use faust_core::{Error, ProducerRecord, RecordMetadata, Result, TopicPartition};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig};
use rdkafka::ClientConfig;
use tokio::sync::oneshot;

use crate::config::{describe_config_error, ClientConfigs, KafkaBuilder, Resolved, Settings};
use crate::consumer::{KafkaConsumer, Shared};
use crate::context::{ClientCtx, LastError};
use crate::delivery::{
    describe_delivery_failure, Deliveries, KafkaProducer, OutRecord, ProducerCtx, RoomWaiter,
};
use crate::worker::{self, ConsumerCtx, Mode};

/// Pause between two metadata lookups while waiting for a new topic.
const METADATA_RETRY: Duration = Duration::from_millis(50);

/// After the producer failed to authenticate, how often records still
/// queued are failed (their delivery reports then name the cause).
const PURGE_EVERY: Duration = Duration::from_millis(200);

/// While the producer queue is full, a send waits for one of our delivery
/// reports, or this long at most: a record whose delivery future was
/// dropped frees its room without telling anyone.
const FULL_QUEUE_RECHECK: Duration = Duration::from_millis(10);

/// The `kafka://` transport, on librdkafka (through rdkafka).
///
/// Build it from a URL with [`KafkaTransport::from_url`] (what
/// [`factory`](crate::factory) does) or programmatically with
/// [`KafkaTransport::builder`]; see [`KafkaBuilder`] for the settings and
/// their defaults. Dropping it never blocks the caller: the clients close on
/// a background thread.
pub struct KafkaTransport {
    url: String,
    bootstrap: String,
    /// `None` only while dropping.
    clients: Option<Arc<Clients>>,
    consumer_config: ClientConfig,
    settings: Settings,
    /// What every client of this transport reported (one record for all).
    errors: LastError,
    deliveries: Arc<Deliveries>,
}

pub(crate) struct Clients {
    pub(crate) producer: KafkaProducer,
    /// The producer of records someone waits for (`linger.ms=0`), made
    /// at the first such record: an app that never asks nor answers has
    /// no second producer.
    immediate: std::sync::OnceLock<KafkaProducer>,
    immediate_config: ClientConfig,
    deliveries: Arc<Deliveries>,
    errors: LastError,
    admin: Arc<AdminClient<ClientCtx>>,
}

impl Clients {
    /// The producer of a record: the immediate one for records someone
    /// waits for (made now if it is not yet; the main one if it cannot be).
    fn producer_for(&self, immediate: bool) -> &KafkaProducer {
        if !immediate {
            return &self.producer;
        }
        // `get_or_init` runs one initialiser; concurrent callers wait for it.
        self.immediate.get_or_init(|| {
            match KafkaProducer::from_config_and_context(
                &self.immediate_config,
                ProducerCtx::new(
                    ClientCtx::new("producer", self.errors.clone()),
                    self.deliveries.clone(),
                ),
            ) {
                Ok(p) => {
                    fail_queued_records_after_a_fatal_error(&p, &self.errors);
                    p
                }
                Err(e) => {
                    // Its settings are the producer's but `linger.ms`, so
                    // this is unexpected; requests then linger with the outputs.
                    tracing::warn!(error = %e, "cannot create the immediate Kafka producer; using the main one");
                    self.producer.clone()
                }
            }
        })
    }

    /// The producers made so far.
    fn producers(&self) -> impl Iterator<Item = &KafkaProducer> {
        std::iter::once(&self.producer).chain(self.immediate.get())
    }
}

/// What the metadata says about a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TopicState {
    partitions: i32,
    /// Replicas of its first partition.
    replication: i16,
    /// Every partition has a leader and no error.
    ready: bool,
}

impl fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry credentials: show the servers only.
        f.debug_struct("KafkaTransport")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl KafkaBuilder {
    /// Check the properties and create the producer and admin clients. No
    /// connection is made yet: an unreachable broker shows on first use.
    ///
    /// Fails with [`Error::BrokerUrl`] on an invalid property (named), and
    /// on TLS, SCRAM or GSSAPI settings in a build without the `ssl` (or
    /// `gssapi`) feature (the error names the feature to enable).
    pub fn build(self) -> Result<KafkaTransport> {
        let Resolved {
            url,
            bootstrap,
            configs,
            settings,
        } = self.resolve()?;
        KafkaTransport::new(url, bootstrap, configs, settings)
    }
}

impl KafkaTransport {
    /// A builder for these bootstrap servers (`host:port[,host:port...]`).
    pub fn builder(bootstrap: impl Into<String>) -> KafkaBuilder {
        KafkaBuilder::new(bootstrap)
    }

    /// A transport for a `kafka://host:port[,host:port...][?key=value&...]`
    /// URL (see [`KafkaBuilder::from_url`]).
    pub fn from_url(url: &str) -> Result<Self> {
        KafkaBuilder::from_url(url)?.build()
    }

    pub(crate) fn new(
        url: String,
        bootstrap: String,
        configs: ClientConfigs,
        settings: Settings,
    ) -> Result<Self> {
        let errors = LastError::default();
        let invalid = |what: &str, e: KafkaError| Error::BrokerUrl {
            url: redact_url(&url),
            reason: describe_config_error(what, &e),
        };
        let deliveries = Arc::new(Deliveries::new(errors.clone(), settings.delivery_timeout));
        let producer = KafkaProducer::from_config_and_context(
            &configs.producer,
            ProducerCtx::new(
                ClientCtx::new("producer", errors.clone()),
                deliveries.clone(),
            ),
        )
        .map_err(|e| invalid("producer", e))?;
        fail_queued_records_after_a_fatal_error(&producer, &errors);
        let admin = AdminClient::from_config_and_context(
            &configs.admin,
            ClientCtx::new("admin", errors.clone()),
        )
        .map_err(|e| invalid("admin client", e))?;
        let clients = Arc::new(Clients {
            producer,
            immediate: std::sync::OnceLock::new(),
            immediate_config: configs.immediate,
            deliveries: deliveries.clone(),
            errors: errors.clone(),
            admin: Arc::new(admin),
        });
        let _ = deliveries.clients.set(Arc::downgrade(&clients));
        Ok(Self {
            url: url.clone(),
            bootstrap,
            clients: Some(clients),
            consumer_config: configs.consumer,
            settings,
            errors,
            deliveries,
        })
    }

    /// The bootstrap servers, comma separated.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    fn clients(&self) -> &Clients {
        self.clients.as_ref().expect("clients live until drop")
    }

    /// The topic's metadata, `None` if the broker does not know it.
    async fn topic_state(&self, topic: &str, timeout: Duration) -> Result<Option<TopicState>> {
        let admin = self.clients().admin.clone();
        let name = topic.to_string();
        let lookup = off_runtime("kafka-metadata", move || {
            let md = admin.inner().fetch_metadata(Some(&name), timeout)?;
            Ok::<_, KafkaError>(md.topics().iter().find(|t| t.name() == name).and_then(|t| {
                if t.partitions().is_empty() {
                    return None;
                }
                let ready = t.error().is_none()
                    && t.partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0);
                Some(TopicState {
                    partitions: t.partitions().len() as i32,
                    replication: i16::try_from(t.partitions()[0].replicas().len())
                        .unwrap_or(i16::MAX),
                    ready,
                })
            }))
        });
        let looked_up = tokio::select! {
            biased;
            looked_up = tokio::time::timeout(timeout + Duration::from_secs(1), lookup) => looked_up,
            why = self.errors.wait_fatal() => {
                return Err(self.fatal_error(&format!("cannot read the metadata of topic `{topic}`"), &why));
            }
        };
        match looked_up {
            Ok(Ok(Ok(state))) => Ok(state),
            Ok(Ok(Err(e))) => Err(Error::Broker(format!(
                "cannot read the metadata of topic `{topic}` from {}: {e}{}",
                self.bootstrap,
                self.errors.suffix()
            ))),
            Ok(Err(gone)) => Err(Error::Broker(format!("metadata lookup failed: {gone}"))),
            Err(_) => {
                Err(self.timeout(format!("reading the metadata of topic `{topic}`"), timeout))
            }
        }
    }

    fn timeout(&self, what: String, after: Duration) -> Error {
        Error::Timeout {
            what: format!("{what} on {}{}", self.bootstrap, self.errors.suffix()),
            after,
        }
    }

    /// `<what> on <servers>: <a fatal client error>`.
    fn fatal_error(&self, what: &str, why: &str) -> Error {
        Error::Broker(format!("{what} on {}: {why}", self.bootstrap))
    }

    /// Wait until the metadata shows the topic with a leader for every
    /// partition, until `deadline`.
    async fn await_topic(&self, topic: &str, deadline: Instant) -> Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let state = self
                .topic_state(topic, left.max(Duration::from_millis(100)))
                .await?;
            if state.is_some_and(|s| s.ready) {
                return Ok(());
            }
            if Instant::now() + METADATA_RETRY >= deadline {
                return Err(self.timeout(
                    format!("waiting for the metadata of new topic `{topic}`"),
                    self.settings.operation_timeout,
                ));
            }
            tokio::time::sleep(METADATA_RETRY).await;
        }
    }

    fn new_consumer(
        &self,
        config: &ClientConfig,
        mode: Mode,
        group: Option<String>,
    ) -> Result<KafkaConsumer> {
        let shared = Arc::new(Shared::default());
        let last_error = self.errors.clone();
        let ctx = ConsumerCtx::new(
            shared.clone(),
            last_error.clone(),
            self.settings.revoke_timeout,
            self.settings.operation_timeout,
        );
        let consumer = BaseConsumer::from_config_and_context(config, ctx)
            .map_err(|e| Error::Broker(format!("cannot create a Kafka consumer: {e}")))?;
        let (done_tx, done_rx) = oneshot::channel();
        let name = match &group {
            Some(g) => format!("kafka-{g}"),
            None => "kafka-assign".to_string(),
        };
        worker::spawn(
            consumer,
            mode,
            self.settings.max_batch,
            self.settings.buffered_batches,
            name,
            done_tx,
        )?;
        Ok(KafkaConsumer::new(
            shared,
            done_rx,
            group,
            self.settings.operation_timeout,
            last_error,
        ))
    }
}

/// Run a blocking librdkafka call on a thread of its own and wait for its
/// result. Not on the runtime's blocking pool: a caller that gives up at its
/// deadline must not leave the runtime's shutdown waiting for the call.
fn off_runtime<T: Send + 'static>(
    name: &str,
    call: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = std::result::Result<T, String>> {
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tx.send(call());
        });
    async move {
        spawned.map_err(|e| format!("cannot start a thread: {e}"))?;
        rx.await.map_err(|_| "the call's thread ended".to_string())
    }
}

impl KafkaTransport {
    fn delivery_error(
        &self,
        topic: &str,
        partition: Option<i32>,
        why: &dyn std::fmt::Display,
    ) -> Error {
        Error::Broker(describe_delivery_failure(
            topic,
            partition,
            why,
            &self.errors,
        ))
    }
}

impl KafkaTransport {
    /// Hand a record to the main producer, or to the immediate one, with
    /// its delivery reported to `group`, or (without one) to a future.
    fn produce(
        &self,
        record: ProducerRecord,
        latency: Latency,
        group: Option<&Arc<DeliveryGroup>>,
    ) -> Result<Enqueued> {
        let (opaque, delivery) = match group {
            Some(group) => (group.clone(), None),
            None => {
                let (group, delivery) = DeliveryGroup::single();
                (group, Some(delivery))
            }
        };
        let mut out: OutRecord<'_> = BaseRecord::with_opaque_to(&record.topic, opaque);
        if let Some(key) = record.key.as_deref() {
            out = out.key(key);
        }
        if let Some(value) = record.value.as_deref() {
            out = out.payload(value);
        }
        if let Some(p) = record.partition {
            out = out.partition(p);
        }
        if let Some(ts) = record.timestamp {
            out = out.timestamp(ts);
        }
        if !record.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key: key.as_str(),
                    value: Some(value.as_ref()),
                });
            }
            out = out.headers(headers);
        }
        self.deliveries.note_runtime();
        let producer = self.clients().producer_for(latency == Latency::Immediate);
        match producer.send(out) {
            Ok(()) => Ok(delivery.map_or(Enqueued::Reported, Enqueued::Queued)),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Ok(Enqueued::WouldWait(record))
            }
            Err((e, _)) => Err(self.delivery_error(&record.topic, record.partition, &e)),
        }
    }
}

#[async_trait]
impl Transport for KafkaTransport {
    fn url(&self) -> &str {
        &self.url
    }

    /// Create the topic with the spec's partitions, replication,
    /// `retention.ms`, `cleanup.policy` and further configs, then wait until its metadata
    /// shows it. A topic the metadata already shows is success without an
    /// admin request (its settings are left as they are), and so is "topic
    /// already exists". On a broker without the CreateTopics API
    /// (librdkafka's mock cluster) a missing topic is an error naming the
    /// fix: create it beforehand.
    async fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        spec.validate()?;
        let op = self.settings.operation_timeout;
        let deadline = Instant::now() + op;
        // An existing topic needs no admin request (and a broker without
        // CreateTopics, as the mock cluster, would only time out on one).
        if let Some(state) = self.topic_state(&spec.name, op).await? {
            if state.partitions != spec.partitions {
                tracing::debug!(topic = %spec.name, partitions = state.partitions, wanted = spec.partitions, "topic exists with another partition count");
            }
            return Ok(());
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let retention = spec.retention.map(|r| r.as_millis().to_string());
        let mut topic = NewTopic::new(
            &spec.name,
            spec.partitions,
            TopicReplication::Fixed(i32::from(spec.replication)),
        )
        .set("cleanup.policy", spec.cleanup_policy.as_str());
        if let Some(ms) = &retention {
            topic = topic.set("retention.ms", ms);
        }
        for (key, value) in &spec.configs {
            topic = topic.set(key, value);
        }
        let opts = AdminOptions::new()
            .request_timeout(Some(left))
            .operation_timeout(Some(left));
        let created = tokio::select! {
            biased;
            created = tokio::time::timeout(
                left + Duration::from_secs(1),
                self.clients().admin.create_topics([&topic], &opts),
            ) => created,
            why = self.errors.wait_fatal() => {
                return Err(self.fatal_error(&format!("cannot create topic `{}`", spec.name), &why));
            }
        }
        .map_err(|_| self.timeout(format!("creating topic `{}`", spec.name), op))?;
        let failure = match created {
            Ok(results) => results.into_iter().find_map(|r| match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                Err((_, code)) => Some(code.to_string()),
            }),
            Err(e) => Some(e.to_string()),
        };
        if let Some(failure) = failure {
            // The broker may refuse to create a topic that is there by now
            // (created concurrently, or no permission to create).
            if let Ok(Some(_)) = self.topic_state(&spec.name, Duration::from_secs(2)).await {
                tracing::debug!(topic = %spec.name, error = %failure, "topic creation refused, but the topic exists");
                return Ok(());
            }
            let hint = if failure.contains("nsupported") || failure.contains("imed out") {
                " (a broker without the CreateTopics API, such as librdkafka's mock cluster, \
                 fails this way: create the topic beforehand)"
            } else {
                ""
            };
            return Err(Error::Broker(format!(
                "cannot create topic `{}` with {} partitions: {failure}{hint}{}",
                spec.name,
                spec.partitions,
                self.errors.suffix()
            )));
        }
        self.await_topic(&spec.name, deadline).await
    }

    /// Deletion is asynchronous on the broker: the topic may still be
    /// listed for a moment after this returns.
    async fn delete_topic(&self, topic: &str) -> Result<()> {
        let op = self.settings.operation_timeout;
        let opts = AdminOptions::new()
            .request_timeout(Some(op))
            .operation_timeout(Some(op));
        let deleted = tokio::select! {
            biased;
            deleted = tokio::time::timeout(
                op + Duration::from_secs(1),
                self.clients().admin.delete_topics(&[topic], &opts),
            ) => deleted,
            why = self.errors.wait_fatal() => {
                return Err(self.fatal_error(&format!("cannot delete topic `{topic}`"), &why));
            }
        }
        .map_err(|_| self.timeout(format!("deleting topic `{topic}`"), op))?;
        let failure = match deleted {
            Ok(results) => results.into_iter().find_map(|r| match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => None,
                Err((_, code)) => Some(code.to_string()),
            }),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => Ok(()),
            Some(failure) => Err(Error::Broker(format!(
                "cannot delete topic `{topic}`: {failure}{}",
                self.errors.suffix()
            ))),
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        Ok(self
            .topic_state(topic, self.settings.operation_timeout)
            .await?
            .map(|s| s.partitions))
    }

    /// Partitions and replication from the metadata, `retention.ms` and
    /// `cleanup.policy` from the broker's DescribeConfigs (their effective
    /// values, the broker's defaults included; a retention of -1, unlimited,
    /// is `None`).
    async fn describe_topic(&self, topic: &str) -> Result<Option<TopicSpec>> {
        let op = self.settings.operation_timeout;
        let Some(state) = self.topic_state(topic, op).await? else {
            return Ok(None);
        };
        let opts = AdminOptions::new().request_timeout(Some(op));
        let resource = ResourceSpecifier::Topic(topic);
        let described = tokio::select! {
            biased;
            described = tokio::time::timeout(
                op + Duration::from_secs(1),
                self.clients().admin.describe_configs([&resource], &opts),
            ) => described,
            why = self.errors.wait_fatal() => {
                return Err(self.fatal_error(&format!("cannot describe topic `{topic}`"), &why));
            }
        }
        .map_err(|_| self.timeout(format!("describing topic `{topic}`"), op))?;
        let cannot = |why: String| {
            Error::Broker(format!(
                "cannot read the configs of topic `{topic}` from {}: {why}{}",
                self.bootstrap,
                self.errors.suffix()
            ))
        };
        let config = match described {
            Ok(mut results) if !results.is_empty() => {
                results.remove(0).map_err(|code| cannot(code.to_string()))?
            }
            Ok(_) => return Err(cannot("no answer".into())),
            Err(e) => return Err(cannot(e.to_string())),
        };
        let value = |name: &str| config.get(name).and_then(|e| e.value.clone());
        let retention = match value("retention.ms") {
            Some(ms) => {
                let ms: i64 = ms
                    .parse()
                    .map_err(|_| cannot(format!("retention.ms is `{ms}`")))?;
                u64::try_from(ms).ok().map(Duration::from_millis)
            }
            None => None,
        };
        let cleanup_policy = match value("cleanup.policy") {
            Some(policy) => policy.parse().map_err(|e: Error| cannot(e.to_string()))?,
            None => CleanupPolicy::Delete,
        };
        Ok(Some(TopicSpec {
            name: topic.to_string(),
            partitions: state.partitions,
            replication: state.replication,
            retention,
            cleanup_policy,
            configs: Vec::new(),
        }))
    }

    /// Enqueue the record and wait for its delivery report, or for a fatal
    /// client error (failed authentication), whichever comes first.
    async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        let (topic, partition) = (record.topic.clone(), record.partition);
        let delivery = self.enqueue(record).await?;
        tokio::select! {
            biased;
            delivered = delivery => delivered,
            why = self.errors.wait_fatal() => Err(self.fatal_error(
                &format!(
                    "cannot deliver a record to topic `{topic}`{}",
                    partition.map(|p| format!(" partition {p}")).unwrap_or_default()
                ),
                &why,
            )),
        }
    }

    async fn enqueue(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let deadline = tokio::time::Instant::now() + self.settings.operation_timeout;
        let mut record = record;
        // Set once the producer queue was found full: delivery reports then
        // wake this send.
        let mut waiting: Option<RoomWaiter<'_>> = None;
        loop {
            let freed = self.deliveries.room.freed.notified();
            tokio::pin!(freed);
            if waiting.is_some() {
                // Registered before trying, so a report in between is not missed.
                freed.as_mut().enable();
            }
            record = match self.try_enqueue(record)? {
                Enqueued::Queued(delivery) => return Ok(delivery),
                Enqueued::WouldWait(back) => back,
                Enqueued::Delivered(delivered) => {
                    return Ok(Box::pin(std::future::ready(Ok(delivered))))
                }
                Enqueued::Reported => {
                    unreachable!("try_enqueue is given no group to report to")
                }
            };
            if waiting.is_none() {
                waiting = Some(RoomWaiter::new(&self.deliveries.room));
                continue;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(self.delivery_error(
                    &record.topic,
                    record.partition,
                    &"the producer queue stayed full",
                ));
            }
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep_until((now + FULL_QUEUE_RECHECK).min(deadline)) => {}
            }
        }
    }

    fn try_enqueue(&self, record: ProducerRecord) -> Result<Enqueued> {
        self.produce(record, Latency::Batched, None)
    }

    /// Through the immediate producer (`linger.ms=0`), made at the first
    /// such record.
    fn try_enqueue_immediate(&self, record: ProducerRecord) -> Result<Enqueued> {
        self.produce(record, Latency::Immediate, None)
    }

    /// Yes: librdkafka's delivery callback reports to the group.
    fn reports_deliveries(&self) -> bool {
        true
    }

    fn try_enqueue_reported(
        &self,
        record: ProducerRecord,
        latency: Latency,
        group: &Arc<DeliveryGroup>,
    ) -> Result<Enqueued> {
        self.produce(record, latency, Some(group))
    }

    async fn flush(&self, timeout: Duration) -> Result<()> {
        // After a fatal producer error queued records are failed within
        // PURGE_EVERY (see `fail_queued_records_after_a_fatal_error`): this
        // does not wait for them long.
        let producers: Vec<_> = self.clients().producers().cloned().collect();
        let flushed = off_runtime("kafka-flush", move || {
            let deadline = Instant::now() + timeout;
            for producer in producers {
                producer.flush(deadline.saturating_duration_since(Instant::now()))?;
            }
            Ok(())
        });
        match tokio::time::timeout(timeout + Duration::from_secs(1), flushed).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)))) | Err(_) => {
                Err(Error::Timeout {
                    what: format!(
                        "delivering the records sent to {}{}",
                        self.bootstrap,
                        self.errors.suffix()
                    ),
                    after: timeout,
                })
            }
            Ok(Ok(Err(e))) => Err(Error::Broker(format!("flush failed: {e}"))),
            Ok(Err(gone)) => Err(Error::Broker(format!("flush failed: {gone}"))),
        }
    }

    /// Join `options.group` on a dedicated consumer thread. The consumer
    /// reports `Assigned` once the group has given it partitions.
    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Consumer>> {
        if options.topics.is_empty() && options.patterns.is_empty() {
            return Err(Error::config(
                "a subscription needs at least one topic or topic pattern",
            ));
        }
        if options.group.is_empty() {
            return Err(Error::config("a consumer group id must not be empty"));
        }
        let mut config = self.consumer_config.clone();
        config.set("group.id", options.group.as_str());
        config.set(
            "auto.offset.reset",
            match options.offset_reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
            },
        );
        let mut topics = options.topics.clone();
        topics.sort();
        topics.dedup();
        if !options.patterns.is_empty() {
            // librdkafka subscribes to a name starting with `^` as a regular
            // expression (matching anywhere): anchored at both ends, it
            // matches whole names, as on memory://.
            topics.extend(
                options
                    .patterns
                    .iter()
                    .map(|p| format!("^({})$", p.as_str())),
            );
            // New topics are found at metadata refreshes: every 5 minutes by
            // librdkafka's default, every 5 s here unless set.
            if config.get("topic.metadata.refresh.interval.ms").is_none() {
                config.set("topic.metadata.refresh.interval.ms", "5000");
            }
        }
        let consumer = self.new_consumer(&config, Mode::Group { topics }, Some(options.group))?;
        Ok(Box::new(consumer))
    }

    /// Read these partitions from their beginning, outside any group (a
    /// throwaway `group.id` that never commits). The first event is
    /// `Assigned(partitions)`, once the metadata shows every partition.
    async fn assign(&self, partitions: Vec<TopicPartition>) -> Result<Box<dyn Consumer>> {
        let tps = dedup_partitions(partitions)?;
        let mut config = self.consumer_config.clone();
        config.set("group.id", format!("faust-assign-{}", uuid::Uuid::new_v4()));
        config.set("auto.offset.reset", "earliest");
        let consumer = self.new_consumer(&config, Mode::Assign { partitions: tps }, None)?;
        Ok(Box::new(consumer))
    }
}

/// Once the producer reports a fatal error (failed authentication, a broker
/// certificate that does not verify), nothing queued can be delivered: a
/// thread fails the queued records at once, and then every
/// [`PURGE_EVERY`] until the transport is dropped, instead of letting each
/// wait out `message.timeout.ms`.
fn fail_queued_records_after_a_fatal_error(producer: &KafkaProducer, errors: &LastError) {
    let producer = producer.clone();
    let errors_ = errors.clone();
    errors.on_producer_fatal(Box::new(move || {
        let errors = errors_;
        let purging = std::thread::Builder::new()
            .name("kafka-purge".into())
            .spawn(move || loop {
                if producer.in_flight_count() > 0 {
                    producer.purge(PurgeConfig::default().queue().inflight());
                }
                if errors.wait_closed(PURGE_EVERY) {
                    break;
                }
            });
        if let Err(e) = purging {
            tracing::debug!(error = %e, "cannot start the thread failing queued records");
        }
    }));
}

impl Drop for KafkaTransport {
    fn drop(&mut self) {
        // Ends the purging thread, if any, and drops what it holds.
        self.errors.close();
        // Closing librdkafka clients joins their threads and may wait for
        // in-flight requests: do it off the caller's thread.
        if let Some(clients) = self.clients.take() {
            let closing = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || drop(clients));
            if let Err(e) = closing {
                tracing::debug!(error = %e, "closing the Kafka clients inline");
            }
        }
    }
}
