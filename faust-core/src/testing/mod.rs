//! The test harness of an agent (Faust's `test_context()`).
//!
//! [`Agent::test_context`](crate::Agent::test_context) runs a copy of the
//! agent on a private embedded broker, with the crashing supervisor (a crash
//! fails the test, as in Faust); [`Agent::test_context_with`](crate::Agent::test_context_with)
//! takes [`TestOptions`]. [`TestContext::put`] sends one value and waits
//! (with a deadline) until the agent has finished with it, then returns the
//! event or the agent's error. [`TestContext::results`] holds what the agent
//! produced (its inputs, for consumers).

mod observed;
mod options;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::agent::sink::{ErasedSink, SinkTarget};
use crate::agent::supervisor::SupervisorStrategy;
use crate::agent::{Agent, AgentSpec};
use crate::app::{App, AppBuilder};
use crate::error::{Error, Result};
use crate::transport::memory::MemoryBroker;

use self::observed::{At, Observed, Observer};
pub use self::options::{PutOptions, TestEvent, TestOptions};

/// A running copy of an agent on a private embedded broker.
#[derive(Debug)]
pub struct TestContext {
    app: App,
    agent: Agent,
    observed: Arc<Observed>,
    /// Results already given by [`next_result`](Self::next_result).
    taken: AtomicUsize,
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
        let observed = Arc::new(Observed::default());
        let app = AppBuilder::from_config(config)
            .transport(Arc::new(MemoryBroker::new()))
            .event_hook(Arc::new(Observer(observed.clone())))
            .build()?;
        let mut spec = copy_spec(original, &options);
        stand_ins(original, &spec, &app)?;
        if let Some(output) = spec.output {
            let seen = observed.clone();
            spec.sinks.push(ErasedSink::from_fn(
                "<test results>",
                output.type_id,
                output.type_name,
                move |v, at| {
                    let json = (output.to_json)(v).ok_or_else(|| Error::Encode {
                        codec: "json".into(),
                        reason: "result is not serializable".into(),
                    })?;
                    seen.output(at, json);
                    Ok(())
                },
            ));
        }
        let agent = app.add_agent(spec)?;
        app.start().await?;
        Ok(Self {
            app,
            agent,
            observed,
            taken: AtomicUsize::new(0),
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
        let at = (event.partition, event.offset);
        let what = || {
            format!(
                "agent `{}` processing the event at offset {} (a filtered event is processed \
                 too; use no_wait to not wait)",
                agent.name(),
                event.offset
            )
        };
        match self
            .within(deadline, what, self.observed.finished(at))
            .await?
        {
            Some(message) => Err(Error::Agent {
                agent: agent.name().to_string(),
                message,
            }),
            None => Ok(event),
        }
    }

    /// `fut` within `deadline`; a crashed copy (the default supervisor
    /// crashes the app) processes nothing more, so that is said at once.
    async fn within<T>(
        &self,
        deadline: Duration,
        what: impl FnOnce() -> String,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        let crashed = async {
            let reason = self.app.wait_crashed().await;
            Error::Crashed(reason.to_string())
        };
        let outcome = tokio::time::timeout(deadline, async {
            tokio::select! {
                biased;
                done = fut => Ok(done),
                crash = crashed => Err(crash),
            }
        });
        match outcome.await {
            Ok(done) => done,
            Err(_) => Err(Error::Timeout {
                what: what(),
                after: deadline,
            }),
        }
    }

    /// What the agent produced (for consumers: the inputs it processed), in
    /// order, decoded into `V`.
    pub fn results<V: DeserializeOwned>(&self) -> Result<Vec<V>> {
        Ok(self.results_at()?.into_iter().map(|(_, v)| v).collect())
    }

    /// [`results`](Self::results) with the event each answered (for
    /// consumers, each input's own), where there is one.
    fn results_at<V: DeserializeOwned>(&self) -> Result<Vec<(Option<At>, V)>> {
        if self.agent.produces_values() {
            self.observed
                .outputs()
                .into_iter()
                .map(|o| Ok((o.at, serde_json::from_value(o.value)?)))
                .collect()
        } else {
            let codec = self.agent.value_codec();
            self.observed
                .inputs()
                .into_iter()
                .map(|(at, bytes)| Ok((Some(at), codec.decode(&bytes)?)))
                .collect()
        }
    }

    /// The results of one event, in order: what the agent produced for it
    /// (none for a filtered event, several for one it answered twice).
    pub fn results_for<V: DeserializeOwned>(&self, event: &TestEvent) -> Result<Vec<V>> {
        let at = (event.partition, event.offset);
        Ok(self
            .results_at()?
            .into_iter()
            .filter(|(of, _)| *of == Some(at))
            .map(|(_, v)| v)
            .collect())
    }

    /// The results keyed by the offset of the event they answer (Faust's
    /// `results`); values produced with no current event are left out.
    pub fn results_by_offset<V: DeserializeOwned>(&self) -> Result<BTreeMap<i64, Vec<V>>> {
        let mut by_offset: BTreeMap<i64, Vec<V>> = BTreeMap::new();
        for (at, v) in self.results_at()? {
            if let Some((_, offset)) = at {
                by_offset.entry(offset).or_default().push(v);
            }
        }
        Ok(by_offset)
    }

    /// The next result not yet taken with this method, waiting for it up to
    /// the context's timeout: for a `put_with(.., no_wait)` or values the
    /// agent produces on its own.
    pub async fn next_result<V: DeserializeOwned>(&self) -> Result<V> {
        let seen = self.taken.load(Ordering::Acquire);
        let outputs = self.agent.produces_values();
        let what = || format!("result {} of agent `{}`", seen + 1, self.agent.name());
        self.within(self.timeout, what, self.observed.more_than(seen, outputs))
            .await?;
        let (_, value) = self
            .results_at::<V>()?
            .into_iter()
            .nth(seen)
            .expect("more results than were seen");
        self.taken.store(seen + 1, Ordering::Release);
        Ok(value)
    }

    /// The results as they come, from the first not yet taken with
    /// [`next_result`](Self::next_result); it ends after its first error
    /// (none within the timeout, a crash).
    pub fn outputs<V: DeserializeOwned + 'static>(&self) -> impl Stream<Item = Result<V>> + '_ {
        futures::stream::unfold(false, move |failed| async move {
            if failed {
                return None;
            }
            let next = self.next_result::<V>().await;
            let failed = next.is_err();
            Some((next, failed))
        })
    }

    /// Throw `err` into the agent (Faust's `AgentTestWrapper.throw`): each
    /// of its actors ends at its next read as if its function had returned
    /// `err` (the event it was processing fails with it), and the
    /// supervisor decides: by default the copy crashes.
    pub fn throw(&self, err: Error) -> Result<()> {
        match self.agent.throw(&err) {
            0 => Err(Error::Stopped(format!(
                "agent `{}` of the test context (no actor runs)",
                self.agent.name()
            ))),
            _ => Ok(()),
        }
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
