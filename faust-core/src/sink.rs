//! Sinks: where the values an agent produces go besides the reply.
//!
//! Every value produced for an event is handed to each sink in order, and
//! each sink is awaited before the next one and before the event is acked
//! (back-pressure, as in Faust).

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::app::App;
use crate::codec::Value;
use crate::error::{Error, Result};
use crate::record::ProducerRecord;
use crate::transport::DeliveryFuture;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type CallFn<R> = Arc<dyn Fn(&R) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A destination for the values an agent produces.
pub struct Sink<R> {
    kind: SinkKind<R>,
}

enum SinkKind<R> {
    Agent(String),
    Topic(String),
    Callback(CallFn<R>),
}

/// [`SinkKind`] with the topic name ready to share with every record.
enum ErasedKind<R> {
    Agent(String),
    Topic(Arc<str>),
    Callback(CallFn<R>),
}

impl<R> Clone for Sink<R> {
    fn clone(&self) -> Self {
        let kind = match &self.kind {
            SinkKind::Agent(a) => SinkKind::Agent(a.clone()),
            SinkKind::Topic(t) => SinkKind::Topic(t.clone()),
            SinkKind::Callback(f) => SinkKind::Callback(f.clone()),
        };
        Sink { kind }
    }
}

impl<R> fmt::Debug for Sink<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SinkKind::Agent(a) => write!(f, "Sink::agent({a:?})"),
            SinkKind::Topic(t) => write!(f, "Sink::topic({t:?})"),
            SinkKind::Callback(_) => f.write_str("Sink::callback(..)"),
        }
    }
}

impl<R: Value> Sink<R> {
    /// Send each value to another agent (by name), like `agent.send(value)`.
    pub fn agent(name: impl Into<String>) -> Self {
        Sink {
            kind: SinkKind::Agent(name.into()),
        }
    }

    /// Produce each value to a topic, encoded as JSON.
    pub fn topic(name: impl Into<String>) -> Self {
        Sink {
            kind: SinkKind::Topic(name.into()),
        }
    }

    /// Call a function with each value. Accepted forms: `Fn(&R)`,
    /// `Fn(&R) -> Result<(), E>`, and async `Fn(R) -> impl Future<Output = ()>`
    /// or `Result<(), E>` (the async forms need `R: Clone`).
    pub fn callback<M, F: SinkFn<R, M>>(f: F) -> Self {
        let f = Arc::new(f);
        Sink {
            kind: SinkKind::Callback(Arc::new(move |v: &R| f.call(v))),
        }
    }

    /// The name of the sink's destination, for `info()` and the CLI.
    pub fn describe(&self) -> String {
        match &self.kind {
            SinkKind::Agent(a) => format!("@{a}"),
            SinkKind::Topic(t) => t.clone(),
            SinkKind::Callback(_) => "<callback>".to_string(),
        }
    }

    pub(crate) fn erase(self) -> ErasedSink {
        let label = self.describe();
        let key = match &self.kind {
            SinkKind::Agent(a) => Some(format!("agent:{a}")),
            SinkKind::Topic(t) => Some(format!("topic:{t}")),
            SinkKind::Callback(_) => None,
        };
        let kind = match self.kind {
            SinkKind::Topic(t) => ErasedKind::Topic(t.into()),
            SinkKind::Agent(a) => ErasedKind::Agent(a),
            SinkKind::Callback(f) => ErasedKind::Callback(f),
        };
        let send: ErasedSendFn = Arc::new(move |app: &App, value: &(dyn Any + Send + Sync)| {
            let Some(value) = value.downcast_ref::<R>() else {
                return futures::future::ready(Err(Error::config(
                    "sink received a value of the wrong type",
                )))
                .boxed();
            };
            match &kind {
                ErasedKind::Agent(name) => {
                    let app = app.clone();
                    let encoded = app.agent(name).and_then(|a| {
                        Ok((a.value_codec().encode_bytes(value)?, a.topic_name().clone()))
                    });
                    async move {
                        let (bytes, topic) = encoded?;
                        let record = ProducerRecord::new(topic, bytes);
                        Ok(Some(app.enqueue_record(record).await?))
                    }
                    .boxed()
                }
                ErasedKind::Topic(topic) => {
                    let app = app.clone();
                    let topic = topic.clone();
                    let encoded = app.config().value_codec.encode_bytes(value);
                    async move {
                        let record = ProducerRecord::new(topic, encoded?);
                        Ok(Some(app.enqueue_record(record).await?))
                    }
                    .boxed()
                }
                ErasedKind::Callback(f) => f(value).map(|r| r.map(|()| None)).boxed(),
            }
        });
        ErasedSink {
            type_id: TypeId::of::<R>(),
            type_name: std::any::type_name::<R>(),
            label,
            key,
            send,
        }
    }
}

/// Sends one value; topic and agent sinks return the delivery of the
/// record they queued.
type ErasedSendFn = Arc<
    dyn Fn(&App, &(dyn Any + Send + Sync)) -> BoxFuture<'static, Result<Option<DeliveryFuture>>>
        + Send
        + Sync,
>;

/// A sink with its value type erased, as stored by an agent.
#[derive(Clone)]
pub(crate) struct ErasedSink {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    pub(crate) label: String,
    /// Identity for de-duplication (`add_sink` ignores a sink already present).
    pub(crate) key: Option<String>,
    send: ErasedSendFn,
}

impl ErasedSink {
    /// A sink built from a type-erased function (used by the test harness).
    pub(crate) fn from_fn(
        label: &str,
        type_id: TypeId,
        type_name: &'static str,
        f: impl Fn(&(dyn Any + Send + Sync)) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        ErasedSink {
            type_id,
            type_name,
            label: label.to_string(),
            key: None,
            send: Arc::new(move |_app: &App, v: &(dyn Any + Send + Sync)| {
                futures::future::ready(f(v).map(|()| None)).boxed()
            }),
        }
    }

    pub(crate) fn send(
        &self,
        app: &App,
        value: &(dyn Any + Send + Sync),
    ) -> BoxFuture<'static, Result<Option<DeliveryFuture>>> {
        (self.send)(app, value)
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
    fn call(&self, value: &R) -> BoxFuture<'static, Result<()>>;
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
    fn call(&self, value: &R) -> BoxFuture<'static, Result<()>> {
        self(value);
        futures::future::ready(Ok(())).boxed()
    }
}

impl<R, F, E> SinkFn<R, (SyncResult, E)> for F
where
    F: Fn(&R) -> std::result::Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError>,
{
    fn call(&self, value: &R) -> BoxFuture<'static, Result<()>> {
        futures::future::ready(self(value).map_err(|e| Error::User(e.into()))).boxed()
    }
}

impl<R, F, Fut> SinkFn<R, (AsyncUnit, Fut)> for F
where
    R: Clone,
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn call(&self, value: &R) -> BoxFuture<'static, Result<()>> {
        self(value.clone()).map(Ok).boxed()
    }
}

impl<R, F, Fut, E> SinkFn<R, (AsyncResult, Fut, E)> for F
where
    R: Clone,
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn call(&self, value: &R) -> BoxFuture<'static, Result<()>> {
        self(value.clone())
            .map(|r| r.map_err(|e| Error::User(e.into())))
            .boxed()
    }
}
