//! Agents: an async function bound to a topic, run as supervised actors.
//!
//! An [`AgentSpec`] declares an agent (function, topic, options); adding it
//! to an [`App`] gives an [`Agent`], the running handle. The [`AgentT`] trait
//! is the object-safe part of the agent API, as in Faust's `AgentT`.

pub(crate) mod actor;
pub mod manager;
pub mod sink;
pub mod stream;
pub mod supervisor;

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppInner};
use crate::codec::{Codec, Value};
use crate::error::{Error, Result};
use crate::record::{Headers, RecordMetadata, TopicPartition};
use crate::runtime::acks::Message;
use crate::runtime::queue::{AgentQueue, Queue};

pub use self::actor::MAX_UNACKED;
use self::actor::{
    run_actor, ActorBody, ActorCtx, BoxError, ConsumerBody, HandlerBody, Outcome, ProducerBody,
    YieldingBody,
};
use self::sink::{ErasedSink, Sink};
use self::stream::{Stream, Yield};
use self::supervisor::{Decision, RestartBudget, SupervisorStrategy};

/// Called with the agent and the error when an agent function fails.
pub type OnError = Arc<dyn Fn(&Agent, &Error) + Send + Sync>;

/// The declaration of an agent: its function and options.
///
/// Build one with a constructor per function form, then set options:
///
/// ```
/// # use faust_core as faust;
/// use faust::{AgentSpec, Stream, Yield};
///
/// // A consumer: reads events, produces nothing.
/// let log = AgentSpec::consumer("log", |mut s: Stream<String>| async move {
///     while let Some(line) = s.next().await {
///         println!("{line}");
///     }
///     Ok::<_, faust::Error>(())
/// })
/// .topic("lines");
///
/// // A per-event handler: its result answers the request and feeds sinks.
/// let double = AgentSpec::handler("double", |x: i64| async move { Ok::<_, faust::Error>(x * 2) })
///     .concurrency(4);
/// ```
#[derive(Clone)]
pub struct AgentSpec {
    pub(crate) name: String,
    pub(crate) qualname: Option<String>,
    pub(crate) topic: Option<String>,
    pub(crate) partitions: Option<i32>,
    pub(crate) concurrency: usize,
    pub(crate) isolated_partitions: bool,
    pub(crate) use_reply_headers: bool,
    pub(crate) help: String,
    pub(crate) value_codec: Option<Codec>,
    pub(crate) key_codec: Codec,
    pub(crate) supervisor: SupervisorStrategy,
    pub(crate) on_error: Option<OnError>,
    pub(crate) sinks: Vec<ErasedSink>,
    pub(crate) body: Arc<dyn ActorBody>,
    pub(crate) output: Option<(TypeId, &'static str)>,
    pub(crate) output_json: Option<OutputJson>,
    pub(crate) value_type: &'static str,
    pub(crate) remote: bool,
}

/// Turns a produced value (type-erased) into JSON, for the test harness.
pub(crate) type OutputJson = fn(&(dyn std::any::Any + Send + Sync)) -> Option<serde_json::Value>;

fn output_json<R: Value>(v: &(dyn std::any::Any + Send + Sync)) -> Option<serde_json::Value> {
    v.downcast_ref::<R>()
        .and_then(|r| serde_json::to_value(r).ok())
}

impl AgentSpec {
    fn with_body(
        name: impl Into<String>,
        body: Arc<dyn ActorBody>,
        value_type: &'static str,
        output: Option<(TypeId, &'static str)>,
        output_json: Option<OutputJson>,
    ) -> Self {
        Self {
            name: name.into(),
            qualname: None,
            topic: None,
            partitions: None,
            concurrency: 1,
            isolated_partitions: false,
            use_reply_headers: true,
            help: String::new(),
            value_codec: None,
            key_codec: Codec::Raw,
            supervisor: SupervisorStrategy::OneForOne,
            on_error: None,
            sinks: Vec::new(),
            body,
            output,
            output_json,
            value_type,
            remote: false,
        }
    }

    /// An agent that consumes its stream and produces nothing:
    /// `async fn(Stream<T>) -> Result<(), E>`.
    pub fn consumer<T, F, Fut, E>(name: impl Into<String>, f: F) -> Self
    where
        T: Value,
        F: Fn(Stream<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let body = ConsumerBody::<T, F>(f, PhantomData);
        Self::with_body(name, Arc::new(body), std::any::type_name::<T>(), None, None)
    }

    /// An agent that produces values with [`Yield::send`] (Faust's `yield`):
    /// `async fn(Stream<T>, Yield<R>) -> Result<(), E>`.
    pub fn yielding<T, R, F, Fut, E>(name: impl Into<String>, f: F) -> Self
    where
        T: Value,
        R: Value,
        F: Fn(Stream<T>, Yield<R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let body = YieldingBody::<T, R, F>(f, PhantomData);
        Self::with_body(
            name,
            Arc::new(body),
            std::any::type_name::<T>(),
            Some(output::<R>()),
            Some(output_json::<R>),
        )
    }

    /// An agent whose function turns its stream into a stream of results:
    /// `fn(Stream<T>) -> impl futures::Stream<Item = Result<R, E>>`.
    pub fn producer<T, R, F, S, E>(name: impl Into<String>, f: F) -> Self
    where
        T: Value,
        R: Value,
        F: Fn(Stream<T>) -> S + Send + Sync + 'static,
        S: futures::Stream<Item = std::result::Result<R, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let body = ProducerBody::<T, R, F>(f, PhantomData);
        Self::with_body(
            name,
            Arc::new(body),
            std::any::type_name::<T>(),
            Some(output::<R>()),
            Some(output_json::<R>),
        )
    }

    /// An agent called once per event: `async fn(T) -> Result<R, E>`. Its
    /// result answers the event and goes to the sinks; an error fails that
    /// event only and the actor carries on.
    pub fn handler<T, R, F, Fut, E>(name: impl Into<String>, f: F) -> Self
    where
        T: Value,
        R: Value,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<R, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let body = HandlerBody::<T, R, F>(Arc::new(f), PhantomData);
        Self::with_body(
            name,
            Arc::new(body),
            std::any::type_name::<T>(),
            Some(output::<R>()),
            Some(output_json::<R>),
        )
    }

    /// An agent that runs elsewhere (another process, a Python Faust app):
    /// this app only calls it (`send`, `ask`, `join`...), never consumes its
    /// topic. Set `topic`, `value_codec` and `use_reply_headers` to match it.
    pub fn remote(name: impl Into<String>) -> Self {
        let mut spec = Self::consumer(name, |_: Stream<serde_json::Value>| async {
            Err::<(), Error>(Error::config("a remote agent does not run here"))
        });
        spec.remote = true;
        spec
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rename the agent.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The qualified name used for the default topic `<app id>-<qualname>`
    /// (the macro passes `module::path::fn`; default: the agent name).
    pub fn qualname(mut self, qualname: impl Into<String>) -> Self {
        self.qualname = Some(qualname.into());
        self
    }

    /// The topic to consume (default `<app id>-<qualname>`).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Partitions of the topic when the app creates it (default: the app's).
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Number of actors sharing the agent's queue (default 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Run one actor per assigned partition (requires concurrency 1).
    pub fn isolated_partitions(mut self, on: bool) -> Self {
        self.isolated_partitions = on;
        self
    }

    /// Send the reply address of requests in headers (true, the default)
    /// or in a `ReqRepRequest` JSON envelope (false).
    pub fn use_reply_headers(mut self, on: bool) -> Self {
        self.use_reply_headers = on;
        self
    }

    /// Help text shown by the CLI.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = help.into();
        self
    }

    /// Codec of values (default: the app's, JSON unless configured).
    pub fn value_codec(mut self, codec: Codec) -> Self {
        self.value_codec = Some(codec);
        self
    }

    /// Codec of keys (default: raw bytes, as in Faust).
    pub fn key_codec(mut self, codec: Codec) -> Self {
        self.key_codec = codec;
        self
    }

    /// Supervisor strategy (default: one-for-one).
    pub fn supervisor(mut self, strategy: SupervisorStrategy) -> Self {
        self.supervisor = strategy;
        self
    }

    /// Called when the agent function fails (error, panic, undecodable event).
    pub fn on_error<F>(mut self, f: F) -> Self
    where
        F: Fn(&Agent, &Error) + Send + Sync + 'static,
    {
        self.on_error = Some(Arc::new(f));
        self
    }

    /// Add a sink for the values the agent produces. Only value-producing
    /// forms may have sinks; the value type must match (checked when the
    /// agent is added to an app).
    pub fn sink<R: Value>(mut self, sink: Sink<R>) -> Self {
        let erased = sink.erase();
        if erased.key.is_none() || !self.sinks.iter().any(|s| s.key == erased.key) {
            self.sinks.push(erased);
        }
        self
    }

    /// Check the options; errors name the fix.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::config("agent name must not be empty"));
        }
        if self.concurrency == 0 {
            return Err(Error::config(format!(
                "agent `{}`: concurrency must be at least 1",
                self.name
            )));
        }
        if self.isolated_partitions && self.concurrency > 1 {
            return Err(Error::config(format!(
                "agent `{}`: concurrency must be 1 when using isolated partitions",
                self.name
            )));
        }
        match self.output {
            None if !self.sinks.is_empty() => {
                return Err(Error::config(format!(
                    "agent `{}` must produce values to use sinks (use the yielding, producer or handler form)",
                    self.name
                )))
            }
            Some((tid, out)) => {
                if let Some(bad) = self.sinks.iter().find(|s| s.type_id != tid) {
                    return Err(Error::config(format!(
                        "agent `{}` produces `{out}` but sink {} takes `{}`",
                        self.name, bad.label, bad.type_name
                    )));
                }
            }
            None => {}
        }
        Ok(())
    }
}

fn output<R: 'static>() -> (TypeId, &'static str) {
    (TypeId::of::<R>(), std::any::type_name::<R>())
}

impl fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSpec")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("concurrency", &self.concurrency)
            .field("isolated_partitions", &self.isolated_partitions)
            .finish_non_exhaustive()
    }
}

/// A snapshot of an agent's attributes (Faust's `Agent.info()`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AgentInfo {
    /// Agent name.
    pub name: String,
    /// Topic it consumes.
    pub topic: String,
    /// Number of actors.
    pub concurrency: usize,
    /// One actor per partition.
    pub isolated_partitions: bool,
    /// Reply address in headers rather than an envelope.
    pub use_reply_headers: bool,
    /// Help text.
    pub help: String,
    /// Sinks, described (`@agent`, topic name or `<callback>`).
    pub sinks: Vec<String>,
    /// Supervisor strategy name.
    pub supervisor_strategy: String,
    /// Whether an `on_error` callback is set.
    pub has_on_error: bool,
    /// Value codec name.
    pub value_codec: String,
    /// Rust type of the values it consumes.
    pub value_type: String,
    /// Whether it produces values (replies and sinks).
    pub produces_values: bool,
}

/// Counters of one agent.
#[derive(Debug, Default)]
pub struct AgentStats {
    events_in: AtomicU64,
    values_out: AtomicU64,
    errors: AtomicU64,
    crashes: AtomicU64,
    restarts: AtomicU64,
    asks: AtomicU64,
    ask_micros: AtomicU64,
}

impl AgentStats {
    pub(crate) fn record_in(&self) {
        self.events_in.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn record_out(&self) {
        self.values_out.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn record_crash(&self) {
        self.crashes.fetch_add(1, Ordering::Relaxed);
    }
    /// Events decoded and handed to the function.
    pub fn events_in(&self) -> u64 {
        self.events_in.load(Ordering::Relaxed)
    }
    /// Values produced (replies/sinks).
    pub fn values_out(&self) -> u64 {
        self.values_out.load(Ordering::Relaxed)
    }
    /// Errors reported to `on_error`.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
    /// Actor crashes.
    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::Relaxed)
    }
    /// Actor restarts by the supervisor.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    pub(crate) fn record_ask(&self, elapsed: Duration) {
        self.asks.fetch_add(1, Ordering::Relaxed);
        self.ask_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
    /// Answered `ask`s made through this handle.
    pub fn asks(&self) -> u64 {
        self.asks.load(Ordering::Relaxed)
    }
    /// Mean round trip of answered `ask`s.
    pub fn mean_ask_latency(&self) -> Option<Duration> {
        let n = self.asks();
        (n > 0).then(|| Duration::from_micros(self.ask_micros.load(Ordering::Relaxed) / n))
    }
}

/// What an observer (the test harness) learns about each finished event.
#[derive(Debug)]
pub(crate) struct Processed {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) error: Option<String>,
    pub(crate) value: Option<Bytes>,
}

/// A running agent. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Agent {
    inner: Arc<AgentInner>,
}

pub(crate) struct AgentInner {
    spec: AgentSpec,
    topic: Arc<str>,
    value_codec: Codec,
    app: Weak<AppInner>,
    /// The app's transport: sending needs no upgrade of `app`.
    transport: Arc<dyn crate::transport::Transport>,
    sinks: RwLock<Arc<Vec<ErasedSink>>>,
    stats: AgentStats,
    observer: OnceLock<mpsc::UnboundedSender<Processed>>,
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Index(Option<usize>),
    Partition(i32),
}

struct ActorHandle {
    slot: Slot,
    ctx: Arc<ActorCtx>,
    join: JoinHandle<()>,
}

struct Exit {
    id: u64,
    outcome: Outcome,
}

/// The agent's side of a queue: closes it when dropped (the actors read
/// what is queued, then their stream ends).
struct QueueTx(Queue);

impl Drop for QueueTx {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl State {
    /// The queue of isolated `partition`, or the shared one for `None`.
    fn queue(&self, partition: Option<i32>) -> Option<Queue> {
        match partition {
            Some(p) => self.isolated.get(&p),
            None => self.shared.as_ref(),
        }
        .map(|q| q.0.clone())
    }
}

#[derive(Default)]
struct State {
    started: bool,
    stopping: bool,
    shared: Option<QueueTx>,
    isolated: BTreeMap<i32, QueueTx>,
    actors: HashMap<u64, ActorHandle>,
    finished: Vec<String>,
    next_id: u64,
    budget: Option<RestartBudget>,
    exits: Option<mpsc::UnboundedSender<Exit>>,
    supervisor: Option<JoinHandle<()>>,
}

impl Agent {
    pub(crate) fn new(spec: AgentSpec, app: &Arc<AppInner>) -> Result<Self> {
        spec.validate()?;
        let topic: Arc<str> = match &spec.topic {
            Some(topic) => topic.as_str().into(),
            None => {
                let qual = spec.qualname.as_deref().unwrap_or(&spec.name);
                format!("{}-{}", app.config.id, qual.replace("::", ".")).into()
            }
        };
        let value_codec = spec.value_codec.unwrap_or(app.config.value_codec);
        let sinks = RwLock::new(Arc::new(spec.sinks.clone()));
        Ok(Agent {
            inner: Arc::new(AgentInner {
                spec,
                topic,
                value_codec,
                app: Arc::downgrade(app),
                transport: app.transport.clone(),
                sinks,
                stats: AgentStats::default(),
                observer: OnceLock::new(),
                state: Mutex::new(State::default()),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }
    /// The topic the agent consumes.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }
    /// The topic name, shared (cheap to clone into records).
    pub(crate) fn topic_name(&self) -> &Arc<str> {
        &self.inner.topic
    }
    /// Number of actors sharing the queue.
    pub fn concurrency(&self) -> usize {
        self.inner.spec.concurrency
    }
    /// Whether the agent runs one actor per partition.
    pub fn isolated_partitions(&self) -> bool {
        self.inner.spec.isolated_partitions
    }
    /// Help text.
    pub fn help(&self) -> &str {
        &self.inner.spec.help
    }
    /// Supervisor strategy.
    pub fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.inner.spec.supervisor
    }
    /// Whether requests carry their reply address in headers.
    pub fn use_reply_headers(&self) -> bool {
        self.inner.spec.use_reply_headers
    }
    /// Codec of values.
    pub fn value_codec(&self) -> Codec {
        self.inner.value_codec
    }
    /// Codec of keys.
    pub fn key_codec(&self) -> Codec {
        self.inner.spec.key_codec
    }
    /// Partitions of the topic when the app creates it (`None`: the app's default).
    pub fn partitions(&self) -> Option<i32> {
        self.inner.spec.partitions
    }
    /// Whether the agent runs elsewhere ([`AgentSpec::remote`]).
    pub fn is_remote(&self) -> bool {
        self.inner.spec.remote
    }
    /// Whether the function produces values (replies and sinks).
    pub fn produces_values(&self) -> bool {
        self.inner.spec.output.is_some()
    }
    /// Counters.
    pub fn stats(&self) -> &AgentStats {
        &self.inner.stats
    }
    /// The channel the agent reads: its topic name (Faust's `agent.channel`).
    pub fn channel(&self) -> &str {
        &self.inner.topic
    }
    /// A stream over the agent's shared queue (Faust's `channel_iterator`);
    /// same as [`stream`](Self::stream) with no partition.
    pub fn channel_iterator<T: Value>(&self) -> Result<Stream<T>> {
        self.stream(None)
    }
    /// Topic names the agent subscribes to.
    pub fn get_topic_names(&self) -> Vec<String> {
        vec![self.inner.topic.to_string()]
    }
    /// `"Agent: <name>"`.
    pub fn label(&self) -> String {
        format!("Agent: {}", self.name())
    }
    /// Same as [`label`](Self::label).
    pub fn shortlabel(&self) -> String {
        self.label()
    }

    /// The app this agent belongs to.
    ///
    /// # Panics
    /// If the app was dropped while the agent handle is still used.
    pub fn app(&self) -> App {
        App::from_inner(
            self.inner
                .app
                .upgrade()
                .expect("the agent's app was dropped"),
        )
    }

    pub(crate) fn try_app(&self) -> Option<App> {
        self.inner.app.upgrade().map(App::from_inner)
    }

    /// The agent's attributes.
    pub fn info(&self) -> AgentInfo {
        AgentInfo {
            name: self.name().to_string(),
            topic: self.topic().to_string(),
            concurrency: self.concurrency(),
            isolated_partitions: self.isolated_partitions(),
            use_reply_headers: self.use_reply_headers(),
            help: self.help().to_string(),
            sinks: self.sinks().iter().map(|s| s.label.clone()).collect(),
            supervisor_strategy: self.supervisor_strategy().name().to_string(),
            has_on_error: self.inner.spec.on_error.is_some(),
            value_codec: self.value_codec().name().to_string(),
            value_type: self.inner.spec.value_type.to_string(),
            produces_values: self.produces_values(),
        }
    }

    /// A spec equal to this agent's (sinks and `use_reply_headers`
    /// included), to adjust and add to another app — Faust's `clone()`.
    pub fn to_spec(&self) -> AgentSpec {
        let mut spec = self.inner.spec.clone();
        spec.topic = Some(self.inner.topic.to_string());
        spec.value_codec = Some(self.inner.value_codec);
        spec.sinks = self.sinks().as_ref().clone();
        spec
    }

    pub(crate) fn sinks(&self) -> Arc<Vec<ErasedSink>> {
        self.inner
            .sinks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Add a sink; one already present is ignored.
    pub fn add_sink<R: Value>(&self, sink: Sink<R>) -> Result<()> {
        let erased = sink.erase();
        match self.inner.spec.output {
            None => {
                return Err(Error::config(format!(
                    "agent `{}` must produce values to use sinks",
                    self.name()
                )))
            }
            Some((tid, out)) if tid != erased.type_id => {
                return Err(Error::config(format!(
                    "agent `{}` produces `{out}` but the sink takes `{}`",
                    self.name(),
                    erased.type_name
                )))
            }
            Some(_) => {}
        }
        let mut sinks = self.inner.sinks.write().unwrap_or_else(|e| e.into_inner());
        if erased.key.is_some() && sinks.iter().any(|s| s.key == erased.key) {
            return Ok(());
        }
        let mut next = sinks.as_ref().clone();
        next.push(erased);
        *sinks = Arc::new(next);
        Ok(())
    }

    pub(crate) fn report_error(&self, err: &Error) {
        self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = &self.inner.spec.on_error {
            f(self, err);
        }
    }

    pub(crate) fn set_observer(&self, tx: mpsc::UnboundedSender<Processed>) {
        let _ = self.inner.observer.set(tx);
    }

    pub(crate) fn observe(&self, msg: &Message, error: Option<&Error>) {
        if let Some(tx) = self.inner.observer.get() {
            let _ = tx.send(Processed {
                partition: msg.partition(),
                offset: msg.offset(),
                error: error.map(|e| e.to_string()),
                value: msg.value().cloned(),
            });
        }
    }

    // ----- lifecycle ---------------------------------------------------------

    /// Start the agent: its supervisor and, unless partitions are isolated,
    /// its actors. Isolated actors start on partition assignment.
    pub async fn on_start(&self) -> Result<()> {
        if self.is_remote() {
            return Ok(());
        }
        let app = self.app();
        let capacity = app.config().stream_buffer_maxsize;
        let (tx, mut rx) = mpsc::unbounded_channel::<Exit>();
        {
            let mut st = self.state();
            if st.started {
                return Ok(());
            }
            st.started = true;
            st.stopping = false;
            st.budget = Some(RestartBudget::new(
                app.config().max_restarts,
                app.config().restart_window,
            ));
            st.exits = Some(tx);
            if !self.isolated_partitions() {
                st.shared = Some(QueueTx(AgentQueue::new(capacity, self.concurrency() > 1)));
            }
        }
        if !self.isolated_partitions() {
            let n = self.concurrency();
            for i in 0..n {
                let index = (n > 1).then_some(i);
                self.spawn_actor(Slot::Index(index));
            }
        }
        let agent = self.clone();
        let supervisor = tokio::spawn(async move {
            while let Some(exit) = rx.recv().await {
                agent.on_actor_exit(exit).await;
            }
        });
        self.state().supervisor = Some(supervisor);
        Ok(())
    }

    fn queue_for(&self, st: &State, slot: Slot) -> Option<Queue> {
        match slot {
            Slot::Index(_) => st.queue(None),
            Slot::Partition(p) => st.queue(Some(p)),
        }
    }

    fn spawn_actor(&self, slot: Slot) {
        let Some(app) = self.try_app() else { return };
        let mut st = self.state();
        if st.stopping {
            return;
        }
        let (Some(queue), Some(exits)) = (self.queue_for(&st, slot), st.exits.clone()) else {
            return;
        };
        let (index, partition) = match slot {
            Slot::Index(i) => (i, None),
            Slot::Partition(p) => (None, Some(p)),
        };
        let id = st.next_id;
        st.next_id += 1;
        let ctx = ActorCtx::new(
            self.clone(),
            index,
            partition,
            queue,
            CancellationToken::new(),
        );
        let root = app
            .tree_registry()
            .register((self.name().to_string(), id), ctx.label().to_string());
        let body = self.inner.spec.body.clone();
        let run_ctx = ctx.clone();
        let join = tokio::spawn(async move {
            let outcome = run_actor(run_ctx, body, root).await;
            let _ = exits.send(Exit { id, outcome });
        });
        st.actors.insert(id, ActorHandle { slot, ctx, join });
    }

    async fn on_actor_exit(&self, exit: Exit) {
        let (handle, decision) = {
            let mut st = self.state();
            let Some(handle) = st.actors.remove(&exit.id) else {
                return; // stopped on purpose (revoked, stopped, restarted as a group)
            };
            if st.stopping {
                return;
            }
            match &exit.outcome {
                Outcome::Finished => {
                    st.finished.push(handle.ctx.label().to_string());
                    return;
                }
                Outcome::Crashed(_) => {}
            }
            (handle, self.supervisor_strategy().decide())
        };
        let Outcome::Crashed(err) = exit.outcome else {
            return;
        };
        tracing::warn!(agent = %self.name(), actor = %handle.ctx.label(), error = %err, ?decision, "actor crashed");
        let app = self.app();
        match decision {
            Decision::RestartOne => {
                if self.spend_restart(&app) {
                    self.spawn_actor(handle.slot);
                }
            }
            Decision::RestartAll => {
                let others = self.take_actors();
                let mut slots: Vec<Slot> = others.iter().map(|h| h.slot).collect();
                self.stop_actors(others, app.config().stop_timeout).await;
                slots.push(handle.slot);
                slots.sort_by_key(|s| match s {
                    Slot::Index(i) => i.unwrap_or(0) as i64,
                    Slot::Partition(p) => *p as i64,
                });
                if self.spend_restart(&app) {
                    for slot in slots {
                        self.spawn_actor(slot);
                    }
                }
            }
            Decision::ForfeitOne => {
                tracing::error!(agent = %self.name(), "actor forfeited after crash; not restarted");
                self.state()
                    .finished
                    .push(format!("{} (forfeited)", handle.ctx.label()));
            }
            Decision::ForfeitAll => {
                let others = self.take_actors();
                self.stop_actors(others, app.config().stop_timeout).await;
                tracing::error!(agent = %self.name(), "all actors forfeited after crash");
            }
            Decision::CrashApp => app.crash(Error::Crashed(format!(
                "agent `{}` crashed: {err}",
                self.name()
            ))),
        }
    }

    fn spend_restart(&self, app: &App) -> bool {
        let ok = {
            let mut st = self.state();
            st.budget.as_mut().is_none_or(|b| b.try_restart())
        };
        if ok {
            self.inner.stats.restarts.fetch_add(1, Ordering::Relaxed);
        } else {
            let err = Error::MaxRestartsExceeded {
                agent: self.name().to_string(),
                max: app.config().max_restarts,
                over: app.config().restart_window,
            };
            tracing::error!(error = %err, "supervisor gives up");
            app.crash(err);
        }
        ok
    }

    fn take_actors(&self) -> Vec<ActorHandle> {
        self.state().actors.drain().map(|(_, h)| h).collect()
    }

    /// Cancel actors, let them finish their current event, abort them after `deadline`.
    async fn stop_actors(&self, actors: Vec<ActorHandle>, deadline: Duration) {
        for h in &actors {
            h.ctx.cancel_token().cancel();
        }
        let until = tokio::time::Instant::now() + deadline;
        for mut h in actors {
            if tokio::time::timeout_at(until, &mut h.join).await.is_err() {
                tracing::warn!(actor = %h.ctx.label(), "actor did not stop in time; aborting it (its event stays uncommitted)");
                h.join.abort();
                let _ = h.join.await;
                h.ctx.abandon_current();
            }
        }
    }

    /// Stop every actor: each finishes its current event (up to the app's
    /// stop timeout; after that it is aborted and its event left uncommitted).
    pub async fn on_stop(&self) -> Result<()> {
        let (actors, supervisor) = {
            let mut st = self.state();
            if !st.started {
                return Ok(());
            }
            st.stopping = true;
            st.started = false;
            st.shared = None;
            st.isolated.clear();
            st.exits = None;
            (
                st.actors.drain().map(|(_, h)| h).collect::<Vec<_>>(),
                st.supervisor.take(),
            )
        };
        let timeout = self
            .try_app()
            .map(|a| a.config().stop_timeout)
            .unwrap_or(Duration::from_secs(10));
        self.stop_actors(actors, timeout).await;
        if let Some(s) = supervisor {
            s.abort();
        }
        Ok(())
    }

    /// Ask every actor to stop after its current event, without waiting.
    /// A busy agent function is not interrupted.
    pub fn cancel(&self) {
        for h in self.state().actors.values() {
            h.ctx.cancel_token().cancel();
        }
    }

    /// Reset state so the agent can be started again.
    pub fn service_reset(&self) {
        let mut st = self.state();
        st.finished.clear();
        st.budget = None;
    }

    /// Number of live actors.
    pub fn actor_count(&self) -> usize {
        self.state().actors.len()
    }

    /// Partitions with a running isolated actor.
    pub fn active_partitions(&self) -> Vec<i32> {
        let st = self.state();
        let mut ps: Vec<i32> = st
            .actors
            .values()
            .filter_map(|h| match h.slot {
                Slot::Partition(p) => Some(p),
                Slot::Index(_) => None,
            })
            .collect();
        ps.sort_unstable();
        ps
    }

    /// Partitions were assigned to this app; routes to the isolated or
    /// shared variant.
    pub async fn on_partitions_assigned(&self, assigned: &[TopicPartition]) -> Result<()> {
        if self.isolated_partitions() {
            self.on_isolated_partitions_assigned(assigned).await
        } else {
            self.on_shared_partitions_assigned(assigned).await
        }
    }

    /// Partitions were revoked; routes to the isolated or shared variant.
    pub async fn on_partitions_revoked(&self, revoked: &[TopicPartition]) -> Result<()> {
        if self.isolated_partitions() {
            self.on_isolated_partitions_revoked(revoked).await
        } else {
            self.on_shared_partitions_revoked(revoked).await
        }
    }

    /// Start one actor per newly assigned partition, in partition order.
    pub async fn on_isolated_partitions_assigned(&self, assigned: &[TopicPartition]) -> Result<()> {
        let capacity = self.app().config().stream_buffer_maxsize;
        let mut parts: Vec<i32> = assigned
            .iter()
            .filter(|tp| &*tp.topic == self.topic())
            .map(|tp| tp.partition)
            .collect();
        parts.sort_unstable();
        for p in parts {
            let new = {
                let mut st = self.state();
                if !st.started || st.isolated.contains_key(&p) {
                    false
                } else {
                    st.isolated
                        .insert(p, QueueTx(AgentQueue::new(capacity, false)));
                    true
                }
            };
            if new {
                tracing::debug!(agent = %self.name(), partition = p, "isolated partition assigned");
                self.spawn_actor(Slot::Partition(p));
            }
        }
        Ok(())
    }

    /// Stop (for good) the actors of revoked partitions. They are not
    /// restarted: no zombie actors (Python Faust leaves them running).
    pub async fn on_isolated_partitions_revoked(&self, revoked: &[TopicPartition]) -> Result<()> {
        let actors = {
            let mut st = self.state();
            let parts: Vec<i32> = revoked
                .iter()
                .filter(|tp| &*tp.topic == self.topic())
                .map(|tp| tp.partition)
                .collect();
            for p in &parts {
                st.isolated.remove(p);
            }
            let ids: Vec<u64> = st
                .actors
                .iter()
                .filter(|(_, h)| matches!(h.slot, Slot::Partition(p) if parts.contains(&p)))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| st.actors.remove(&id))
                .collect::<Vec<_>>()
        };
        let timeout = self.app().config().stop_timeout;
        self.stop_actors(actors, timeout).await;
        Ok(())
    }

    /// Hook for shared (non-isolated) agents; nothing to do: the shared
    /// queue receives every partition of the topic.
    pub async fn on_shared_partitions_assigned(&self, _assigned: &[TopicPartition]) -> Result<()> {
        Ok(())
    }

    /// Hook for shared agents; buffered events of revoked partitions are
    /// dropped by the stream (never processed after revocation).
    pub async fn on_shared_partitions_revoked(&self, _revoked: &[TopicPartition]) -> Result<()> {
        Ok(())
    }

    /// The queue that receives this agent's messages of `partition`, if
    /// the agent is running (and, isolated, has the partition).
    pub(crate) fn queue(&self, partition: i32) -> Option<Queue> {
        self.state()
            .queue(self.isolated_partitions().then_some(partition))
    }

    /// Where each actor is suspended right now, one entry per actor
    /// (finished actors give a placeholder).
    pub fn actor_tracebacks(&self) -> Vec<String> {
        let Some(app) = self.try_app() else {
            return Vec::new();
        };
        let st = self.state();
        let mut ids: Vec<&u64> = st.actors.keys().collect();
        ids.sort();
        let mut out: Vec<String> = ids
            .into_iter()
            .map(|id| {
                let h = &st.actors[id];
                match app.tree_registry().get((self.name().to_string(), *id)) {
                    Some(tree) => tree.to_string(),
                    None => format!(
                        "Could not extract traceback for actor {}: not running",
                        h.ctx.label()
                    ),
                }
            })
            .collect();
        out.extend(
            st.finished
                .iter()
                .map(|l| format!("Could not extract traceback for actor {l}: finished")),
        );
        out
    }

    /// Start an unsupervised actor running the agent function on `stream`
    /// (it shares the stream's queue). Faust's `actor_from_stream`.
    pub fn actor_from_stream<T: Value>(&self, stream: Stream<T>) -> JoinHandle<Result<()>> {
        let ctx = stream.into_ctx();
        let body = self.inner.spec.body.clone();
        let agent = self.clone();
        tokio::spawn(async move {
            let app = agent.app();
            let root = app.tree_registry().register(
                (agent.name().to_string(), u64::MAX),
                ctx.label().to_string(),
            );
            match run_actor(ctx, body, root).await {
                Outcome::Finished => Ok(()),
                Outcome::Crashed(e) => Err(e),
            }
        })
    }

    /// A new stream reading the agent's shared queue, alongside its actors
    /// (Faust's `stream()`; for isolated agents, `partition` picks the queue).
    pub fn stream<T: Value>(&self, partition: Option<i32>) -> Result<Stream<T>> {
        let queue = self
            .state()
            .queue(partition)
            .ok_or_else(|| Error::Stopped(format!("agent `{}` (no such queue)", self.name())))?;
        Ok(Stream::new(ActorCtx::new(
            self.clone(),
            None,
            partition,
            queue,
            CancellationToken::new(),
        )))
    }

    // ----- sending -----------------------------------------------------------

    /// Produce raw bytes to the agent's topic.
    pub async fn send_raw(
        &self,
        key: Option<Bytes>,
        value: Option<Bytes>,
        partition: Option<i32>,
        headers: Headers,
    ) -> Result<RecordMetadata> {
        let record = crate::record::ProducerRecord {
            topic: self.topic_name().clone(),
            partition,
            key,
            value,
            headers,
            timestamp: None,
        };
        crate::app::send_via(&self.inner.transport, record).await
    }

    /// Send a value to the agent (no reply expected).
    pub async fn send<V: serde::Serialize + ?Sized>(&self, value: &V) -> Result<RecordMetadata> {
        let bytes = self.value_codec().encode_bytes(value)?;
        self.send_raw(None, Some(bytes), None, Vec::new()).await
    }

    /// Send a value with a key (encoded with the key codec) to the agent.
    pub async fn send_keyed<K, V>(&self, key: &K, value: &V) -> Result<RecordMetadata>
    where
        K: serde::Serialize + ?Sized,
        V: serde::Serialize + ?Sized,
    {
        let k = self.key_codec().encode_bytes(key)?;
        let v = self.value_codec().encode_bytes(value)?;
        self.send_raw(Some(k), Some(v), None, Vec::new()).await
    }

    /// RPC: deliver a value to the agent without waiting for a reply.
    pub async fn cast<V: serde::Serialize + ?Sized>(&self, value: &V) -> Result<()> {
        self.send(value).await.map(|_| ())
    }

    /// A test harness running a copy of this agent on a private embedded
    /// broker; see [`TestContext`](crate::testing::TestContext).
    pub async fn test_context(&self) -> Result<crate::testing::TestContext> {
        crate::testing::TestContext::start(self).await
    }
}

impl PartialEq for Agent {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
impl Eq for Agent {}

impl std::hash::Hash for Agent {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.inner) as usize).hash(state)
    }
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.state().started {
            "running"
        } else {
            "init"
        };
        write!(f, "<Agent: {state} {}>", self.name())
    }
}

/// The object-safe agent interface (Faust's `AgentT`).
#[async_trait]
pub trait AgentT: Send + Sync + fmt::Debug {
    /// Agent name.
    fn name(&self) -> &str;
    /// Attributes.
    fn info(&self) -> AgentInfo;
    /// Topics the agent subscribes to.
    fn get_topic_names(&self) -> Vec<String>;
    /// Start the agent.
    async fn on_start(&self) -> Result<()>;
    /// Stop the agent.
    async fn on_stop(&self) -> Result<()>;
    /// Ask every actor to stop after its current event.
    fn cancel(&self);
    /// Partitions assigned.
    async fn on_partitions_assigned(&self, assigned: &[TopicPartition]) -> Result<()>;
    /// Partitions revoked.
    async fn on_partitions_revoked(&self, revoked: &[TopicPartition]) -> Result<()>;
    /// One traceback per actor.
    fn actor_tracebacks(&self) -> Vec<String>;
    /// Human-readable description.
    fn label(&self) -> String;
    /// Short description.
    fn shortlabel(&self) -> String;
}

#[async_trait]
impl AgentT for Agent {
    fn name(&self) -> &str {
        Agent::name(self)
    }
    fn info(&self) -> AgentInfo {
        Agent::info(self)
    }
    fn get_topic_names(&self) -> Vec<String> {
        Agent::get_topic_names(self)
    }
    async fn on_start(&self) -> Result<()> {
        Agent::on_start(self).await
    }
    async fn on_stop(&self) -> Result<()> {
        Agent::on_stop(self).await
    }
    fn cancel(&self) {
        Agent::cancel(self)
    }
    async fn on_partitions_assigned(&self, assigned: &[TopicPartition]) -> Result<()> {
        Agent::on_partitions_assigned(self, assigned).await
    }
    async fn on_partitions_revoked(&self, revoked: &[TopicPartition]) -> Result<()> {
        Agent::on_partitions_revoked(self, revoked).await
    }
    fn actor_tracebacks(&self) -> Vec<String> {
        Agent::actor_tracebacks(self)
    }
    fn label(&self) -> String {
        Agent::label(self)
    }
    fn shortlabel(&self) -> String {
        Agent::shortlabel(self)
    }
}
