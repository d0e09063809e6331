//! [`AppBuilder`]: settings, transports, then [`build`](AppBuilder::build).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{Codec, CodecRef, Registry, Transform};
use crate::config::AppConfig;
use crate::context::{Context, EventHook};
use crate::error::Result;
use crate::transport::{self, OffsetReset, Transport, TransportFactory};

use super::App;

/// Builds an [`App`].
#[derive(Clone)]
pub struct AppBuilder {
    config: AppConfig,
    schemes: Vec<(&'static str, TransportFactory)>,
    transport: Option<Arc<dyn Transport>>,
    hook: Option<Arc<dyn EventHook>>,
    codecs: Registry,
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
            schemes: Vec::new(),
            transport: None,
            hook: None,
            codecs: Registry::default(),
        }
    }

    /// The settings made so far.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Broker URL (default `memory://`).
    pub fn broker(mut self, url: impl Into<String>) -> Self {
        self.config.broker = url.into();
        self
    }

    /// Rename the app: its consumer group and the prefix of its default
    /// topic names.
    pub fn app_id(mut self, id: impl Into<String>) -> Self {
        self.config.id = id.into();
        self
    }

    /// Apply the environment over the settings made so far: `FAUST_BROKER`
    /// replaces the broker and `FAUST_APP_ID` the app id, where set and
    /// not empty.
    ///
    /// Settings come in layers, the later winning, the same for every
    /// setting: the defaults, then code (this builder), then the
    /// environment, then the command line. `faust::run` and
    /// `faust::run_with` apply the last two; an app built without them
    /// reads the environment only if it calls this.
    ///
    /// ```
    /// # use faust_core as faust;
    /// let builder = faust::App::builder("orders").broker("memory://orders").with_env();
    /// // `FAUST_BROKER=kafka://127.0.0.1:9092` in the environment would win over the code.
    /// # drop(builder);
    /// ```
    pub fn with_env(mut self) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(broker) = var(crate::config::BROKER_ENV) {
            self.config.broker = broker;
        }
        if let Some(id) = var(crate::config::APP_ID_ENV) {
            self.config.id = id;
        }
        self
    }

    /// Time events' processing for the processing-time histogram (on by
    /// default; the counters are kept either way).
    pub fn metrics(mut self, on: bool) -> Self {
        self.config.metrics = on;
        self
    }

    /// How long a partition's oldest event in flight may stay unfinished
    /// before the partition counts as stalled (5 min): a warning names the
    /// agent, partition and offset, and [`App::health`](crate::App::health)
    /// says the app is not ready.
    pub fn stall_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config.stall_timeout = timeout;
        self
    }

    /// Where failed events are copied.
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.config.dead_letter_topic = Some(topic.into());
        self
    }

    /// Prefix of the generated reply topic name (`f-reply-`).
    pub fn reply_to_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.reply_to_prefix = prefix.into();
        self
    }

    /// Exact reply topic name (default: the prefix and a fresh uuid).
    pub fn reply_to(mut self, topic: impl Into<String>) -> Self {
        self.config.reply_to = topic.into();
        self
    }

    /// Default codec of agent values and topic sends (default: JSON): a
    /// codec value or a name (built in, a chain like `"json|binary"`, or
    /// registered with [`codec`](Self::codec)), looked up by
    /// [`build`](Self::build).
    pub fn value_codec(mut self, codec: impl Into<CodecRef>) -> Self {
        self.config.value_codec = codec.into();
        self
    }

    /// Register a codec under a name (Faust's `codecs.register`), for
    /// agents, sends and the settings to name; a later one of the same name
    /// replaces it. The built-in names (`json`, `bincode`, `raw`, `binary`)
    /// cannot be taken: [`build`](Self::build) fails. See [`Codec`].
    pub fn codec(mut self, name: &str, codec: impl Codec) -> Self {
        self.codecs.add_codec(name, codec);
        self
    }

    /// Register a transform of encoded bytes under a name, to chain after
    /// a codec (`"json|name"`). See [`Transform`].
    pub fn transform(mut self, name: &str, transform: impl Transform) -> Self {
        self.codecs.add_transform(name, transform);
        self
    }

    setters! {
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

    /// Supervisor strategy of every agent that sets none (Faust's
    /// `agent_supervisor`; default one-for-one): a [`SupervisorStrategy`](crate::SupervisorStrategy)
    /// or one's own [`SupervisorStrategyT`](crate::supervisor::SupervisorStrategyT).
    pub fn agent_supervisor(
        mut self,
        strategy: impl crate::agent::supervisor::SupervisorStrategyT,
    ) -> Self {
        self.config.agent_supervisor = Arc::new(strategy);
        self
    }

    /// Register a transport for a URL scheme (the facade registers `kafka`).
    pub fn scheme(mut self, scheme: &'static str, factory: TransportFactory) -> Self {
        self.schemes.retain(|(s, _)| *s != scheme);
        self.schemes.push((scheme, factory));
        self
    }

    /// Use this transport instead of connecting to the broker URL (which
    /// then only names the broker in logs and errors). The app holds the
    /// transport: an embedded broker made for one app is freed with it.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Tell `hook` each time an agent is done with an event.
    pub(crate) fn event_hook(mut self, hook: Arc<dyn EventHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Check the configuration, connect the transport and build the app.
    pub fn build(mut self) -> Result<App> {
        self.config.validate()?;
        if self.config.reply_to.is_empty() {
            self.config.reply_to =
                format!("{}{}", self.config.reply_to_prefix, uuid::Uuid::new_v4());
        }
        self.codecs.check()?;
        self.config.value_codec = self
            .codecs
            .resolve(&self.config.value_codec)
            .map_err(|e| e.context("the app's value_codec"))?;
        let transport = match self.transport {
            Some(transport) => transport,
            None => transport::connect(&self.config.broker, &self.schemes)?,
        };
        Ok(App::from_context(Context::new(
            self.config,
            transport,
            self.hook,
            self.codecs,
        )))
    }
}
