//! The test harness of an agent (Faust's `test_context()`).
//!
//! [`Agent::test_context`](crate::Agent::test_context) runs a copy of the
//! agent on a private embedded broker, with the crashing supervisor (a crash
//! fails the test, as in Faust); [`Agent::test_context_with`](crate::Agent::test_context_with)
//! takes [`TestOptions`]. [`TestContext::put`] sends one value and waits
//! (with a deadline) until the agent has finished with it, then returns the
//! event or the agent's error. [`TestContext::results`] holds what the agent
//! produced (its inputs, for consumers).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::agent::sink::{ErasedSink, SinkTarget};
use crate::agent::supervisor::{SupervisorStrategy, SupervisorStrategyT};
use crate::agent::{Agent, AgentSpec};
use crate::app::{App, AppBuilder};
use crate::codec::CodecRef;
use crate::context::EventHook;
use crate::error::{Error, Result};
use crate::record::Headers;
use crate::runtime::acks::Message;
use crate::sync::Mutex;
use crate::transport::memory::MemoryBroker;

/// Options of [`TestContext::put_with`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// Raw key.
    pub key: Option<Bytes>,
    /// Partition (default 0).
    pub partition: Option<i32>,
    /// Timestamp in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Headers,
    /// Make the event a request answered to this topic.
    pub reply_to: Option<String>,
    /// Correlation id of the request.
    pub correlation_id: Option<String>,
    /// Do not wait for the agent to process the event.
    pub no_wait: bool,
    /// How long to wait (default: the context's timeout, 5 s).
    pub timeout: Option<Duration>,
}

impl PutOptions {
    /// Set the raw key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Set the partition.
    pub fn partition(mut self, p: i32) -> Self {
        self.partition = Some(p);
        self
    }
    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Return as soon as the event is sent.
    pub fn no_wait(mut self) -> Self {
        self.no_wait = true;
        self
    }
    /// Wait at most this long.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

/// Options of [`Agent::test_context_with`](crate::Agent::test_context_with)
/// (Faust's `test_context(channel, supervisor_strategy, on_error)`).
#[derive(Clone, Default)]
#[must_use]
pub struct TestOptions {
    supervisor: Option<Arc<dyn SupervisorStrategyT>>,
    on_error: Option<crate::agent::OnError>,
    channel: Option<String>,
    timeout: Option<Duration>,
}

impl TestOptions {
    /// The copy's supervisor strategy (default: crashing, so that a crash
    /// fails the test; one-for-one lets it restart and read on).
    pub fn supervisor(mut self, strategy: impl SupervisorStrategyT) -> Self {
        self.supervisor = Some(Arc::new(strategy));
        self
    }

    /// The copy's `on_error`, instead of the agent's.
    pub fn on_error<F>(mut self, f: F) -> Self
    where
        F: Fn(&Agent, &Error) + Send + Sync + 'static,
    {
        self.on_error = Some(crate::agent::OnError::new(f));
        self
    }

    /// The copy's `on_error`, an async function, instead of the agent's.
    pub fn on_error_async<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Agent, Error) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.on_error = Some(crate::agent::OnError::new_async(f));
        self
    }

    /// Read this in-memory channel instead of the agent's topics (Faust's
    /// `channel=`): `put` hands values to it. Not for isolated partitions.
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        self.channel = Some(name.into());
        self
    }

    /// How long `put` waits by default (5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl std::fmt::Debug for TestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOptions")
            .field(
                "supervisor",
                &self.supervisor.as_ref().map(|s| s.name().to_string()),
            )
            .field("on_error", &self.on_error.is_some())
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An event sent by [`TestContext::put`].
#[derive(Clone, Debug, PartialEq)]
pub struct TestEvent {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Raw key.
    pub key: Option<Bytes>,
    /// Raw value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Headers,
}

#[derive(Clone, Debug)]
enum Entry {
    Json(serde_json::Value),
    Raw(Bytes, CodecRef),
}

/// What the harness learns about each event the agent is done with.
#[derive(Debug)]
struct Processed {
    partition: i32,
    offset: i64,
    error: Option<String>,
    value: Option<Bytes>,
}

/// The harness's hook in the private app: every finished event, in order.
struct Observer(mpsc::UnboundedSender<Processed>);

impl EventHook for Observer {
    fn done(&self, _agent: &str, msg: &Message, error: Option<&Error>) {
        let _ = self.0.send(Processed {
            partition: msg.partition(),
            offset: msg.offset(),
            error: error.map(|e| e.to_string()),
            value: msg.value().cloned(),
        });
    }
}

/// A running copy of an agent on a private embedded broker.
#[derive(Debug)]
pub struct TestContext {
    app: App,
    agent: Agent,
    processed: tokio::sync::Mutex<mpsc::UnboundedReceiver<Processed>>,
    results: Arc<Mutex<Vec<Entry>>>,
    timeout: Duration,
}

impl Agent {
    /// A test harness running a copy of this agent on a private embedded
    /// broker, with the crashing supervisor; see [`TestContext`].
    pub async fn test_context(&self) -> Result<TestContext> {
        TestContext::start(self, TestOptions::default()).await
    }

    /// [`test_context`](Self::test_context) with options: another
    /// supervisor strategy, `on_error`, an input channel, a timeout.
    pub async fn test_context_with(&self, options: TestOptions) -> Result<TestContext> {
        TestContext::start(self, options).await
    }
}

/// The copy of `original`'s spec a test context runs: with the options'
/// supervisor (crashing by default), `on_error` and input channel.
fn copy_spec(original: &Agent, options: &TestOptions) -> AgentSpec {
    let mut spec = original.to_spec();
    spec.supervisor = Some(
        options
            .supervisor
            .clone()
            .unwrap_or_else(|| Arc::new(SupervisorStrategy::Crashing)),
    );
    if let Some(on_error) = &options.on_error {
        spec.on_error = Some(on_error.clone());
    }
    if let Some(channel) = &options.channel {
        spec.channel = Some(channel.clone());
        spec.topics.clear();
        spec.patterns.clear();
        spec.partitions = None;
    }
    spec
}

/// The agents `spec`'s sinks send to, declared in the private app as
/// remote agents on their topics (the records land on the private broker,
/// where nothing reads them). A sink to an agent reading a channel has
/// nothing to stand in for it: an error naming it.
fn stand_ins(original: &Agent, spec: &AgentSpec, app: &App) -> Result<()> {
    for sink in &spec.sinks {
        let Some(SinkTarget::Agent(name)) = &sink.target else {
            continue;
        };
        let (codec, route) = original.context().agent_target(name)?;
        match route {
            crate::context::AgentRoute::Topic(topic) => {
                let name = name.strip_prefix('@').unwrap_or(name);
                app.add_agent(
                    AgentSpec::remote(name)
                        .topic(topic.to_string())
                        .value_codec(codec),
                )?;
            }
            crate::context::AgentRoute::Channel(_) => {
                return Err(Error::config(format!(
                    "agent `{}` has a sink to agent `{name}`, which reads an in-memory \
                     channel: a test context runs one agent, so nothing would read it",
                    original.name()
                )))
            }
        }
    }
    Ok(())
}

impl TestContext {
    async fn start(original: &Agent, options: TestOptions) -> Result<Self> {
        let mut config = original.context().config.clone();
        config.broker = "memory://test-context".to_string();
        config.reply_to = format!("{}{}", config.reply_to_prefix, uuid::Uuid::new_v4());
        config.commit_interval = Duration::from_millis(100);
        // The context owns its broker: it is freed with the context.
        let (tx, rx) = mpsc::unbounded_channel();
        let app = AppBuilder::from_config(config)
            .transport(Arc::new(MemoryBroker::new()))
            .event_hook(Arc::new(Observer(tx)))
            .build()?;
        let mut spec = copy_spec(original, &options);
        stand_ins(original, &spec, &app)?;
        let results: Arc<Mutex<Vec<Entry>>> = Arc::default();
        if let Some(output) = spec.output {
            let sink_results = results.clone();
            spec.sinks.push(ErasedSink::from_fn(
                "<test results>",
                output.type_id,
                output.type_name,
                move |v| {
                    let json = (output.to_json)(v).ok_or_else(|| Error::Encode {
                        codec: "json".into(),
                        reason: "result is not serializable".into(),
                    })?;
                    sink_results.lock().push(Entry::Json(json));
                    Ok(())
                },
            ));
        }
        let agent = app.add_agent(spec)?;
        app.start().await?;
        Ok(Self {
            app,
            agent,
            processed: tokio::sync::Mutex::new(rx),
            results,
            timeout: options.timeout.unwrap_or(Duration::from_secs(5)),
        })
    }

    /// How long `put` waits by default (5 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The agent copy under test.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The private app running it.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Send a value and wait until the agent has finished with it.
    /// Returns the agent's error if processing this event failed.
    pub async fn put<V: Serialize + ?Sized>(&self, value: &V) -> Result<TestEvent> {
        self.put_with(value, PutOptions::default()).await
    }

    /// [`put`](Self::put) with a key, partition, headers, reply address,
    /// timeout or no waiting.
    pub async fn put_with<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: PutOptions,
    ) -> Result<TestEvent> {
        let agent = &self.agent;
        let mut send = crate::rpc::SendOptions {
            key: opts.key.clone(),
            // A channel has no partitions.
            partition: match agent.reads_channel() {
                true => opts.partition,
                false => Some(opts.partition.unwrap_or(0)),
            },
            timestamp: opts.timestamp,
            headers: opts.headers.clone(),
            reply_to: opts.reply_to.clone(),
            correlation_id: opts.correlation_id.clone(),
            ..Default::default()
        };
        let (meta, key, val, event_headers) = if agent.reads_channel() {
            // The value goes as a value: the event has no bytes.
            if send.reply_to.is_some() && send.correlation_id.is_none() {
                send.correlation_id = Some(uuid::Uuid::new_v4().to_string());
            }
            let headers = send.channel_headers();
            let meta = agent.send_with(value, send).await?;
            (meta, opts.key.clone(), None, headers)
        } else {
            let record = agent.record_for(value, &send)?;
            let event_headers = record.headers.clone();
            let (key, val) = (record.key.clone(), record.value.clone());
            (self.app.send_record(record).await?, key, val, event_headers)
        };
        let event = TestEvent {
            topic: meta.topic.to_string(),
            partition: meta.partition,
            offset: meta.offset,
            key,
            value: val,
            headers: event_headers,
        };
        if opts.no_wait {
            return Ok(event);
        }
        let deadline = opts.timeout.unwrap_or(self.timeout);
        let mut rx = self.processed.lock().await;
        let wait = async {
            while let Some(p) = rx.recv().await {
                if !agent.produces_values() && p.error.is_none() {
                    if let Some(v) = &p.value {
                        self.results
                            .lock()
                            .push(Entry::Raw(v.clone(), agent.value_codec().clone()));
                    }
                }
                if p.partition == event.partition && p.offset == event.offset {
                    return Some(p);
                }
            }
            None
        };
        // A crashed copy (the default supervisor crashes the app) processes
        // nothing more: say so at once instead of at the deadline.
        let crashed = async {
            let reason = self.app.wait_crashed().await;
            Error::Crashed(reason.to_string())
        };
        let outcome = tokio::time::timeout(deadline, async {
            tokio::select! {
                biased;
                processed = wait => Ok(processed),
                crash = crashed => Err(crash),
            }
        });
        match outcome.await {
            Ok(Err(crash)) => Err(crash),
            Ok(Ok(processed)) => Self::processed(agent, processed),
            Err(_) => Err(Error::Timeout {
                what: format!(
                    "agent `{}` processing the event at offset {} (a filtered event is processed too; use no_wait to not wait)",
                    agent.name(),
                    event.offset
                ),
                after: deadline,
            }),
        }
        .map(|()| event)
    }

    /// What `put` returns for the event the agent is done with.
    fn processed(agent: &Agent, processed: Option<Processed>) -> Result<()> {
        match processed {
            None => Err(Error::Stopped("test context".into())),
            Some(p) => match p.error {
                Some(message) => Err(Error::Agent {
                    agent: agent.name().to_string(),
                    message,
                }),
                None => Ok(()),
            },
        }
    }

    /// What the agent produced (for consumers: the inputs it processed), in
    /// order, decoded into `V`.
    pub fn results<V: DeserializeOwned>(&self) -> Result<Vec<V>> {
        let entries = self.results.lock().clone();
        entries
            .into_iter()
            .map(|e| match e {
                Entry::Json(v) => serde_json::from_value(v).map_err(Error::from),
                Entry::Raw(b, codec) => codec.decode(&b),
            })
            .collect()
    }

    /// Stop the private app.
    pub async fn stop(&self) -> Result<()> {
        self.app.stop().await
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        let app = self.app.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = app.stop().await;
            });
        }
    }
}
