//! The app: its agents on a broker, started together, stopped gracefully,
//! and crashed as one.
//!
//! [`AppBuilder`] (in `builder.rs`) builds the shared
//! [`Context`](crate::context) and the [`App`] around it; the conductor
//! (`conductor.rs`) reads the group consumer and hands records to the agents.

mod builder;
mod collect;
pub(crate) mod conductor;
mod health;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::manager::AgentManager;
use crate::agent::{Agent, AgentSpec};
use crate::channel::Channel;
use crate::codec::Value;
use crate::context::{AgentRoute, Context};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::record::{Headers, ProducerRecord, RecordMetadata};
use crate::runtime::inbox::ValueType;
use crate::sync::Mutex;
use crate::timer::{self, TimerSpec, Timers};
use crate::topic::Topic;
use crate::transport::{SubscribeOptions, TopicSpec, Transport};

pub use self::builder::AppBuilder;
use self::conductor::Conductor;
pub use self::health::{Health, Stall};
pub use crate::config::{AppConfig, APP_ID_ENV, BROKER_ENV};

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

struct AppInner {
    ctx: Arc<Context>,
    agents: AgentManager,
    /// The topics declared with [`App::topic`], in order.
    topics: Mutex<Vec<Topic>>,
    /// The timers added with [`App::add_timer`], in order.
    timers: Mutex<Vec<TimerSpec>>,
    running: tokio::sync::Mutex<Option<Running>>,
    /// The app's metrics registry.
    metrics: Metrics,
    /// What the stall watch last saw of each partition.
    watch: Mutex<health::Watch>,
}

struct Running {
    shutdown: CancellationToken,
    conductor: Option<JoinHandle<Conductor>>,
    timers: Timers,
    /// The stall watch.
    watch: JoinHandle<()>,
}

impl App {
    /// Start building an app with this id.
    pub fn builder(id: impl Into<String>) -> AppBuilder {
        AppBuilder::from_config(AppConfig::new(id))
    }

    fn from_context(ctx: Context) -> Self {
        Self {
            inner: Arc::new_cyclic(|app| AppInner {
                ctx: Arc::new(ctx),
                agents: AgentManager::default(),
                topics: Mutex::new(Vec::new()),
                timers: Mutex::new(Vec::new()),
                running: tokio::sync::Mutex::new(None),
                metrics: Metrics::new(collect::AppCollector { app: app.clone() }),
                watch: Mutex::default(),
            }),
        }
    }

    pub(crate) fn context(&self) -> &Arc<Context> {
        &self.inner.ctx
    }

    /// The app's settings.
    pub fn config(&self) -> &AppConfig {
        &self.inner.ctx.config
    }

    /// The app id.
    pub fn id(&self) -> &str {
        &self.config().id
    }

    /// The broker connection.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        self.inner.ctx.transport()
    }

    /// The app's metrics: the runtime's `faust_*` ones and any you
    /// register, encoded for Prometheus by [`Metrics::encode`] (the web
    /// endpoint's `/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
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
        let agent = Agent::new(spec, self.context().clone())?;
        self.inner.agents.add(agent.clone())?;
        let route = match agent.inbox() {
            Some(inbox) => {
                inbox.add_reader(agent.name());
                Some(AgentRoute::Channel(inbox.clone()))
            }
            None => agent.topic_name().ok().cloned().map(AgentRoute::Topic),
        };
        self.context()
            .add_agent(agent.name(), agent.value_codec().clone(), route);
        Ok(agent)
    }

    /// The in-memory channel `name`, carrying values of type `T`: the one
    /// agents read with [`AgentSpec::channel`], or a new one for agents
    /// added later. An error if the channel carries another type.
    pub fn channel<T: Value>(&self, name: &str) -> Result<Channel<T>> {
        let inbox = self.context().channel(name, ValueType::of::<T>())?;
        Ok(Channel::new(inbox, self.context().clone()))
    }

    /// A codec by name or value, names looked up in the app's codecs
    /// ([`AppBuilder::codec`]): `app.codec("json|binary")?.encode(&v)?`.
    /// An unknown name is an [`Error::Config`] listing the known ones.
    pub fn codec(
        &self,
        codec: impl Into<crate::codec::CodecRef>,
    ) -> Result<crate::codec::CodecRef> {
        self.context().codec(&codec.into())
    }

    /// The reply consumer of this app.
    pub fn replies(&self) -> &crate::rpc::ReplyConsumer {
        &self.inner.ctx.replies
    }

    /// Whether the app is started.
    pub async fn is_running(&self) -> bool {
        self.inner.running.lock().await.is_some()
    }

    /// Whether the app is started, without waiting: `false` while it is
    /// starting or stopping.
    pub fn is_started(&self) -> bool {
        self.inner
            .running
            .try_lock()
            .is_ok_and(|running| running.is_some())
    }

    /// Declare a topic ([`Topic`], a name converts): the app creates it
    /// when it starts, with the settings the topic states and the app's
    /// defaults (`topic_partitions`, `topic_replication`) for the others.
    /// If it exists already, a setting it states that differs on the
    /// broker makes [`start`](Self::start) fail with
    /// [`Error::TopicMismatch`]. Returns the topic, to pass to agents,
    /// sinks and [`send_to`](Self::send_to).
    ///
    /// ```
    /// # use faust_core as faust;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> faust::Result<()> {
    /// use faust::{App, Topic};
    /// let app = App::builder("demo").broker("memory://doc-app-topic").build()?;
    /// let orders = app.topic(Topic::new("orders").partitions(4).compacted());
    /// app.start().await?;
    /// let found = app.transport().describe_topic("orders").await?.unwrap();
    /// assert_eq!(found.partitions, 4);
    /// app.send_to(&orders, &"first order").await?;
    /// app.stop().await?;
    /// # Ok(()) }
    /// ```
    pub fn topic(&self, topic: impl Into<Topic>) -> Topic {
        let topic = topic.into();
        self.inner.topics.lock().push(topic.clone());
        topic
    }

    /// Add a timer, run while the app runs (see [`TimerSpec`]). Names are
    /// unique among the app's timers; a timer added while the app runs
    /// starts with its next start.
    pub fn add_timer(&self, timer: TimerSpec) -> Result<()> {
        timer.validate()?;
        let mut timers = self.inner.timers.lock();
        if timers.iter().any(|t| t.name() == timer.name()) {
            return Err(Error::config(format!(
                "a timer named `{}` is already added to app `{}`",
                timer.name(),
                self.id()
            )));
        }
        timers.push(timer);
        Ok(())
    }

    /// The app's timers, in the order added.
    pub fn timers(&self) -> Vec<TimerSpec> {
        self.inner.timers.lock().clone()
    }

    /// Whether this worker is the group's leader: it holds the app's
    /// leader topic, which the app joins when one of its timers runs
    /// [`on_leader`](TimerSpec::on_leader) (else this is `false`). On the
    /// embedded broker a single worker is always the leader.
    pub fn is_leader(&self) -> bool {
        self.context()
            .leader
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The leader topic, when a timer needs the election.
    fn leader_topic(&self) -> Option<String> {
        self.inner
            .timers
            .lock()
            .iter()
            .any(TimerSpec::is_on_leader)
            .then(|| timer::leader_topic(self.id()))
    }

    /// The topics to create at start, each once, with the partitions to
    /// create it with where it states none: the declared ones, then the
    /// agents' (an agent's `partitions` applies to its topics), then
    /// those of topic sinks.
    fn topics_to_create(&self) -> Result<Vec<(Topic, i32)>> {
        let default = self.config().topic_partitions;
        let mut all: Vec<(Topic, i32)> = self
            .inner
            .topics
            .lock()
            .iter()
            .map(|t| (t.clone(), default))
            .collect();
        for agent in self.agents().all().into_iter().filter(|a| !a.is_remote()) {
            let partitions = agent.partitions().unwrap_or(default);
            for topic in agent.declared_topics() {
                all.push((topic, partitions));
            }
            for sink in agent.sinks().iter() {
                if let Some(topic) = &sink.topic {
                    all.push((topic.clone(), default));
                }
            }
        }
        let mut once: Vec<(Topic, i32)> = Vec::with_capacity(all.len());
        for (topic, partitions) in all {
            match once.iter_mut().find(|(t, _)| t.name() == topic.name()) {
                Some(seen) => seen.0 = seen.0.merge(&topic)?,
                None => once.push((topic, partitions)),
            }
        }
        Ok(once)
    }

    /// Start: create the topics (declared with [`topic`](Self::topic), the
    /// agents' and their topic sinks') and check the settings they state,
    /// start the agents, join the consumer group and start consuming.
    pub async fn start(&self) -> Result<()> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let ctx = self.context();
        let cfg = self.config();
        for agent in self.agents().all() {
            agent.check_sinks()?;
        }
        for (topic, partitions) in self.topics_to_create()? {
            let spec = topic.spec(partitions, cfg.topic_replication);
            ctx.with_broker_deadline("creating topic", self.transport().create_topic(&spec))
                .await?;
            if topic.states_settings() {
                let found = ctx
                    .with_broker_deadline(
                        "checking topic settings",
                        self.transport().describe_topic(topic.name()),
                    )
                    .await?;
                if let Some(found) = found {
                    topic.check(&spec, &found)?;
                }
            }
        }
        if let Some(dlq) = &cfg.dead_letter_topic {
            let spec = TopicSpec::new(dlq.clone(), cfg.topic_partitions);
            ctx.with_broker_deadline(
                "creating dead-letter topic",
                self.transport().create_topic(&spec),
            )
            .await?;
        }
        let leader_topic = self.leader_topic();
        if let Some(topic) = &leader_topic {
            let spec = TopicSpec::new(topic.clone(), 1);
            ctx.with_broker_deadline(
                "creating the leader topic",
                self.transport().create_topic(&spec),
            )
            .await?;
        }
        ctx.crashed_reset();
        self.agents().start_agents(true).await?;
        let shutdown = CancellationToken::new();
        let mut topics = self.agents().topics();
        topics.extend(leader_topic);
        let patterns = self.agents().patterns();
        let conductor = if topics.is_empty() && patterns.is_empty() {
            None
        } else {
            let consumer = ctx
                .with_broker_deadline(
                    "joining the consumer group",
                    self.transport().subscribe(SubscribeOptions {
                        group: cfg.id.clone(),
                        topics,
                        patterns,
                        offset_reset: cfg.offset_reset,
                    }),
                )
                .await?;
            let conductor = Conductor::new(self.clone(), consumer);
            Some(tokio::spawn(conductor.run(shutdown.clone())))
        };
        let timers = Timers::start(self, self.timers());
        let watch = health::start_watch(self, shutdown.clone());
        *running = Some(Running {
            shutdown,
            conductor,
            timers,
            watch,
        });
        tracing::info!(app = %cfg.id, broker = %crate::redact::redact_url(&cfg.broker), agents = self.agents().len(), "app started");
        Ok(())
    }

    /// Stop gracefully: stop consuming, let every actor finish its current
    /// event (up to `stop_timeout`), flush the producer so events waiting for
    /// their outputs are acked, commit acked offsets, leave the group.
    /// Events not processed stay uncommitted.
    pub async fn stop(&self) -> Result<()> {
        let ctx = self.context();
        let stop_timeout = self.config().stop_timeout;
        let running = self.inner.running.lock().await.take();
        let Some(running) = running else {
            // Never started (a client that only asks): stop the reply
            // fetchers and flush what it sent.
            ctx.replies.stop();
            return self.transport().flush(stop_timeout).await;
        };
        running.timers.stop(stop_timeout).await;
        running.shutdown.cancel();
        let _ = running.watch.await;
        let conductor = match running.conductor {
            Some(handle) => handle.await.ok(),
            None => None,
        };
        let stopped = self.agents().stop_agents().await;
        // Outputs still in the producer are delivered before the final
        // commit, and the events waiting for them are acked.
        let flushed_early = self.transport().flush(stop_timeout).await;
        ctx.ack_tasks.close();
        if tokio::time::timeout(stop_timeout, ctx.ack_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("events still waiting for their outputs' delivery stay uncommitted");
        }
        ctx.ack_tasks.reopen();
        let closed = match conductor {
            Some(c) => c.close().await,
            None => Ok(()),
        };
        ctx.replies.stop();
        let flushed = self.transport().flush(stop_timeout).await;
        self.agents().service_reset();
        tracing::info!(app = %self.id(), "app stopped");
        stopped.and(flushed_early).and(closed).and(flushed)
    }

    /// Crash the app: [`wait_crashed`](Self::wait_crashed) and
    /// [`run`](Self::run) return this error.
    pub fn crash(&self, err: Error) {
        self.context().crash(err);
    }

    /// The crash reason, if the app crashed.
    pub fn crash_reason(&self) -> Option<Arc<Error>> {
        self.context().crash_reason()
    }

    /// Wait until the app crashes.
    pub async fn wait_crashed(&self) -> Arc<Error> {
        self.context().wait_crashed().await
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

    /// Produce a record and wait for its delivery.
    pub async fn send_record(&self, mut record: ProducerRecord) -> Result<RecordMetadata> {
        crate::agent::trace::inject_for_send(&mut record.headers, false);
        self.context().producer.send(record).await
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

    /// Produce a value to a topic (Faust's `topic.send(value=...)`),
    /// encoded with the topic's value codec, else the app's; no key.
    ///
    /// ```
    /// # use faust_core as faust;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> faust::Result<()> {
    /// use faust::{App, Topic};
    /// let app = App::builder("demo").broker("memory://doc-send-to").build()?;
    /// let readings = app.topic(Topic::new("readings").value_codec("bincode"));
    /// let sent = app.send_to(&readings, &21.5_f64).await?;
    /// assert_eq!(sent.offset, 0);
    /// # Ok(()) }
    /// ```
    pub async fn send_to<V: serde::Serialize + ?Sized>(
        &self,
        topic: impl Into<Topic>,
        value: &V,
    ) -> Result<RecordMetadata> {
        let topic = topic.into();
        let bytes = self.topic_value_codec(&topic)?.encode_bytes(value)?;
        self.send_bytes(topic.name(), None, Some(bytes), Vec::new())
            .await
    }

    /// The codec of `topic`'s values: its own, else the app's.
    fn topic_value_codec(&self, topic: &Topic) -> Result<crate::codec::CodecRef> {
        match topic.value_serializer() {
            Some(codec) => self.codec(codec.clone()),
            None => Ok(self.config().value_codec.clone()),
        }
    }

    /// Produce a keyed value to a topic (Faust's `topic.send(key=...,
    /// value=...)`): the key encoded with the topic's key codec, else raw
    /// (a `String` or bytes), the value as in [`send_to`](Self::send_to).
    /// The key picks the partition (Kafka's partitioner).
    ///
    /// ```
    /// # use faust_core as faust;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> faust::Result<()> {
    /// use faust::{App, Topic};
    /// let app = App::builder("demo").broker("memory://doc-send-keyed-to").build()?;
    /// let orders = app.topic(Topic::new("orders"));
    /// app.send_keyed_to(&orders, "customer-7", &"two apples").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_keyed_to<K, V>(
        &self,
        topic: impl Into<Topic>,
        key: &K,
        value: &V,
    ) -> Result<RecordMetadata>
    where
        K: serde::Serialize + ?Sized,
        V: serde::Serialize + ?Sized,
    {
        let topic = topic.into();
        let key_codec = match topic.key_serializer() {
            Some(codec) => self.codec(codec.clone())?,
            None => crate::codec::CodecRef::RAW,
        };
        let key = key_codec.encode_bytes(key)?;
        let bytes = self.topic_value_codec(&topic)?.encode_bytes(value)?;
        self.send_bytes(topic.name(), Some(key), Some(bytes), Vec::new())
            .await
    }

    /// Produce a value to a topic with the app's value codec (the topic by
    /// name: see [`send_to`](Self::send_to) for a [`Topic`]'s own codec).
    pub async fn send<V: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &V,
    ) -> Result<RecordMetadata> {
        self.send_to(topic, value).await
    }
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
