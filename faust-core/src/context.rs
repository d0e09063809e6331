//! The app's shared services, handed to every agent, actor, sink and RPC
//! call: settings, the producer, the reply consumer, the crash signal, the
//! tracker of events waiting for their outputs, the actors' tracebacks and
//! the directory of agents by name.
//!
//! The context owns no agent, so agents hold it (`Arc<Context>`) without a
//! reference cycle and without reaching up into the [`App`](crate::App).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::codec::{CodecRef, Registry};
use crate::config::AppConfig;
use crate::error::{Error, Result};
use crate::metrics::app::AppCounters;
use crate::record::{ProducerRecord, TopicPartition};
use crate::redact::redact_url;
use crate::rpc::reply_consumer::{ReplyConsumer, ReplyTopics};
use crate::runtime::acks::{Message, PartitionAcks};
use crate::runtime::inbox::{Inbox, ValueType};
use crate::sync::RwLock;
use crate::transport::producer::Producer;
use crate::transport::Transport;

/// Told when an agent is done with an event: acked, or failed (`error`).
/// The test harness installs one to wait for the events it sends.
pub(crate) trait EventHook: Send + Sync + 'static {
    /// `agent` is done with `msg`.
    fn done(&self, agent: &str, msg: &Message, error: Option<&Error>);
}

/// See the [module documentation](self).
pub(crate) struct Context {
    pub(crate) config: AppConfig,
    pub(crate) producer: Producer,
    pub(crate) replies: ReplyConsumer,
    crashed: watch::Sender<Option<Arc<Error>>>,
    /// Events waiting for their outputs' delivery: `App::stop` waits for them.
    pub(crate) ack_tasks: TaskTracker,
    /// Where each actor is suspended.
    pub(crate) tracebacks: await_tree::Registry,
    /// Each agent's value codec and topic, by name (for agent sinks).
    agents: RwLock<HashMap<String, AgentEntry>>,
    /// The in-memory channels, by name.
    channels: RwLock<HashMap<String, Arc<Inbox>>>,
    hook: Option<Arc<dyn EventHook>>,
    /// The app's codecs by name.
    codecs: Registry,
    /// Unique among the contexts of this process (caches keyed by app use it).
    pub(crate) instance: u64,
    /// This worker holds the app's leader topic.
    pub(crate) leader: std::sync::atomic::AtomicBool,
    /// The app-wide counters (metrics).
    pub(crate) counters: AppCounters,
    /// The ack bookkeeping of each partition the conductor holds, as it
    /// last published it (metrics and readiness read it).
    pub(crate) partitions: RwLock<HashMap<TopicPartition, Arc<PartitionAcks>>>,
}

/// What an agent sink needs of its target agent.
struct AgentEntry {
    codec: CodecRef,
    route: Option<AgentRoute>,
}

/// Where sending to an agent goes.
#[derive(Clone, Debug)]
pub(crate) enum AgentRoute {
    /// Its (first) topic.
    Topic(Arc<str>),
    /// The in-memory channel it reads.
    Channel(Arc<Inbox>),
}

static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Context {
    pub(crate) fn new(
        config: AppConfig,
        transport: Arc<dyn Transport>,
        hook: Option<Arc<dyn EventHook>>,
        codecs: Registry,
    ) -> Self {
        let replies = ReplyConsumer::new(ReplyTopics {
            transport: transport.clone(),
            replication: config.topic_replication,
            retention: config.reply_expires,
            deadline: config.broker_timeout,
            broker: redact_url(&config.broker),
        });
        Self {
            config,
            producer: Producer::new(transport),
            replies,
            crashed: watch::Sender::new(None),
            ack_tasks: TaskTracker::new(),
            tracebacks: await_tree::Registry::new(await_tree::Config::default()),
            agents: RwLock::default(),
            channels: RwLock::default(),
            hook,
            codecs,
            instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            leader: std::sync::atomic::AtomicBool::new(false),
            counters: AppCounters::default(),
            partitions: RwLock::default(),
        }
    }

    /// The broker connection.
    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        self.producer.transport()
    }

    // ----- crashing ----------------------------------------------------------

    /// Crash the app with `err` (the first crash wins).
    pub(crate) fn crash(&self, err: Error) {
        tracing::error!(app = %self.config.id, error = %err, "app crashed");
        self.crashed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(Arc::new(err));
                true
            } else {
                false
            }
        });
    }

    /// Forget an earlier crash (the app starts again).
    pub(crate) fn crashed_reset(&self) {
        self.crashed.send_replace(None);
    }

    /// The crash reason, if the app crashed.
    pub(crate) fn crash_reason(&self) -> Option<Arc<Error>> {
        self.crashed.borrow().clone()
    }

    /// Wait until the app crashes.
    pub(crate) async fn wait_crashed(&self) -> Arc<Error> {
        let mut rx = self.crashed.subscribe();
        let guard = rx.wait_for(|c| c.is_some()).await;
        match guard {
            Ok(c) => c.clone().expect("checked by wait_for"),
            Err(_) => Arc::new(Error::Stopped("app".into())),
        }
    }

    // ----- agents by name ----------------------------------------------------

    /// Make an agent known by name (its sinks' targets are looked up here);
    /// `route`: `None` for an agent reading topic patterns only.
    pub(crate) fn add_agent(&self, name: &str, codec: CodecRef, route: Option<AgentRoute>) {
        self.agents
            .write()
            .insert(name.to_string(), AgentEntry { codec, route });
    }

    /// The value codec of the agent with this name and where sending to it goes.
    pub(crate) fn agent_target(&self, name: &str) -> Result<(CodecRef, AgentRoute)> {
        let agents = self.agents.read();
        let name = name.strip_prefix('@').unwrap_or(name);
        match agents.get(name) {
            Some(AgentEntry {
                codec,
                route: Some(route),
            }) => return Ok((codec.clone(), route.clone())),
            Some(AgentEntry { route: None, .. }) => {
                return Err(Error::config(format!(
                    "agent `{name}` reads topic patterns only: it has no topic to send to"
                )))
            }
            None => {}
        }
        let mut known: Vec<&str> = agents.keys().map(String::as_str).collect();
        known.sort_unstable();
        Err(Error::unknown_agent(name, known))
    }

    // ----- channels ----------------------------------------------------------

    /// The channel with this name, made for values of `value_type` if the
    /// app has none; an error if it carries another type.
    pub(crate) fn channel(&self, name: &str, value_type: ValueType) -> Result<Arc<Inbox>> {
        crate::transport::validate_topic_name(name)
            .map_err(|_| Error::config("a channel name must not be empty"))?;
        let mut channels = self.channels.write();
        let inbox = channels
            .entry(name.to_string())
            .or_insert_with(|| Inbox::new(name, value_type));
        inbox.check_type(&value_type)?;
        Ok(inbox.clone())
    }

    /// The channel with this name, if the app has one.
    pub(crate) fn find_channel(&self, name: &str) -> Option<Arc<Inbox>> {
        self.channels.read().get(name).cloned()
    }

    // ----- codecs ------------------------------------------------------------

    /// `codec` with its name looked up in the app's codecs, if it is a name
    /// (free for a codec already resolved).
    pub(crate) fn codec(&self, codec: &CodecRef) -> Result<CodecRef> {
        if codec.is_resolved() {
            return Ok(codec.clone());
        }
        self.codecs.resolve(codec)
    }

    // ----- events ------------------------------------------------------------

    /// `agent` is done with `msg` (tells the installed hook, if any).
    pub(crate) fn event_done(&self, agent: &str, msg: &Message, error: Option<&Error>) {
        if let Some(hook) = &self.hook {
            hook.done(agent, msg, error);
        }
    }

    /// Copy a failed message to the dead-letter topic, if one is configured
    /// and the message was not read from it (copying it back would fail it
    /// again, forever). Whether it was copied.
    pub(crate) async fn dead_letter(&self, msg: &Message, err: &Error) -> Result<bool> {
        let Some(topic) = &self.config.dead_letter_topic else {
            return Ok(false);
        };
        if msg.topic() == topic {
            tracing::error!(
                topic = %topic,
                partition = msg.partition(),
                offset = msg.offset(),
                "a record of the dead-letter topic failed again; it is not copied back to the topic it was read from"
            );
            return Ok(false);
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
        self.producer
            .send(ProducerRecord {
                topic: topic.as_str().into(),
                partition: None,
                key: msg.key().cloned(),
                value: msg.value().cloned(),
                headers,
                timestamp: Some(msg.timestamp()),
            })
            .await?;
        Ok(true)
    }

    // ----- broker deadlines --------------------------------------------------

    /// `fut`, or a timeout error after the broker deadline naming `what`.
    pub(crate) async fn with_broker_deadline<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let after = self.config.broker_timeout;
        tokio::time::timeout(after, fut)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("{what} on {}", redact_url(&self.config.broker)),
                after,
            })?
    }
}
