//! App settings: [`AppConfig`], with Faust's defaults.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use crate::agent::supervisor::{SupervisorStrategy, SupervisorStrategyT};
use crate::codec::CodecRef;
use crate::error::{Error, Result};
use crate::rpc::wire;
use crate::transport::OffsetReset;

/// Environment variable naming the broker URL, read by
/// [`AppBuilder::with_env`](crate::AppBuilder::with_env).
pub const BROKER_ENV: &str = "FAUST_BROKER";

/// Environment variable naming the app id, read by
/// [`AppBuilder::with_env`](crate::AppBuilder::with_env).
pub const APP_ID_ENV: &str = "FAUST_APP_ID";

/// App settings. Build with [`App::builder`].
#[derive(Clone)]
#[non_exhaustive]
pub struct AppConfig {
    /// App id: the consumer group and the prefix of default topic names.
    pub id: String,
    /// Broker URL: `memory://` (default), `memory://<name>`, `kafka://host:port`.
    pub broker: String,
    /// Default codec of agent values and topic sends (JSON). A name is
    /// looked up in the app's codecs when the app is built.
    pub value_codec: CodecRef,
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
    /// This app's reply topic; empty (the default) means
    /// `<reply_to_prefix><uuid4>`, chosen when the app is built.
    pub reply_to: String,
    /// Retention of the reply topic (1 day).
    pub reply_expires: Duration,
    /// Default deadline of `ask` (30 s).
    pub ask_timeout: Duration,
    /// Supervisor strategy of agents that set none (one-for-one; Faust's
    /// `agent_supervisor`).
    pub agent_supervisor: Arc<dyn SupervisorStrategyT>,
    /// Time events' processing for the `faust_agent_event_processing_seconds`
    /// histogram (on). The counters are kept either way.
    pub metrics: bool,
    /// A partition whose oldest event in flight has not moved for this long
    /// is stalled: a warning is logged and the app is not ready (5 min,
    /// Faust's commit livelock timeout).
    pub stall_timeout: Duration,
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
            .field("agent_supervisor", &self.agent_supervisor.name())
            .field("metrics", &self.metrics)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

impl AppConfig {
    /// Defaults for an app id, on the embedded broker (`memory://`). Nothing
    /// is read from the environment here: see
    /// [`AppBuilder::with_env`](crate::AppBuilder::with_env).
    pub fn new(id: impl Into<String>) -> Self {
        let prefix = wire::DEFAULT_REPLY_TO_PREFIX.to_string();
        Self {
            id: id.into(),
            broker: "memory://".to_string(),
            value_codec: CodecRef::JSON,
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
            reply_to: String::new(),
            reply_to_prefix: prefix,
            reply_expires: Duration::from_secs(86_400),
            ask_timeout: Duration::from_secs(30),
            agent_supervisor: Arc::new(SupervisorStrategy::OneForOne),
            metrics: true,
            stall_timeout: Duration::from_secs(300),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
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
        if self.stall_timeout.is_zero() {
            return Err(Error::config("stall_timeout must be greater than zero"));
        }
        Ok(())
    }
}
