//! In-memory channels: agents fed by the app itself, with no broker.
//!
//! A [`Channel`] is Faust's `app.channel()`: a named, typed, bounded queue
//! in this process. Agents read it with [`AgentSpec::channel`] (or
//! `#[agent(channel = "name")]`), and anything holding the channel, a
//! sink ([`Sink::channel`](crate::Sink::channel)) or the reading agent's
//! own handle (`send`, `ask`, `join`...) can feed it. Values pass as
//! values: no encoding, no partitions, no offsets, nothing committed. It
//! works the same whatever the app's broker is, so an app on Kafka can run
//! channel agents next to topic agents.
//!
//! What a channel guarantees:
//! - **Back-pressure, never loss on the way in.** Each reading agent's
//!   queue holds `stream_buffer_maxsize` values; a send to a full queue
//!   waits for room up to its deadline (the call's timeout, or the app's
//!   `ask_timeout`), then fails with [`Error::Timeout`](crate::Error::Timeout).
//!   A send while a reading agent is not running fails with
//!   [`Error::Stopped`](crate::Error::Stopped): nothing is kept for later.
//! - **Every reader gets every value**, as in Faust. The first reader gets
//!   the value sent; each further reader gets a copy made through serde.
//! - **Values in a channel are lost when the app stops**, as in Faust: the
//!   queue lives in memory only. A stopping actor may still finish a few
//!   values it already took; the rest are dropped, and a restarted agent
//!   does not see them.
//! - Acks and errors are those of topic agents (`on_error`, supervisor);
//!   an event's [message](crate::Message) names the channel as its topic,
//!   partition 0, and a sequence number as its offset.
//!
//! [`AgentSpec::channel`]: crate::AgentSpec::channel

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::codec::Value;
use crate::context::Context;
use crate::error::Result;
use crate::record::RecordMetadata;
use crate::rpc::SendOptions;
use crate::runtime::inbox::Inbox;

/// An in-memory channel of `T` values; get one with
/// [`App::channel`](crate::App::channel). Cheap to clone.
///
/// ```
/// # use faust_core as faust;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> faust::Result<()> {
/// use faust::{AgentSpec, App, Stream};
///
/// let app = App::builder("chan-doc").broker("memory://chan-doc").build()?;
/// app.add_agent(
///     AgentSpec::consumer("print", |mut s: Stream<String>| async move {
///         while let Some(line) = s.next().await {
///             println!("{line}");
///         }
///         Ok::<_, faust::Error>(())
///     })
///     .channel("lines"),
/// )?;
/// let lines = app.channel::<String>("lines")?;
/// app.start().await?;
/// lines.send("hello".to_string()).await?;
/// app.stop().await?;
/// # Ok(()) }
/// ```
pub struct Channel<T> {
    inbox: Arc<Inbox>,
    ctx: Arc<Context>,
    _t: PhantomData<fn(T)>,
}

impl<T: Value> Channel<T> {
    pub(crate) fn new(inbox: Arc<Inbox>, ctx: Arc<Context>) -> Self {
        Self {
            inbox,
            ctx,
            _t: PhantomData,
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        self.inbox.name()
    }

    /// The agents reading the channel.
    pub fn readers(&self) -> Vec<String> {
        self.inbox.readers()
    }

    /// Hand `value` to every agent reading the channel, waiting for room up
    /// to the app's `ask_timeout`. The metadata names the channel, partition
    /// 0 and the value's sequence number.
    pub async fn send(&self, value: T) -> Result<RecordMetadata> {
        self.send_with(value, SendOptions::default()).await
    }

    /// [`send`](Self::send) with options: `key` (raw bytes), `headers`,
    /// `timestamp`, `timeout` (how long to wait for room), `reply_to` and
    /// `correlation_id` (the reading agent answers there).
    pub async fn send_with(&self, value: T, opts: SendOptions) -> Result<RecordMetadata> {
        let headers = opts.channel_headers();
        let wait = opts.timeout.unwrap_or(self.ctx.config.ask_timeout);
        self.inbox
            .push(Box::new(value), opts.key, headers, opts.timestamp, wait)
            .await
    }
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Self {
            inbox: self.inbox.clone(),
            ctx: self.ctx.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({})", self.inbox.name())
    }
}
