//! Sinks: where the values an agent produces go besides the reply.
//!
//! Every value produced for an event is handed to each sink in order, and
//! each sink is awaited before the next one: a callback runs to completion,
//! a topic or agent sink until the producer has taken its record
//! (back-pressure, as in Faust). The event is acked once every record it
//! produced is delivered.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::codec::{CodecRef, Value};
use crate::context::{AgentRoute, Context};
use crate::error::{Error, Result};
use crate::record::ProducerRecord;
use crate::runtime::inbox::Inbox;
use crate::topic::Topic;
use crate::trace_context::EventTrace;
use crate::transport::producer::{GroupSlot, Queued};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type CallFn<R> = Arc<dyn Fn(&R) -> SinkCall + Send + Sync>;

/// What calling a sink function gives: its result at once (synchronous
/// functions), or a future of it.
pub enum SinkCall {
    /// The function ran.
    Done(Result<()>),
    /// The function returned a future; the actor awaits it.
    Pending(BoxFuture<'static, Result<()>>),
}

impl fmt::Debug for SinkCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkCall::Done(r) => f.debug_tuple("Done").field(r).finish(),
            SinkCall::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// What sending one value to an erased sink gives: topic and agent sinks
/// give the delivery of the record they queued.
pub(crate) type SinkSend = Queued;

/// What a sink looks up in its app (a target agent, a channel, a codec by
/// name), kept for the first app that uses the sink: agents, channels and
/// codecs are never removed from an app. Another app using the same sink
/// looks it up each time.
struct PerApp<T>(OnceLock<(u64, T)>);

impl<T> Default for PerApp<T> {
    fn default() -> Self {
        PerApp(OnceLock::new())
    }
}

impl<T: Clone> PerApp<T> {
    fn get<'a>(&'a self, ctx: &Context, look_up: impl FnOnce() -> Result<T>) -> Result<Cow<'a, T>> {
        if let Some((instance, found)) = self.0.get() {
            if *instance == ctx.instance {
                return Ok(Cow::Borrowed(found));
            }
        }
        let found = look_up()?;
        let _ = self.0.set((ctx.instance, found.clone()));
        Ok(Cow::Owned(found))
    }
}

/// A codec a topic states (looked up in the app's codecs once), else
/// `default`.
fn stated_or<'a>(
    stated: &'a Option<CodecRef>,
    resolved: &'a PerApp<CodecRef>,
    ctx: &Context,
    default: &'a CodecRef,
) -> Result<Cow<'a, CodecRef>> {
    match stated {
        None => Ok(Cow::Borrowed(default)),
        Some(codec) => resolved.get(ctx, || ctx.codec(codec)),
    }
}

pub(crate) fn unknown_channel(name: &str) -> Error {
    Error::config(format!(
        "the app has no channel `{name}` (a channel exists once an agent reads it or `App::channel` made it)"
    ))
}

/// Hand a produced value to a channel: converted to the channel's type
/// through serde, waiting for room up to the app's `ask_timeout`.
fn send_to_channel<R: Value>(
    ctx: &Context,
    inbox: Arc<Inbox>,
    value: &R,
    key: Option<bytes::Bytes>,
    trace: Option<&EventTrace>,
) -> SinkSend {
    let payload = match inbox.value_type().convert(value) {
        Ok(p) => p,
        Err(e) => return SinkSend::Now(Err(e)),
    };
    let wait = ctx.config.ask_timeout;
    let mut headers = Vec::new();
    if let Some(trace) = trace {
        trace.inject(&mut headers);
    }
    SinkSend::Later(
        async move {
            inbox
                .push(payload, key, headers, None, wait)
                .await
                .map(|_| None)
        }
        .boxed(),
    )
}

/// A destination for the values an agent produces.
///
/// Agent and topic sinks give each record a key: the key of the event the
/// value was produced for (or the one given to
/// [`Yield::send_keyed`](crate::Yield::send_keyed)), unless
/// [`key_by`](Sink::key_by) computes another from the value. Callbacks get
/// the value only.
pub struct Sink<R> {
    kind: SinkKind<R>,
    key_by: Option<KeyFn<R>>,
}

/// Computes a record's key from a value, encoded with the producing agent's
/// key codec.
type KeyFn<R> = Arc<dyn Fn(&R, &CodecRef) -> Result<bytes::Bytes> + Send + Sync>;

enum SinkKind<R> {
    Agent(String),
    Topic(Topic),
    Channel(String),
    Callback(CallFn<R>),
}

/// [`SinkKind`] with the topic name ready to share with every record.
enum ErasedKind<R> {
    /// The agent's name, its codec and route once looked up.
    Agent(String, PerApp<(CodecRef, AgentRoute)>),
    /// The topic name, the topic's value codec if it has one, and that
    /// codec looked up.
    Topic(Arc<str>, Option<CodecRef>, PerApp<CodecRef>),
    Channel(String, PerApp<Arc<Inbox>>),
    Callback(CallFn<R>),
}

impl<R> Clone for Sink<R> {
    fn clone(&self) -> Self {
        let kind = match &self.kind {
            SinkKind::Agent(a) => SinkKind::Agent(a.clone()),
            SinkKind::Topic(t) => SinkKind::Topic(t.clone()),
            SinkKind::Channel(c) => SinkKind::Channel(c.clone()),
            SinkKind::Callback(f) => SinkKind::Callback(f.clone()),
        };
        Sink {
            kind,
            key_by: self.key_by.clone(),
        }
    }
}

impl<R> fmt::Debug for Sink<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SinkKind::Agent(a) => write!(f, "Sink::agent({a:?})"),
            SinkKind::Topic(t) => write!(f, "Sink::topic({:?})", t.name()),
            SinkKind::Channel(c) => write!(f, "Sink::channel({c:?})"),
            SinkKind::Callback(_) => f.write_str("Sink::callback(..)"),
        }
    }
}

impl<R: Value> Sink<R> {
    /// Send each value to another agent (by name), like `agent.send(value)`.
    pub fn agent(name: impl Into<String>) -> Self {
        Sink {
            kind: SinkKind::Agent(name.into()),
            key_by: None,
        }
    }

    /// Produce each value to a topic (a name or a [`Topic`]), encoded with
    /// the topic's value codec, else the app's (JSON by default). The app
    /// creates a [`Topic`] with its settings when it starts.
    pub fn topic(topic: impl Into<Topic>) -> Self {
        Sink {
            kind: SinkKind::Topic(topic.into()),
            key_by: None,
        }
    }

    /// Hand each value to the in-memory channel `name` (see
    /// [`Channel`](crate::Channel)), converted to the channel's type
    /// through serde; a full channel makes the agent wait for room, up to
    /// the app's `ask_timeout`. The channel must exist when the app starts.
    pub fn channel(name: impl Into<String>) -> Self {
        Sink {
            kind: SinkKind::Channel(name.into()),
            key_by: None,
        }
    }

    /// Call a function with each value. Accepted forms: `Fn(&R)`,
    /// `Fn(&R) -> Result<(), E>`, and async `Fn(R) -> impl Future<Output = ()>`
    /// or `Result<(), E>` (the async forms need `R: Clone`).
    pub fn callback<M, F: SinkFn<R, M>>(f: F) -> Self {
        let f = Arc::new(f);
        Sink {
            kind: SinkKind::Callback(Arc::new(move |v: &R| f.call(v))),
            key_by: None,
        }
    }

    /// Key each record with `key(value)` instead of the source event's key,
    /// encoded with the key codec of the sink's [`Topic`] if it has one,
    /// else the producing agent's (raw by default: a
    /// `String` or bytes): `Sink::agent("totals").key_by(|o: &Order|
    /// o.customer.clone())` repartitions by customer. An error for a
    /// callback sink, which makes no record.
    pub fn key_by<K, F>(mut self, key: F) -> Self
    where
        K: serde::Serialize,
        F: Fn(&R) -> K + Send + Sync + 'static,
    {
        self.key_by = Some(Arc::new(move |value: &R, codec: &CodecRef| {
            codec.encode_bytes(&key(value))
        }));
        self
    }

    /// The name of the sink's destination, for `info()` and the CLI.
    pub fn describe(&self) -> String {
        match &self.kind {
            SinkKind::Agent(a) => format!("@{a}"),
            SinkKind::Topic(t) => t.name().to_string(),
            SinkKind::Channel(c) => format!("channel:{c}"),
            SinkKind::Callback(_) => "<callback>".to_string(),
        }
    }

    pub(crate) fn erase(self) -> ErasedSink {
        let label = self.describe();
        let key = match &self.kind {
            SinkKind::Agent(a) => Some(format!("agent:{a}")),
            SinkKind::Topic(t) => Some(format!("topic:{}", t.name())),
            SinkKind::Channel(c) => Some(format!("channel:{c}")),
            SinkKind::Callback(_) => None,
        };
        let target = match &self.kind {
            SinkKind::Agent(a) => Some(SinkTarget::Agent(a.clone())),
            SinkKind::Channel(c) => Some(SinkTarget::Channel(c.clone())),
            _ => None,
        };
        let keyed_callback = self.key_by.is_some() && matches!(self.kind, SinkKind::Callback(_));
        let key_by = self.key_by;
        let topic = match &self.kind {
            SinkKind::Topic(t) => Some(t.clone()),
            _ => None,
        };
        let topic_key_codec = topic.as_ref().and_then(Topic::key_serializer).cloned();
        let key_codec = PerApp::default();
        let kind = match self.kind {
            SinkKind::Topic(t) => ErasedKind::Topic(
                t.name().into(),
                t.value_serializer().cloned(),
                PerApp::default(),
            ),
            SinkKind::Agent(a) => ErasedKind::Agent(a, PerApp::default()),
            SinkKind::Channel(c) => ErasedKind::Channel(c, PerApp::default()),
            SinkKind::Callback(f) => ErasedKind::Callback(f),
        };
        let send: ErasedSendFn = Arc::new(move |ctx: &Context, out: SinkInput<'_>| {
            let Some(value) = out.value.downcast_ref::<R>() else {
                return SinkSend::Now(Err(Error::config(
                    "sink received a value of the wrong type",
                )));
            };
            let key = match &key_by {
                Some(key_by) => match stated_or(&topic_key_codec, &key_codec, ctx, out.key_codec)
                    .and_then(|codec| key_by(value, &codec))
                {
                    Ok(key) => Some(key),
                    Err(e) => return SinkSend::Now(Err(e)),
                },
                None => out.key.cloned(),
            };
            let encoded = match &kind {
                ErasedKind::Agent(name, target) => match target.get(ctx, || ctx.agent_target(name))
                {
                    Ok(found) => match &*found {
                        (codec, AgentRoute::Topic(topic)) => codec
                            .encode_bytes(value)
                            .map(|bytes| (bytes, topic.clone())),
                        (_, AgentRoute::Channel(inbox)) => {
                            return send_to_channel(ctx, inbox.clone(), value, key, out.trace)
                        }
                    },
                    Err(e) => Err(e),
                },
                ErasedKind::Channel(name, target) => {
                    let found = target.get(ctx, || {
                        ctx.find_channel(name).ok_or_else(|| unknown_channel(name))
                    });
                    return match found {
                        Ok(inbox) => {
                            send_to_channel(ctx, inbox.into_owned(), value, key, out.trace)
                        }
                        Err(e) => SinkSend::Now(Err(e)),
                    };
                }
                ErasedKind::Topic(topic, stated, resolved) => {
                    stated_or(stated, resolved, ctx, &ctx.config.value_codec)
                        .and_then(|codec| codec.encode_bytes(value))
                        .map(|bytes| (bytes, topic.clone()))
                }
                ErasedKind::Callback(f) => {
                    return match f(value) {
                        SinkCall::Done(r) => SinkSend::Now(r.map(|()| None)),
                        SinkCall::Pending(fut) => {
                            SinkSend::Later(fut.map(|r| r.map(|()| None)).boxed())
                        }
                    }
                }
            };
            match encoded {
                Ok((bytes, topic)) => {
                    let mut record = ProducerRecord::new(topic, bytes);
                    record.key = key;
                    if let Some(trace) = out.trace {
                        trace.inject(&mut record.headers);
                    }
                    ctx.producer.queue(record, out.group)
                }
                Err(e) => SinkSend::Now(Err(e)),
            }
        });
        ErasedSink {
            type_id: TypeId::of::<R>(),
            type_name: std::any::type_name::<R>(),
            span: format!("sink {label}").into(),
            label,
            key,
            target,
            topic,
            keyed_callback,
            send,
        }
    }
}

/// What a sink sends to by name, checked when the app starts.
#[derive(Clone, Debug)]
pub(crate) enum SinkTarget {
    Agent(String),
    Channel(String),
}

/// One value an agent produced, as its sinks get it.
#[derive(Clone, Copy)]
pub(crate) struct SinkInput<'a> {
    pub(crate) value: &'a (dyn Any + Send + Sync),
    /// The records' key unless the sink computes one: the source event's,
    /// or the one the agent gave.
    pub(crate) key: Option<&'a bytes::Bytes>,
    /// The producing agent's key codec (for `key_by`).
    pub(crate) key_codec: &'a CodecRef,
    /// The partition and offset of the event the value answers, if any.
    pub(crate) source: Option<(i32, i64)>,
    /// The trace context of that event, for the records made (`None`
    /// when no event is current, or the sinks make no record).
    pub(crate) trace: Option<&'a EventTrace>,
    /// Where the transport reports the records' deliveries, if it can.
    pub(crate) group: &'a GroupSlot,
}

/// Sends one value; topic and agent sinks return the delivery of the
/// record they queued.
type ErasedSendFn = Arc<dyn Fn(&Context, SinkInput<'_>) -> SinkSend + Send + Sync>;

/// A sink with its value type erased, as stored by an agent.
#[derive(Clone)]
pub(crate) struct ErasedSink {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    pub(crate) label: String,
    /// The actor's traceback entry while sending waits.
    span: await_tree::Span,
    /// Identity for de-duplication (`add_sink` ignores a sink already present).
    pub(crate) key: Option<String>,
    /// The agent or channel the sink sends to, checked when the app starts.
    pub(crate) target: Option<SinkTarget>,
    /// The topic a topic sink produces to, created when the app starts.
    pub(crate) topic: Option<Topic>,
    /// A callback with `key_by`: refused when added (it makes no record).
    keyed_callback: bool,
    send: ErasedSendFn,
}

impl ErasedSink {
    /// A sink built from a type-erased function (used by the test harness).
    pub(crate) fn from_fn(
        label: &str,
        type_id: TypeId,
        type_name: &'static str,
        f: impl Fn(&(dyn Any + Send + Sync), Option<(i32, i64)>) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        ErasedSink {
            type_id,
            type_name,
            span: format!("sink {label}").into(),
            label: label.to_string(),
            key: None,
            target: None,
            topic: None,
            keyed_callback: false,
            send: Arc::new(move |_ctx: &Context, out: SinkInput<'_>| {
                SinkSend::Now(f(out.value, out.source).map(|()| None))
            }),
        }
    }

    /// An error if this is a callback given `key_by` (it makes no record).
    pub(crate) fn check_key_by(&self, agent: &str) -> Result<()> {
        if self.keyed_callback {
            return Err(Error::config(format!(
                "agent `{agent}`: sink {} is a callback, which makes no record to key (key_by)",
                self.label
            )));
        }
        Ok(())
    }

    /// The traceback entry of a send that waits.
    pub(crate) fn span(&self) -> await_tree::Span {
        self.span.clone()
    }

    pub(crate) fn send(&self, ctx: &Context, out: SinkInput<'_>) -> SinkSend {
        (self.send)(ctx, out)
    }
}

impl fmt::Debug for ErasedSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// Functions usable as sink callbacks; see [`Sink::callback`].
pub trait SinkFn<R, M>: Send + Sync + 'static {
    /// Call the function with one value.
    fn call(&self, value: &R) -> SinkCall;
}

/// Marker: `Fn(&R)`.
#[derive(Debug)]
pub enum SyncUnit {}
/// Marker: `Fn(&R) -> Result<(), E>`.
#[derive(Debug)]
pub enum SyncResult {}
/// Marker: `Fn(R) -> impl Future<Output = ()>`.
#[derive(Debug)]
pub enum AsyncUnit {}
/// Marker: `Fn(R) -> impl Future<Output = Result<(), E>>`.
#[derive(Debug)]
pub enum AsyncResult {}

impl<R, F> SinkFn<R, SyncUnit> for F
where
    F: Fn(&R) + Send + Sync + 'static,
{
    fn call(&self, value: &R) -> SinkCall {
        self(value);
        SinkCall::Done(Ok(()))
    }
}

impl<R, F, E> SinkFn<R, (SyncResult, E)> for F
where
    F: Fn(&R) -> std::result::Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError>,
{
    fn call(&self, value: &R) -> SinkCall {
        SinkCall::Done(self(value).map_err(Error::user))
    }
}

impl<R, F, Fut> SinkFn<R, (AsyncUnit, Fut)> for F
where
    R: Clone,
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn call(&self, value: &R) -> SinkCall {
        SinkCall::Pending(self(value.clone()).map(Ok).boxed())
    }
}

impl<R, F, Fut, E> SinkFn<R, (AsyncResult, Fut, E)> for F
where
    R: Clone,
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn call(&self, value: &R) -> SinkCall {
        SinkCall::Pending(self(value.clone()).map(|r| r.map_err(Error::user)).boxed())
    }
}
