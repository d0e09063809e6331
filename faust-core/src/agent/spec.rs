//! The declaration of an agent: [`AgentSpec`], its constructors (one per
//! function form) and its options.

use std::any::TypeId;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::codec::{CodecRef, Value};
use crate::error::{Error, Result};
use crate::runtime::inbox::ValueType;
use crate::schema::{ErasedSchema, Schema};
use crate::topic::Topic;
use crate::transport::TopicPattern;

use super::batch::BatchHandlerBody;
use super::body::{ActorBody, BoxError, ConsumerBody, HandlerBody, ProducerBody, YieldingBody};
use super::on_error::OnError;
use super::sink::{ErasedSink, Sink};
use super::stream::{Stream, Yield};
use super::supervisor::{Strategy, SupervisorStrategyT};
use super::Agent;

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
    /// The topics to consume (empty, without patterns: the default one).
    pub(crate) topics: Vec<Topic>,
    /// Patterns of further topics to consume (checked when added to an app).
    pub(crate) patterns: Vec<String>,
    pub(crate) partitions: Option<i32>,
    pub(crate) concurrency: usize,
    pub(crate) isolated_partitions: bool,
    pub(crate) use_reply_headers: bool,
    pub(crate) help: String,
    pub(crate) value_codec: Option<CodecRef>,
    pub(crate) key_codec: Option<CodecRef>,
    /// Its schema (types checked against the function's when validated).
    pub(crate) schema: Option<ErasedSchema>,
    /// Its own strategy; `None`: the app's `agent_supervisor`.
    pub(crate) supervisor: Option<Strategy>,
    pub(crate) on_error: Option<OnError>,
    pub(crate) sinks: Vec<ErasedSink>,
    pub(crate) body: Arc<dyn ActorBody>,
    pub(crate) output: Option<Output>,
    /// The type of the values it reads.
    pub(crate) input: ValueType,
    /// The in-memory channel it reads instead of topics.
    pub(crate) channel: Option<String>,
    pub(crate) remote: bool,
}

/// The type of the values an agent produces: sinks must take it, `info()`
/// names it, and its values can be shown as JSON (the test harness does).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    /// A produced value (type-erased) as JSON; `None` if it is not of this type.
    pub(crate) to_json: fn(&(dyn std::any::Any + Send + Sync)) -> Option<serde_json::Value>,
}

impl Output {
    fn of<R: Value>() -> Self {
        Self {
            type_id: TypeId::of::<R>(),
            type_name: std::any::type_name::<R>(),
            to_json: |v| {
                v.downcast_ref::<R>()
                    .and_then(|r| serde_json::to_value(r).ok())
            },
        }
    }
}

impl AgentSpec {
    fn with_body(
        name: impl Into<String>,
        body: Arc<dyn ActorBody>,
        input: ValueType,
        output: Option<Output>,
    ) -> Self {
        Self {
            name: name.into(),
            qualname: None,
            topics: Vec::new(),
            patterns: Vec::new(),
            partitions: None,
            concurrency: 1,
            isolated_partitions: false,
            use_reply_headers: true,
            help: String::new(),
            value_codec: None,
            key_codec: None,
            schema: None,
            supervisor: None,
            on_error: None,
            sinks: Vec::new(),
            body,
            output,
            input,
            channel: None,
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
        Self::with_body(name, Arc::new(body), ValueType::of::<T>(), None)
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
            ValueType::of::<T>(),
            Some(Output::of::<R>()),
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
            ValueType::of::<T>(),
            Some(Output::of::<R>()),
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
            ValueType::of::<T>(),
            Some(Output::of::<R>()),
        )
    }

    /// An agent called once per batch of up to `max` events, waiting at
    /// most `within` after a batch's first event for more (as
    /// [`Stream::take_batch`]): `async fn(Vec<T>) -> Result<Vec<R>, E>`.
    ///
    /// It returns one result per event, in the batch's order: result `i`
    /// answers event `i` (if it was a request) and goes to the sinks with
    /// that event's key. Returning another number of results
    /// ([`Error::BatchResults`]) or an error fails every event of the
    /// batch: reported to `on_error` once, each request answered with the
    /// error, each event dead-lettered and acked; the actor carries on. A
    /// panic crashes the actor: the batch is not acked and goes back to the
    /// queue, so the restarted actor processes it again. The batch's events
    /// are acked once their results are delivered, never before the call
    /// returns.
    ///
    /// ```
    /// # use faust_core as faust;
    /// use std::time::Duration;
    /// use faust::AgentSpec;
    ///
    /// // Look up 100 keys with one query; each asker gets its own answer.
    /// let lengths = AgentSpec::batch_handler(
    ///     "lengths",
    ///     100,
    ///     Duration::from_millis(50),
    ///     |words: Vec<String>| async move {
    ///         Ok::<_, faust::Error>(words.iter().map(|w| w.len()).collect::<Vec<_>>())
    ///     },
    /// );
    /// ```
    pub fn batch_handler<T, R, F, Fut, E>(
        name: impl Into<String>,
        max: usize,
        within: std::time::Duration,
        f: F,
    ) -> Self
    where
        T: Value,
        R: Value,
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Vec<R>, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let body = BatchHandlerBody::<T, R, F> {
            f: Arc::new(f),
            max,
            within,
            _types: PhantomData,
        };
        Self::with_body(
            name,
            Arc::new(body),
            ValueType::of::<T>(),
            Some(Output::of::<R>()),
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

    /// The topic to consume (default `<app id>-<qualname>`): a name or a
    /// [`Topic`], whose codecs the agent uses unless it sets its own, and
    /// which the app creates with its settings when it starts.
    pub fn topic(mut self, topic: impl Into<Topic>) -> Self {
        self.topics = vec![topic.into()];
        self
    }

    /// Consume several topics: events say which one they came from
    /// ([`Message::topic`](crate::Message::topic)), each partition's order is
    /// kept, and sending to the agent (`send`, `ask`...) produces to the
    /// first one. An empty list keeps the default topic. With isolated
    /// partitions, each partition of each topic gets its own actor.
    pub fn topics<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Topic>,
    {
        self.topics = names.into_iter().map(Into::into).collect();
        self
    }

    /// Read the in-memory channel `name` instead of topics (see
    /// [`Channel`](crate::Channel)): values come as they were sent, with
    /// no broker, no encoding and nothing committed. The app has one
    /// channel per name; every agent reading it gets every value. Not with
    /// topics, topic patterns or isolated partitions.
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        self.channel = Some(name.into());
        self
    }

    /// Also consume every topic whose whole name matches `pattern` (a
    /// regular expression, `regex` crate syntax; Kafka's pattern
    /// subscription), including topics created after the app started. An
    /// agent with only patterns has no topic of its own: it cannot be sent
    /// to, and the app creates no topic for it. With isolated partitions,
    /// each partition of each matching topic gets its own actor.
    pub fn topic_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.patterns.push(pattern.into());
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

    /// Codec of values (default: its first topic's, else the app's, JSON
    /// unless configured): a codec value or a name, looked up in the app's
    /// codecs when the agent is added ([`CodecRef`]).
    pub fn value_codec(mut self, codec: impl Into<CodecRef>) -> Self {
        self.value_codec = Some(codec.into());
        self
    }

    /// Codec of keys (default: its first topic's, else raw bytes, as in
    /// Faust); like [`value_codec`](Self::value_codec).
    pub fn key_codec(mut self, codec: impl Into<CodecRef>) -> Self {
        self.key_codec = Some(codec.into());
        self
    }

    /// The schema of what the agent reads (Faust's `schema=`, `key_type=`,
    /// `value_type=`): its value type must be the function's (checked here
    /// when the agent is added, at compile time with the macro), and its
    /// codecs are used unless [`value_codec`](Self::value_codec) or
    /// [`key_codec`](Self::key_codec) says otherwise; they win over the
    /// topic's.
    pub fn schema<K: Value, V: Value>(mut self, schema: Schema<K, V>) -> Self {
        self.schema = Some(schema.erased);
        self
    }

    /// Supervisor strategy: one of [`SupervisorStrategy`](crate::SupervisorStrategy) or one's own
    /// [`SupervisorStrategyT`] (default: the app's
    /// [`agent_supervisor`](crate::AppBuilder::agent_supervisor), one-for-one).
    pub fn supervisor(mut self, strategy: impl SupervisorStrategyT) -> Self {
        self.supervisor = Some(Arc::new(strategy));
        self
    }

    /// Called when the agent function fails (error, panic, undecodable
    /// event, undelivered output), with [`current_agent`](crate::current_agent)
    /// set; the failed event waits for it.
    pub fn on_error<F>(mut self, f: F) -> Self
    where
        F: Fn(&Agent, &Error) + Send + Sync + 'static,
    {
        self.on_error = Some(OnError::new(f));
        self
    }

    /// [`on_error`](Self::on_error) with an async function, awaited before
    /// the failed event is answered, dead-lettered and acked (Faust awaits
    /// its `on_error`): `async fn alert(agent: Agent, err: Error)`.
    pub fn on_error_async<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Agent, Error) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_error = Some(OnError::new_async(f));
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
        if let Some(bad) = self.topics.iter().find(|t| t.name().trim().is_empty()) {
            return Err(Error::config(format!(
                "agent `{}`: topic name {:?} is empty",
                self.name,
                bad.name()
            )));
        }
        if let Some(dup) = self.topics.iter().enumerate().find_map(|(i, t)| {
            self.topics[..i]
                .iter()
                .any(|u| u.name() == t.name())
                .then_some(t.name())
        }) {
            return Err(Error::config(format!(
                "agent `{}`: topic `{dup}` is listed twice",
                self.name
            )));
        }
        for pattern in &self.patterns {
            TopicPattern::new(pattern).map_err(|e| e.context(&format!("agent `{}`", self.name)))?;
        }
        if let Some(schema) = &self.schema {
            if schema.value_type.id != self.input.type_id {
                return Err(Error::config(format!(
                    "agent `{}` reads `{}` but its schema's value type is `{}`",
                    self.name, self.input.type_name, schema.value_type.name
                )));
            }
        }
        if !self.remote {
            for topic in &self.topics {
                match topic.schema_value_type() {
                    Some(v) if v.id != self.input.type_id => {
                        return Err(Error::config(format!(
                        "agent `{}` reads `{}` from topic `{}`, whose schema's value type is `{}`",
                        self.name,
                        self.input.type_name,
                        topic.name(),
                        v.name
                    )))
                    }
                    _ => {}
                }
            }
        }
        if let Some(channel) = &self.channel {
            let also = if !self.topics.is_empty() {
                Some("topics")
            } else if !self.patterns.is_empty() {
                Some("topic patterns")
            } else if self.isolated_partitions {
                Some("isolated partitions (a channel has no partitions)")
            } else if self.remote {
                Some("`remote` (a channel is in this process)")
            } else if self.schema.is_some() {
                Some("a schema (a channel passes values as they are, with no codec)")
            } else {
                None
            };
            if let Some(also) = also {
                return Err(Error::config(format!(
                    "agent `{}` reads channel `{channel}`: it cannot also have {also}",
                    self.name
                )));
            }
            if channel.trim().is_empty() {
                return Err(Error::config(format!(
                    "agent `{}`: the channel name is empty",
                    self.name
                )));
            }
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
            Some(out) => {
                for sink in &self.sinks {
                    sink.check_key_by(&self.name)?;
                }
                if let Some(bad) = self.sinks.iter().find(|s| s.type_id != out.type_id) {
                    return Err(Error::config(format!(
                        "agent `{}` produces `{}` but sink {} takes `{}`",
                        self.name, out.type_name, bad.label, bad.type_name
                    )));
                }
            }
            None => {}
        }
        Ok(())
    }
}

impl fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSpec")
            .field("name", &self.name)
            .field("topics", &self.topics)
            .field("patterns", &self.patterns)
            .field("concurrency", &self.concurrency)
            .field("isolated_partitions", &self.isolated_partitions)
            .finish_non_exhaustive()
    }
}

/// Used by `#[agent(schema = ...)]`: each function ties a schema's value
/// type to the value type of an agent function of one form, so that a
/// mismatch is a compile error at the schema. Not public API.
#[doc(hidden)]
pub mod schema_check {
    use super::{Schema, Stream, Yield};

    /// For `async fn(Stream<T>) -> ...`.
    pub fn consumer<K, T, F, Fut>(_: &F, schema: Schema<K, T>) -> Schema<K, T>
    where
        F: Fn(Stream<T>) -> Fut,
    {
        schema
    }

    /// For `async fn(Stream<T>, Yield<R>) -> ...`.
    pub fn yielding<K, T, R, F, Fut>(_: &F, schema: Schema<K, T>) -> Schema<K, T>
    where
        F: Fn(Stream<T>, Yield<R>) -> Fut,
    {
        schema
    }

    /// For `async fn(T) -> ...`.
    pub fn handler<K, T, F, Fut>(_: &F, schema: Schema<K, T>) -> Schema<K, T>
    where
        F: Fn(T) -> Fut,
    {
        schema
    }

    /// For `async fn(Vec<T>) -> ...`.
    pub fn batch<K, T, F, Fut>(_: &F, schema: Schema<K, T>) -> Schema<K, T>
    where
        F: Fn(Vec<T>) -> Fut,
    {
        schema
    }
}
