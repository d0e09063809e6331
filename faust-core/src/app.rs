//! The app: configuration, the broker connection, the agents, and their
//! start and graceful stop.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::actor::ReplyAddr;
use crate::agent::manager::AgentManager;
use crate::agent::{Agent, AgentSpec};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::record::{Headers, ProducerRecord, RecordMetadata};
use crate::rpc::wire;
use crate::runtime::acks::Message;
use crate::runtime::conductor::Conductor;
use crate::transport::{
    self, DeliveryFuture, Enqueued, OffsetReset, SubscribeOptions, TopicSpec, Transport,
    TransportFactory,
};

/// Environment variable naming the broker URL.
pub const BROKER_ENV: &str = "FAUST_BROKER";

/// App settings. Build with [`App::builder`].
#[derive(Clone)]
#[non_exhaustive]
pub struct AppConfig {
    /// App id: the consumer group and the prefix of default topic names.
    pub id: String,
    /// Broker URL: `memory://` (default), `memory://<name>`, `kafka://host:port`.
    pub broker: String,
    /// Default codec of agent values (JSON).
    pub value_codec: Codec,
    /// Partitions of topics the app creates (8).
    pub topic_partitions: i32,
    /// Replication factor of topics the app creates (1).
    pub topic_replication: i16,
    /// Capacity of each agent queue; a full queue pauses consumption (4096).
    pub stream_buffer_maxsize: usize,
    /// How often acked offsets are committed (1 s).
    pub commit_interval: Duration,
    /// How long stopping actors may take to finish their event (10 s).
    pub stop_timeout: Duration,
    /// How long a revocation waits for in-flight events (10 s).
    pub rebalance_timeout: Duration,
    /// Deadline for broker operations at start, e.g. topic creation (30 s).
    pub broker_timeout: Duration,
    /// Restarts allowed per agent within `restart_window` (100).
    pub max_restarts: u32,
    /// Window of the restart budget (1 s).
    pub restart_window: Duration,
    /// Where failed events are copied, with an error header (none).
    pub dead_letter_topic: Option<String>,
    /// Where a new group starts reading (earliest).
    pub offset_reset: OffsetReset,
    /// Prefix of the reply topic name (`f-reply-`).
    pub reply_to_prefix: String,
    /// This app's reply topic (`<prefix><uuid4>` unless set).
    pub reply_to: String,
    /// Retention of the reply topic (1 day).
    pub reply_expires: Duration,
    /// Default deadline of `ask` (30 s).
    pub ask_timeout: Duration,
}

impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The broker URL may carry secrets (`sasl.password=...`).
        f.debug_struct("AppConfig")
            .field("id", &self.id)
            .field("broker", &crate::redact::redact_url(&self.broker))
            .field("value_codec", &self.value_codec)
            .field("topic_partitions", &self.topic_partitions)
            .field("topic_replication", &self.topic_replication)
            .field("stream_buffer_maxsize", &self.stream_buffer_maxsize)
            .field("commit_interval", &self.commit_interval)
            .field("stop_timeout", &self.stop_timeout)
            .field("rebalance_timeout", &self.rebalance_timeout)
            .field("broker_timeout", &self.broker_timeout)
            .field("max_restarts", &self.max_restarts)
            .field("restart_window", &self.restart_window)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("offset_reset", &self.offset_reset)
            .field("reply_to_prefix", &self.reply_to_prefix)
            .field("reply_to", &self.reply_to)
            .field("reply_expires", &self.reply_expires)
            .field("ask_timeout", &self.ask_timeout)
            .finish()
    }
}

impl AppConfig {
    /// Defaults for an app id; the broker comes from `FAUST_BROKER` or is `memory://`.
    pub fn new(id: impl Into<String>) -> Self {
        let prefix = wire::DEFAULT_REPLY_TO_PREFIX.to_string();
        Self {
            id: id.into(),
            broker: std::env::var(BROKER_ENV).unwrap_or_else(|_| "memory://".to_string()),
            value_codec: Codec::Json,
            topic_partitions: 8,
            topic_replication: 1,
            stream_buffer_maxsize: 4096,
            commit_interval: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            broker_timeout: Duration::from_secs(30),
            max_restarts: 100,
            restart_window: Duration::from_secs(1),
            dead_letter_topic: None,
            offset_reset: OffsetReset::Earliest,
            reply_to: format!("{prefix}{}", uuid::Uuid::new_v4()),
            reply_to_prefix: prefix,
            reply_expires: Duration::from_secs(86_400),
            ask_timeout: Duration::from_secs(30),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.id.trim().is_empty() {
            return Err(Error::config("app id must not be empty"));
        }
        if self.topic_partitions < 1 {
            return Err(Error::config("topic_partitions must be at least 1"));
        }
        if self.stream_buffer_maxsize == 0 {
            return Err(Error::config("stream_buffer_maxsize must be at least 1"));
        }
        if self.ask_timeout.is_zero() {
            return Err(Error::config("ask_timeout must be greater than zero"));
        }
        Ok(())
    }
}

/// Builds an [`App`].
#[derive(Clone)]
pub struct AppBuilder {
    config: AppConfig,
    transports: Vec<(&'static str, TransportFactory)>,
}

impl fmt::Debug for AppBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $($(#[$doc])* pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        })*
    };
}

impl AppBuilder {
    /// A builder starting from a full configuration.
    pub fn from_config(config: AppConfig) -> Self {
        Self {
            config,
            transports: Vec::new(),
        }
    }

    /// Broker URL (overrides `FAUST_BROKER`).
    pub fn broker(mut self, url: impl Into<String>) -> Self {
        self.config.broker = url.into();
        self
    }

    /// Where failed events are copied.
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.config.dead_letter_topic = Some(topic.into());
        self
    }

    /// Reply topic prefix; also renames the reply topic.
    pub fn reply_to_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.config.reply_to = format!("{prefix}{}", uuid::Uuid::new_v4());
        self.config.reply_to_prefix = prefix;
        self
    }

    /// Exact reply topic name.
    pub fn reply_to(mut self, topic: impl Into<String>) -> Self {
        self.config.reply_to = topic.into();
        self
    }

    setters! {
        /// Default value codec.
        value_codec: Codec;
        /// Partitions of created topics.
        topic_partitions: i32;
        /// Replication of created topics.
        topic_replication: i16;
        /// Agent queue capacity.
        stream_buffer_maxsize: usize;
        /// Commit interval.
        commit_interval: Duration;
        /// Graceful stop deadline per actor group.
        stop_timeout: Duration;
        /// Revocation deadline.
        rebalance_timeout: Duration;
        /// Deadline of broker operations at start.
        broker_timeout: Duration;
        /// Restart budget size.
        max_restarts: u32;
        /// Restart budget window.
        restart_window: Duration;
        /// Where a new consumer group starts reading: [`OffsetReset`]
        /// (`Earliest` by default).
        offset_reset: OffsetReset;
        /// Reply topic retention.
        reply_expires: Duration;
        /// Default `ask` deadline.
        ask_timeout: Duration;
    }

    /// Register a transport for a URL scheme (the facade registers `kafka`).
    pub fn transport(mut self, scheme: &'static str, factory: TransportFactory) -> Self {
        self.transports.retain(|(s, _)| *s != scheme);
        self.transports.push((scheme, factory));
        self
    }

    /// Check the configuration, connect the transport and build the app.
    pub fn build(self) -> Result<App> {
        self.config.validate()?;
        let transport = transport::connect(&self.config.broker, &self.transports)?;
        Ok(App::from_inner(Arc::new(AppInner {
            config: self.config,
            transport,
            agents: AgentManager::default(),
            registry: await_tree::Registry::new(await_tree::Config::default()),
            running: tokio::sync::Mutex::new(None),
            crashed: watch::Sender::new(None),
            replies: crate::rpc::ReplyConsumer::default(),
            ack_tasks: tokio_util::task::TaskTracker::new(),
            instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })))
    }
}

/// An app: agents on a broker. Cheap to clone (a shared handle).
///
/// ```
/// # use faust_core as faust;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> faust::Result<()> {
/// use faust::{App, AgentSpec};
/// let app = App::builder("demo").broker("memory://doc-app").build()?;
/// app.add_agent(AgentSpec::handler("double", |x: i64| async move { Ok::<_, faust::Error>(x * 2) }))?;
/// app.start().await?;
/// app.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

pub(crate) struct AppInner {
    pub(crate) config: AppConfig,
    pub(crate) transport: Arc<dyn Transport>,
    agents: AgentManager,
    registry: await_tree::Registry,
    running: tokio::sync::Mutex<Option<Running>>,
    crashed: watch::Sender<Option<Arc<Error>>>,
    pub(crate) replies: crate::rpc::ReplyConsumer,
    ack_tasks: tokio_util::task::TaskTracker,
    /// Unique among the apps of this process (caches keyed by app use it).
    instance: u64,
}

static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

struct Running {
    shutdown: CancellationToken,
    conductor: Option<JoinHandle<Conductor>>,
}

impl App {
    /// Start building an app with this id.
    pub fn builder(id: impl Into<String>) -> AppBuilder {
        AppBuilder {
            config: AppConfig::new(id),
            transports: Vec::new(),
        }
    }

    pub(crate) fn from_inner(inner: Arc<AppInner>) -> Self {
        Self { inner }
    }

    /// The app's settings.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    /// The app id.
    pub fn id(&self) -> &str {
        &self.inner.config.id
    }

    /// The broker connection.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// The agent manager.
    pub fn agents(&self) -> &AgentManager {
        &self.inner.agents
    }

    /// The agent with this name (a leading `@` is ignored).
    pub fn agent(&self, name: &str) -> Result<Agent> {
        self.inner.agents.get(name)
    }

    /// Add an agent. Names must be unique. Agents added after
    /// [`start`](Self::start) are not started.
    pub fn add_agent(&self, spec: AgentSpec) -> Result<Agent> {
        let agent = Agent::new(spec, &self.inner)?;
        self.inner.agents.add(agent.clone())?;
        Ok(agent)
    }

    /// This app's number, unique in the process.
    pub(crate) fn instance(&self) -> u64 {
        self.inner.instance
    }

    pub(crate) fn tree_registry(&self) -> &await_tree::Registry {
        &self.inner.registry
    }

    /// Whether the app is started.
    pub async fn is_running(&self) -> bool {
        self.inner.running.lock().await.is_some()
    }

    /// Start: create the agents' topics, start the agents, join the
    /// consumer group and start consuming.
    pub async fn start(&self) -> Result<()> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let cfg = self.config();
        for agent in self.agents().all().into_iter().filter(|a| !a.is_remote()) {
            let spec = TopicSpec {
                name: agent.topic().to_string(),
                partitions: agent_partitions(&agent, cfg),
                replication: cfg.topic_replication,
                retention: None,
                deleting: true,
            };
            self.with_broker_deadline("creating topic", self.transport().create_topic(&spec))
                .await?;
        }
        if let Some(dlq) = &cfg.dead_letter_topic {
            let spec = TopicSpec::new(dlq.clone(), cfg.topic_partitions);
            self.with_broker_deadline(
                "creating dead-letter topic",
                self.transport().create_topic(&spec),
            )
            .await?;
        }
        self.crashed_reset();
        self.agents().start().await?;
        let shutdown = CancellationToken::new();
        let topics = self.agents().topics();
        let conductor = if topics.is_empty() {
            None
        } else {
            let consumer = self
                .with_broker_deadline(
                    "joining the consumer group",
                    self.transport().subscribe(SubscribeOptions {
                        group: cfg.id.clone(),
                        topics,
                        offset_reset: cfg.offset_reset,
                    }),
                )
                .await?;
            let conductor = Conductor::new(self.clone(), consumer);
            Some(tokio::spawn(conductor.run(shutdown.clone())))
        };
        *running = Some(Running {
            shutdown,
            conductor,
        });
        tracing::info!(app = %cfg.id, broker = %crate::redact::redact_url(&cfg.broker), agents = self.agents().len(), "app started");
        Ok(())
    }

    async fn with_broker_deadline<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let after = self.config().broker_timeout;
        tokio::time::timeout(after, fut)
            .await
            .map_err(|_| Error::Timeout {
                what: format!(
                    "{what} on {}",
                    crate::redact::redact_url(&self.config().broker)
                ),
                after,
            })?
    }

    /// Stop gracefully: stop consuming, let every actor finish its current
    /// event (up to `stop_timeout`), flush the producer so events waiting for
    /// their outputs are acked, commit acked offsets, leave the group.
    /// Events not processed stay uncommitted.
    pub async fn stop(&self) -> Result<()> {
        let running = self.inner.running.lock().await.take();
        let Some(running) = running else {
            // Never started (a client that only asks): stop the reply
            // fetchers and flush what it sent.
            self.inner.replies.stop().await;
            return self.transport().flush(self.config().stop_timeout).await;
        };
        running.shutdown.cancel();
        let conductor = match running.conductor {
            Some(handle) => handle.await.ok(),
            None => None,
        };
        let stopped = self.agents().stop().await;
        // Outputs still in the producer are delivered before the final
        // commit, and the events waiting for them are acked.
        let flushed_early = self.transport().flush(self.config().stop_timeout).await;
        self.inner.ack_tasks.close();
        if tokio::time::timeout(self.config().stop_timeout, self.inner.ack_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("events still waiting for their outputs' delivery stay uncommitted");
        }
        self.inner.ack_tasks.reopen();
        let closed = match conductor {
            Some(c) => c.close().await,
            None => Ok(()),
        };
        self.inner.replies.stop().await;
        let flushed = self.transport().flush(self.config().stop_timeout).await;
        self.agents().service_reset();
        tracing::info!(app = %self.id(), "app stopped");
        stopped.and(flushed_early).and(closed).and(flushed)
    }

    /// Crash the app: [`wait_crashed`](Self::wait_crashed) and
    /// [`run`](Self::run) return this error.
    pub fn crash(&self, err: Error) {
        tracing::error!(app = %self.id(), error = %err, "app crashed");
        self.inner.crashed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(Arc::new(err));
                true
            } else {
                false
            }
        });
    }

    fn crashed_reset(&self) {
        self.inner.crashed.send_replace(None);
    }

    /// The crash reason, if the app crashed.
    pub fn crash_reason(&self) -> Option<Arc<Error>> {
        self.inner.crashed.borrow().clone()
    }

    /// Wait until the app crashes.
    pub async fn wait_crashed(&self) -> Arc<Error> {
        let mut rx = self.inner.crashed.subscribe();
        let guard = rx.wait_for(|c| c.is_some()).await;
        match guard {
            Ok(c) => c.clone().expect("checked by wait_for"),
            Err(_) => Arc::new(Error::Stopped("app".into())),
        }
    }

    /// Start, run until `shutdown` completes or the app crashes, then stop.
    /// Returns the crash reason as an error.
    pub async fn run_until(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        self.start().await?;
        let crashed = tokio::select! {
            _ = shutdown => None,
            reason = self.wait_crashed() => Some(reason),
        };
        let stopped = self.stop().await;
        match crashed {
            Some(reason) => Err(Error::Crashed(reason.to_string())),
            None => stopped,
        }
    }

    /// Start and run until Ctrl-C or SIGTERM, then stop gracefully.
    pub async fn run(&self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    // ----- producing ---------------------------------------------------------

    /// Produce a record.
    pub async fn send_record(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        send_via(self.transport(), record).await
    }

    /// Produce raw bytes to a topic.
    pub async fn send_bytes(
        &self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Headers,
    ) -> Result<RecordMetadata> {
        self.send_record(ProducerRecord {
            topic: topic.into(),
            partition: None,
            key,
            value,
            headers,
            timestamp: None,
        })
        .await
    }

    /// Produce a value to a topic with the app's value codec.
    pub async fn send<V: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &V,
    ) -> Result<RecordMetadata> {
        let bytes = self.config().value_codec.encode_bytes(value)?;
        self.send_bytes(topic, None, Some(bytes), Vec::new()).await
    }

    /// Answer a request: a `ReqRepResponse` to its reply topic.
    pub(crate) async fn send_reply(
        &self,
        addr: &ReplyAddr,
        key: Option<&Bytes>,
        value: std::result::Result<serde_json::Value, String>,
    ) -> Result<Option<DeliveryFuture>> {
        let key = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(|k| serde_json::Value::String(k.to_string()))
            .unwrap_or(serde_json::Value::Null);
        let mut headers = Vec::new();
        let value = match value {
            Ok(v) => v,
            Err(message) => {
                headers.push((wire::ERROR_HEADER.to_string(), Bytes::from(message)));
                serde_json::Value::Null
            }
        };
        let response = wire::ReqRepResponse {
            key,
            value,
            correlation_id: addr.correlation_id.clone(),
        };
        self.enqueue_record(ProducerRecord {
            topic: addr.reply_to.as_str().into(),
            partition: None,
            key: None,
            value: Some(response.encode().into()),
            headers,
            timestamp: None,
        })
        .await
    }

    /// Queue a record with the producer; see [`Transport::enqueue`].
    /// `None`: the broker has it already.
    pub(crate) async fn enqueue_record(
        &self,
        record: ProducerRecord,
    ) -> Result<Option<DeliveryFuture>> {
        match self.transport().try_enqueue(record)?.into_delivery() {
            Ok(delivery) => Ok(delivery),
            Err(record) => self.transport().enqueue(record).await.map(Some),
        }
    }

    /// Background work that acks events once their outputs are delivered.
    pub(crate) fn ack_tasks(&self) -> &tokio_util::task::TaskTracker {
        &self.inner.ack_tasks
    }

    /// Copy a failed message to the dead-letter topic, if one is configured
    /// and the message was not read from it (copying it back would fail it
    /// again, forever).
    pub(crate) async fn dead_letter(&self, msg: &Message, err: &Error) -> Result<()> {
        let Some(topic) = &self.config().dead_letter_topic else {
            return Ok(());
        };
        if msg.topic() == topic {
            tracing::error!(
                topic = %topic,
                partition = msg.partition(),
                offset = msg.offset(),
                "a record of the dead-letter topic failed again; it is not copied back to the topic it was read from"
            );
            return Ok(());
        }
        let mut headers = msg.headers().clone();
        headers.push(("faust-error".into(), Bytes::from(err.to_string())));
        headers.push((
            "faust-source-topic".into(),
            Bytes::from(msg.topic().to_string()),
        ));
        headers.push((
            "faust-source-partition".into(),
            Bytes::from(msg.partition().to_string()),
        ));
        headers.push((
            "faust-source-offset".into(),
            Bytes::from(msg.offset().to_string()),
        ));
        self.send_record(ProducerRecord {
            topic: topic.as_str().into(),
            partition: None,
            key: msg.key().cloned(),
            value: msg.value().cloned(),
            headers,
            timestamp: Some(msg.timestamp()),
        })
        .await?;
        Ok(())
    }
}

fn agent_partitions(agent: &Agent, cfg: &AppConfig) -> i32 {
    agent.partitions().unwrap_or(cfg.topic_partitions)
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id())
            .field("broker", &crate::redact::redact_url(&self.config().broker))
            .finish_non_exhaustive()
    }
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM. The handlers are
/// installed when this is called, not when the future is first polled, so
/// a signal that arrives while the app is still starting is not missed.
/// Call it inside a tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl App {
    /// The reply consumer of this app.
    pub fn replies(&self) -> &crate::rpc::ReplyConsumer {
        &self.inner.replies
    }
}

/// Send `record` with `transport` and wait for its delivery.
pub(crate) async fn send_via(
    transport: &Arc<dyn Transport>,
    record: ProducerRecord,
) -> Result<RecordMetadata> {
    match transport.try_enqueue(record)? {
        Enqueued::Delivered(delivered) => {
            // Nothing waited: spend tokio's cooperative budget, so a loop of
            // sends lets the other tasks of its thread run.
            tokio::task::consume_budget().await;
            Ok(delivered)
        }
        Enqueued::Queued(delivery) => delivery.await,
        Enqueued::WouldWait(record) => transport.send(record).await,
    }
}
