//! The error type of the runtime.

use std::time::Duration;

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in faust.
///
/// Agent functions return this type, or a `Result` with any error that
/// converts into `Box<dyn std::error::Error + Send + Sync>`; the runtime
/// reports a failure as [`Error::Agent`]. In a function returning this type,
/// wrap another error with [`Error::user`]: `.map_err(Error::user)?`.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The application or agent configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The broker URL is malformed, has a scheme no transport handles, or
    /// sets an invalid client property.
    #[error("invalid broker URL `{url}`: {reason}")]
    BrokerUrl {
        /// The URL as given, secrets redacted.
        url: String,
        /// Why it was rejected and what to use instead.
        reason: String,
    },
    /// The broker could not be reached or refused an operation.
    #[error("broker error: {0}")]
    Broker(String),
    /// No agent with this name is registered.
    #[error("unknown agent `{name}`; registered agents: {known}")]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// Two agents were registered under one name.
    #[error("duplicate agent name `{0}`: agent names must be unique")]
    DuplicateAgent(String),
    /// A value could not be encoded.
    #[error("cannot encode value with the {codec} codec: {reason}")]
    Encode {
        /// The codec used.
        codec: String,
        /// What went wrong.
        reason: String,
    },
    /// A message could not be decoded into the agent's value type.
    #[error(
        "cannot decode message {topic}[{partition}]@{offset} with the {codec} codec: {reason}"
    )]
    Decode {
        /// Topic of the message.
        topic: String,
        /// Partition of the message.
        partition: i32,
        /// Offset of the message.
        offset: i64,
        /// The codec used.
        codec: String,
        /// What went wrong.
        reason: String,
    },
    /// A value or key could not be decoded (no message coordinates known).
    #[error("cannot decode value with the {codec} codec: {reason}")]
    DecodeValue {
        /// The codec used.
        codec: String,
        /// What went wrong.
        reason: String,
    },
    /// The agent function failed.
    #[error("agent `{agent}` failed: {message}")]
    Agent {
        /// Agent name.
        agent: String,
        /// The error message (the source error when there is one).
        message: String,
    },
    /// The agent function returned an error of its own.
    #[error(transparent)]
    User(std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// A batch agent returned a number of results other than one per
    /// event of its batch.
    #[error(
        "batch agent `{agent}` returned {results} results for a batch of {events} events: \
         it must return one result per event, in the batch's order"
    )]
    BatchResults {
        /// Agent name.
        agent: String,
        /// Events in the batch.
        events: usize,
        /// Results returned.
        results: usize,
    },
    /// The agent function panicked.
    #[error("agent `{agent}` panicked: {message}")]
    Panic {
        /// Agent name.
        agent: String,
        /// The panic payload when it was a string.
        message: String,
    },
    /// An operation did not finish before its deadline.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The supervisor restarted actors too often.
    #[error("agent `{agent}` exceeded its restart budget of {max} restarts per {over:?}")]
    MaxRestartsExceeded {
        /// Agent name.
        agent: String,
        /// Restarts allowed in the window.
        max: u32,
        /// The window.
        over: Duration,
    },
    /// The app or component has been stopped.
    #[error("{0} is stopped")]
    Stopped(String),
    /// The app crashed (an agent with a crashing supervisor failed).
    #[error("app crashed: {0}")]
    Crashed(String),
    /// An output of an event (a reply, a sink record, a dead-letter copy)
    /// was not delivered: the event is never acked, and the app stops so
    /// that the event is processed again where its partition goes next.
    #[error(
        "an output of event {topic}[{partition}]@{offset} was not delivered, \
         so the event stays uncommitted and is processed again after a restart: {reason}"
    )]
    Undelivered {
        /// Topic of the event.
        topic: String,
        /// Partition of the event.
        partition: i32,
        /// Offset of the event.
        offset: i64,
        /// Why the output was not delivered.
        reason: String,
    },
    /// A request/reply protocol error.
    #[error("rpc error: {0}")]
    Rpc(String),
    /// The agent answered a request with an error.
    #[error("agent `{agent}` failed to answer: {message}")]
    Remote {
        /// Agent name.
        agent: String,
        /// The error the agent reported.
        message: String,
    },
    /// A topic the app declares ([`Topic`](crate::Topic)) exists on the
    /// broker with another setting than the declaration states.
    #[error(
        "topic `{topic}` exists with {setting} {found}, but the app declares {setting} {wanted}: \
         change the declaration to match, or alter or delete the topic on the broker"
    )]
    TopicMismatch {
        /// Topic name.
        topic: String,
        /// The setting that differs: `partitions`, `replicas`, `retention`
        /// or `cleanup.policy`.
        setting: &'static str,
        /// What the declaration states.
        wanted: String,
        /// What the broker has.
        found: String,
    },
}

impl Error {
    /// Wrap any error returned by user code.
    pub fn user<E>(err: E) -> Self
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let boxed: Box<dyn std::error::Error + Send + Sync + 'static> = err.into();
        Error::User(boxed.into())
    }

    /// No agent `name` among `known` (listed as given, or "(none)").
    pub(crate) fn unknown_agent<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Self {
        let known: Vec<&str> = known.into_iter().collect();
        Error::UnknownAgent {
            name: name.to_string(),
            known: if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            },
        }
    }

    /// A configuration error with a message.
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    /// A configuration error said of `what` (`agent `x``); other errors
    /// as they are.
    pub(crate) fn context(self, what: &str) -> Self {
        match self {
            Error::Config(msg) => Error::Config(format!("{what}: {msg}")),
            other => other,
        }
    }

    /// A value that serde_json could not encode.
    pub(crate) fn json_encode(err: serde_json::Error) -> Self {
        Error::Encode {
            codec: "json".into(),
            reason: err.to_string(),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::DecodeValue {
            codec: "json".into(),
            reason: err.to_string(),
        }
    }
}

/// `?` on the errors agent code meets most, inside a function returning
/// [`faust::Result`](crate::Result): each becomes [`Error::User`] (its
/// message and source kept). For an error type of your own, add
/// `impl From<MyError> for faust::Error` calling [`Error::user`]; for any
/// other, `.map_err(faust::Error::user)`, or return `anyhow::Result` from
/// the agent (every agent form accepts any error that converts into a
/// boxed error).
macro_rules! user_errors {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(err: $ty) -> Self {
                Error::user(err)
            }
        }
    )*};
}

user_errors!(
    std::io::Error,
    std::fmt::Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::num::TryFromIntError,
    std::str::ParseBoolError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    std::time::SystemTimeError,
    tokio::time::error::Elapsed,
    tokio::task::JoinError,
    Box<dyn std::error::Error + Send + Sync + 'static>,
);

impl From<anyhow::Error> for Error {
    /// The error, its causes kept as sources.
    fn from(err: anyhow::Error) -> Self {
        Error::user(err.into_boxed_dyn_error())
    }
}
