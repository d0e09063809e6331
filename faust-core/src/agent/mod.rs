//! Agents: an async function bound to a topic, run as supervised actors.
//!
//! An [`AgentSpec`] declares an agent (function, topic, options); adding it
//! to an [`App`] gives an [`Agent`], the running handle. The [`AgentT`] trait
//! is the object-safe part of the agent API, as in Faust's `AgentT`.
//!
//! This file holds the handle, its accessors and sending; the spec, the
//! counters, the lifecycle, the isolated partitions and RPC (`ask.rs`) have
//! their own files. [`Agent::test_context`] is defined with the test
//! harness, in [`testing`](crate::testing).

mod acker;
pub(crate) mod actor;
mod ask;
mod batch;
mod body;
pub(crate) use body::panic_message;
pub use body::spawn;
mod event;
mod held;
mod lifecycle;
mod on_error;
pub use lifecycle::ActorRef;
pub mod manager;
mod partitions;
mod scatter;
pub use scatter::JoinResults;
#[cfg(feature = "opentelemetry")]
mod otel;
pub mod sink;
mod spec;
mod stats;
pub mod stream;
pub mod supervisor;
mod timing;
pub(crate) mod trace;
pub use trace::{trace_context, EVENT_TARGET};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::codec::{CodecRef, Value};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::record::{Headers, RecordMetadata, TopicPartition};
use crate::rpc::SendOptions;
use crate::runtime::acks::{Message, Payload};
use crate::runtime::inbox::Inbox;
use crate::runtime::queue::Queue;
use crate::sync::{Mutex, MutexGuard, RwLock};
use crate::topic::Topic;
use crate::transport::TopicPattern;

pub use self::acker::MAX_UNACKED;
use self::actor::ActorCtx;
pub use self::body::current_agent;
use self::body::Outcome;
pub use self::on_error::OnError;
use self::sink::{ErasedSink, Sink, SinkTarget};
#[doc(hidden)]
pub use self::spec::schema_check;
pub use self::spec::AgentSpec;
pub use self::stats::{AgentInfo, AgentStats};
use self::stream::Stream;
use self::supervisor::{RestartBudget, SupervisorStrategyT};

/// A running agent. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Agent {
    inner: Arc<AgentInner>,
}

pub(crate) struct AgentInner {
    spec: AgentSpec,
    /// The topics it consumes (sends go to the first); none for an agent
    /// with only patterns.
    topics: Vec<Arc<str>>,
    /// Patterns of further topics it consumes.
    patterns: Vec<TopicPattern>,
    /// The in-memory channel it reads instead of topics.
    inbox: Option<Arc<Inbox>>,
    value_codec: CodecRef,
    key_codec: CodecRef,
    /// Its supervisor strategy (its own or the app's).
    supervisor: supervisor::Strategy,
    /// The app's shared services.
    ctx: Arc<Context>,
    sinks: RwLock<Arc<Vec<ErasedSink>>>,
    stats: AgentStats,
    state: Mutex<State>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Index(Option<usize>),
    Partition(TopicPartition),
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
    fn queue(&self, partition: Option<&TopicPartition>) -> Option<Queue> {
        match partition {
            Some(tp) => self.isolated.get(tp),
            None => self.shared.as_ref(),
        }
        .map(|q| q.0.clone())
    }
}

#[derive(Default)]
struct State {
    started: bool,
    /// Started by its app (whose conductor feeds it), not by user code.
    run_by_app: bool,
    stopping: bool,
    shared: Option<QueueTx>,
    isolated: BTreeMap<TopicPartition, QueueTx>,
    actors: HashMap<u64, ActorHandle>,
    finished: Vec<String>,
    next_id: u64,
    budget: Option<RestartBudget>,
    exits: Option<mpsc::UnboundedSender<Exit>>,
    supervisor: Option<JoinHandle<()>>,
}

impl Agent {
    pub(crate) fn new(spec: AgentSpec, ctx: Arc<Context>) -> Result<Self> {
        spec.validate()?;
        let patterns = spec
            .patterns
            .iter()
            .map(|p| TopicPattern::new(p))
            .collect::<Result<Vec<_>>>()?;
        let in_agent = |e: Error| e.context(&format!("agent `{}`", spec.name));
        let inbox = match &spec.channel {
            Some(name) => Some(ctx.channel(name, spec.input).map_err(in_agent)?),
            None => None,
        };
        let topics: Vec<Arc<str>> = if inbox.is_some() {
            Vec::new()
        } else if spec.topics.is_empty() && patterns.is_empty() {
            let qual = spec.qualname.as_deref().unwrap_or(&spec.name);
            vec![format!("{}-{}", ctx.config.id, qual.replace("::", ".")).into()]
        } else {
            spec.topics.iter().map(|t| t.name().into()).collect()
        };
        // An agent without codecs of its own uses its (first) topic's.
        let first = spec.topics.first();
        let schema = spec.schema.as_ref();
        let value_codec = match spec
            .value_codec
            .as_ref()
            .or_else(|| schema.and_then(|s| s.value_codec.as_ref()))
            .or_else(|| first.and_then(Topic::value_serializer))
        {
            Some(codec) => ctx.codec(codec).map_err(in_agent)?,
            None => ctx.config.value_codec.clone(),
        };
        let key_codec = match spec
            .key_codec
            .as_ref()
            .or_else(|| schema.and_then(|s| s.key_codec.as_ref()))
            .or_else(|| first.and_then(Topic::key_serializer))
        {
            Some(codec) => ctx.codec(codec).map_err(in_agent)?,
            None => CodecRef::RAW,
        };
        let sinks = RwLock::new(Arc::new(spec.sinks.clone()));
        let supervisor = spec
            .supervisor
            .clone()
            .unwrap_or_else(|| ctx.config.agent_supervisor.clone());
        Ok(Agent {
            inner: Arc::new(AgentInner {
                supervisor,
                spec,
                topics,
                patterns,
                inbox,
                value_codec,
                key_codec,
                ctx,
                sinks,
                stats: AgentStats::default(),
                state: Mutex::new(State::default()),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock()
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }
    /// The topic the agent consumes; of several, the first, which sending
    /// to the agent produces to. For an agent with only topic patterns, its
    /// first pattern (it has no topic to send to).
    ///
    /// For an agent reading a [channel](AgentSpec::channel), the channel's name.
    pub fn topic(&self) -> &str {
        match (self.inner.topics.first(), &self.inner.inbox) {
            (Some(topic), _) => topic,
            (None, Some(inbox)) => inbox.name(),
            (None, None) => self.inner.patterns[0].as_str(),
        }
    }
    /// The topic sending to the agent produces to, shared (cheap to clone
    /// into records); an error for an agent with only topic patterns.
    pub(crate) fn topic_name(&self) -> Result<&Arc<str>> {
        if let Some(inbox) = &self.inner.inbox {
            return Err(Error::config(format!(
                "agent `{}` reads channel `{}`, which has no topic",
                self.name(),
                inbox.name()
            )));
        }
        self.inner.topics.first().ok_or_else(|| {
            Error::config(format!(
                "agent `{}` reads topic patterns only: send to one of its topics with `App::send`",
                self.name()
            ))
        })
    }
    /// Patterns of further topics the agent consumes
    /// ([`AgentSpec::topic_pattern`]).
    pub fn topic_patterns(&self) -> impl Iterator<Item = &str> {
        self.inner.patterns.iter().map(TopicPattern::as_str)
    }
    /// The compiled patterns (for the subscription).
    pub(crate) fn patterns(&self) -> &[TopicPattern] {
        &self.inner.patterns
    }
    /// Every topic the agent consumes.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.inner.topics.iter().map(|t| &**t)
    }
    /// Whether the agent consumes `topic` (named or matching a pattern).
    pub(crate) fn reads(&self, topic: &str) -> bool {
        self.inner.topics.iter().any(|t| &**t == topic)
            || self.inner.patterns.iter().any(|p| p.matches(topic))
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
    /// Supervisor strategy: its own, else the app's `agent_supervisor`.
    pub fn supervisor_strategy(&self) -> &dyn SupervisorStrategyT {
        self.inner.supervisor.as_ref()
    }
    /// Whether requests carry their reply address in headers.
    pub fn use_reply_headers(&self) -> bool {
        self.inner.spec.use_reply_headers
    }
    /// Codec of values.
    pub fn value_codec(&self) -> &CodecRef {
        &self.inner.value_codec
    }
    /// Codec of keys.
    pub fn key_codec(&self) -> &CodecRef {
        &self.inner.key_codec
    }
    /// The topics the agent reads as declared (its [`Topic`]s, or its
    /// default topic), for the app to create.
    pub(crate) fn declared_topics(&self) -> Vec<Topic> {
        if self.inner.spec.topics.is_empty() {
            self.topics().map(Topic::new).collect()
        } else {
            self.inner.spec.topics.clone()
        }
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
    /// The channel the agent reads: its in-memory channel's name, or its
    /// (first) topic name (Faust's `agent.channel`).
    pub fn channel(&self) -> &str {
        self.topic()
    }
    /// Whether the agent reads an in-memory [channel](AgentSpec::channel).
    pub fn reads_channel(&self) -> bool {
        self.inner.inbox.is_some()
    }
    /// The in-memory channel the agent reads, if any.
    pub(crate) fn inbox(&self) -> Option<&Arc<Inbox>> {
        self.inner.inbox.as_ref()
    }
    /// A stream over the agent's shared queue (Faust's `channel_iterator`);
    /// same as [`stream`](Self::stream) with no partition.
    pub fn channel_iterator<T: Value>(&self) -> Result<Stream<T>> {
        self.stream(None)
    }
    /// Topic names the agent subscribes to (none for a channel agent).
    pub fn get_topic_names(&self) -> Vec<String> {
        self.topics().map(str::to_string).collect()
    }
    /// `"Agent: <name>"`.
    pub fn label(&self) -> String {
        format!("Agent: {}", self.name())
    }
    /// Same as [`label`](Self::label).
    pub fn shortlabel(&self) -> String {
        self.label()
    }

    /// The app's shared services.
    pub(crate) fn context(&self) -> &Arc<Context> {
        &self.inner.ctx
    }

    /// The agent's attributes.
    pub fn info(&self) -> AgentInfo {
        AgentInfo {
            name: self.name().to_string(),
            topic: if self.reads_channel() {
                "<LOCAL>".to_string()
            } else {
                self.topic().to_string()
            },
            channel: self.inner.inbox.as_ref().map(|i| i.name().to_string()),
            topics: self.get_topic_names(),
            topic_patterns: self.topic_patterns().map(str::to_string).collect(),
            concurrency: self.concurrency(),
            isolated_partitions: self.isolated_partitions(),
            use_reply_headers: self.use_reply_headers(),
            help: self.help().to_string(),
            sinks: self.sinks().iter().map(|s| s.label.clone()).collect(),
            supervisor_strategy: self.supervisor_strategy().name().to_string(),
            has_on_error: self.inner.spec.on_error.is_some(),
            value_codec: self.value_codec().name().to_string(),
            value_type: self.inner.spec.input.type_name.to_string(),
            produces_values: self.produces_values(),
        }
    }

    /// A spec equal to this agent's (sinks and `use_reply_headers`
    /// included), to adjust and add to another app — Faust's `clone()`.
    pub fn to_spec(&self) -> AgentSpec {
        let mut spec = self.inner.spec.clone();
        if spec.topics.is_empty() {
            spec.topics = self.topics().map(Topic::new).collect();
        }
        spec.patterns = self.topic_patterns().map(str::to_string).collect();
        spec.value_codec = Some(self.inner.value_codec.clone());
        spec.key_codec = Some(self.inner.key_codec.clone());
        spec.sinks = self.sinks().as_ref().clone();
        spec
    }

    pub(crate) fn sinks(&self) -> Arc<Vec<ErasedSink>> {
        self.inner.sinks.read().clone()
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
            Some(out) if out.type_id != erased.type_id => {
                return Err(Error::config(format!(
                    "agent `{}` produces `{}` but the sink takes `{}`",
                    self.name(),
                    out.type_name,
                    erased.type_name
                )))
            }
            Some(_) => {}
        }
        erased.check_key_by(self.name())?;
        if self.state().started {
            self.check_sink(&erased)?;
        }
        let mut sinks = self.inner.sinks.write();
        if erased.key.is_some() && sinks.iter().any(|s| s.key == erased.key) {
            return Ok(());
        }
        let mut next = sinks.as_ref().clone();
        next.push(erased);
        *sinks = Arc::new(next);
        Ok(())
    }

    /// An error if a sink sends to an agent the app does not have (a typo
    /// in `Sink::agent("...")` is found at start, not at every event).
    pub(crate) fn check_sinks(&self) -> Result<()> {
        self.sinks().iter().try_for_each(|s| self.check_sink(s))
    }

    fn check_sink(&self, sink: &ErasedSink) -> Result<()> {
        if let Some(topic) = &sink.topic {
            for codec in [topic.value_serializer(), topic.key_serializer()]
                .into_iter()
                .flatten()
            {
                self.inner.ctx.codec(codec).map_err(|e| {
                    e.context(&format!("agent `{}`, sink {}", self.name(), sink.label))
                })?;
            }
        }
        let target = match &sink.target {
            None => return Ok(()),
            Some(SinkTarget::Channel(name)) => {
                return match self.inner.ctx.find_channel(name) {
                    Some(_) => Ok(()),
                    None => Err(Error::config(format!(
                        "agent `{}` has a sink to channel `{name}`: {}",
                        self.name(),
                        sink::unknown_channel(name)
                    ))),
                }
            }
            Some(SinkTarget::Agent(name)) => name,
        };
        match self.inner.ctx.agent_target(target) {
            Ok(_) => Ok(()),
            Err(Error::UnknownAgent { name, known }) => Err(Error::config(format!(
                "agent `{}` has a sink to unknown agent `{name}`; registered agents: {known}",
                self.name()
            ))),
            Err(other) => Err(other),
        }
    }

    pub(crate) async fn report_error(&self, err: &Error) {
        self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = &self.inner.spec.on_error {
            f.call(self, err).await;
        }
    }

    /// The agent is done with `msg` (acked, or failed with `error`).
    pub(crate) fn event_done(&self, msg: &Message, error: Option<&Error>) {
        self.inner.stats.record_done(error.is_some());
        self.inner.ctx.event_done(self.name(), msg, error);
    }

    /// A new stream reading the agent's shared queue, alongside its actors
    /// (Faust's `stream()`; for isolated agents, `partition` picks the queue).
    pub fn stream<T: Value>(&self, partition: Option<TopicPartition>) -> Result<Stream<T>> {
        let queue = self
            .state()
            .queue(partition.as_ref())
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
        if let Some(inbox) = self.inbox() {
            let payload = inbox
                .value_type()
                .decode(self.value_codec(), value.as_deref().unwrap_or(b"null"))?;
            let opts = SendOptions {
                key,
                partition,
                headers,
                ..SendOptions::default()
            };
            return self.send_to_channel(inbox, payload, &opts).await;
        }
        let mut headers = headers;
        trace::inject_for_send(&mut headers, false);
        let record = crate::record::ProducerRecord {
            topic: self.topic_name()?.clone(),
            partition,
            key,
            value,
            headers,
            timestamp: None,
        };
        self.inner.ctx.producer.send(record).await
    }

    /// Send a value to the agent (no reply expected).
    pub async fn send<V: serde::Serialize + ?Sized>(&self, value: &V) -> Result<RecordMetadata> {
        self.send_with(value, SendOptions::default()).await
    }

    /// Send a value with a key (encoded with the key codec) to the agent.
    pub async fn send_keyed<K, V>(&self, key: &K, value: &V) -> Result<RecordMetadata>
    where
        K: serde::Serialize + ?Sized,
        V: serde::Serialize + ?Sized,
    {
        self.send_keyed_with(key, value, SendOptions::default())
            .await
    }

    /// Hand a value of the channel's type to the channel the agent reads,
    /// waiting for room up to `opts.timeout` or the app's `ask_timeout`.
    pub(crate) async fn send_to_channel(
        &self,
        inbox: &Inbox,
        payload: Payload,
        opts: &SendOptions,
    ) -> Result<RecordMetadata> {
        if opts.partition.is_some() {
            return Err(Error::config(format!(
                "agent `{}` reads channel `{}`, which has no partitions to send to",
                self.name(),
                inbox.name()
            )));
        }
        let wait = opts.timeout.unwrap_or(self.inner.ctx.config.ask_timeout);
        let mut headers = opts.channel_headers();
        trace::inject_for_send(&mut headers, opts.reply_to.is_some());
        inbox
            .push(payload, opts.key.clone(), headers, opts.timestamp, wait)
            .await
    }

    /// [`send_keyed`](Self::send_keyed) with options: the key is encoded
    /// with `opts`' key codec ([`SendOptions::key_codec`](crate::SendOptions::key_codec),
    /// default the agent's), and replaces `opts.key`.
    pub async fn send_keyed_with<K, V>(
        &self,
        key: &K,
        value: &V,
        mut opts: crate::SendOptions,
    ) -> Result<RecordMetadata>
    where
        K: serde::Serialize + ?Sized,
        V: serde::Serialize + ?Sized,
    {
        let key_codec = match &opts.key_codec {
            Some(codec) => self.context().codec(codec)?,
            None => self.key_codec().clone(),
        };
        opts.key = Some(key_codec.encode_bytes(key)?);
        self.send_with(value, opts).await
    }

    /// RPC: deliver a value to the agent without waiting for a reply.
    pub async fn cast<V: serde::Serialize + ?Sized>(&self, value: &V) -> Result<()> {
        self.send(value).await.map(|_| ())
    }

    /// [`cast`](Self::cast) with the options of [`send_with`](Self::send_with):
    /// key, partition, timestamp, headers, codec.
    pub async fn cast_with<V: serde::Serialize + ?Sized>(
        &self,
        value: &V,
        opts: SendOptions,
    ) -> Result<()> {
        self.send_with(value, opts).await.map(|_| ())
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
