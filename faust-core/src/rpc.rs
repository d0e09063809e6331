//! Agent RPC: `send` with a reply address, `ask`, `ask_nowait`, `map`,
//! `kvmap`, `join` and `kvjoin`, in Faust's wire format.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::agent::Agent;
use crate::error::{Error, Result};
use crate::record::{Headers, ProducerRecord, RecordMetadata};
use crate::replies::{BarrierState, ReplyPromise, ReplyTuple};
use crate::wire::{self, ReqRepRequest};

/// Options of [`Agent::send_with`] and the `ask` family.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SendOptions {
    /// Raw key of the record (already encoded).
    pub key: Option<Bytes>,
    /// Explicit partition.
    pub partition: Option<i32>,
    /// Timestamp in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Extra headers.
    pub headers: Headers,
    /// Reply topic (default for `ask`: the app's reply topic).
    pub reply_to: Option<String>,
    /// Correlation id (default: a new uuid4).
    pub correlation_id: Option<String>,
    /// Deadline of `ask` (default: the app's `ask_timeout`).
    pub timeout: Option<Duration>,
}

impl SendOptions {
    /// Options with a key encoded by the agent's key codec later; see
    /// [`Agent::key_bytes`]. Here the key is given raw.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Send to this partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Reply to this topic.
    pub fn reply_to(mut self, topic: impl Into<String>) -> Self {
        self.reply_to = Some(topic.into());
        self
    }
    /// Use this correlation id.
    pub fn correlation_id(mut self, cid: impl Into<String>) -> Self {
        self.correlation_id = Some(cid.into());
        self
    }
    /// Wait at most this long for the reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Removes a correlation id from the reply consumer when dropped, so an
/// asker that gives up (timeout, cancellation) frees its entry.
struct Registration<'a> {
    agent: &'a Agent,
    cids: Vec<String>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(app) = self.agent.try_app() {
            for cid in &self.cids {
                app.replies().remove(cid);
            }
        }
    }
}

impl Agent {
    /// Encode a key with the agent's key codec.
    pub fn key_bytes<K: Serialize + ?Sized>(&self, key: &K) -> Result<Bytes> {
        self.key_codec().encode_bytes(key)
    }

    /// Build the request record: the reply address goes in headers or in a
    /// `ReqRepRequest` envelope, per the agent's `use_reply_headers`.
    pub(crate) fn request_record<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: &SendOptions,
        reply_to: &str,
        correlation_id: &str,
    ) -> Result<ProducerRecord> {
        let mut headers = opts.headers.clone();
        let bytes = if self.use_reply_headers() {
            headers.extend(wire::request_headers(reply_to, correlation_id));
            self.value_codec().encode(value)?
        } else {
            let json = serde_json::to_value(value).map_err(Error::json_encode)?;
            let model = wire::is_record(&json);
            ReqRepRequest::encode_parts(value, reply_to, correlation_id, model)?
        };
        Ok(ProducerRecord {
            topic: self.topic_name().clone(),
            partition: opts.partition,
            key: opts.key.clone(),
            value: Some(bytes.into()),
            headers,
            timestamp: opts.timestamp,
        })
    }

    /// The record `send_with` produces: a request when `opts.reply_to` is
    /// set (correlation id: `opts.correlation_id` or a new uuid4), else the
    /// plain encoded value.
    pub(crate) fn record_for<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: &SendOptions,
    ) -> Result<ProducerRecord> {
        match &opts.reply_to {
            Some(reply_to) => {
                let cid = opts
                    .correlation_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                self.request_record(value, opts, reply_to, &cid)
            }
            None => Ok(ProducerRecord {
                topic: self.topic_name().clone(),
                partition: opts.partition,
                key: opts.key.clone(),
                value: Some(self.value_codec().encode_bytes(value)?),
                headers: opts.headers.clone(),
                timestamp: opts.timestamp,
            }),
        }
    }

    /// Send a value with options. With `reply_to` set, the record is a
    /// request whose reply goes to that topic (nobody waits for it here).
    pub async fn send_with<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: SendOptions,
    ) -> Result<RecordMetadata> {
        let record = self.record_for(value, &opts)?;
        self.app().send_record(record).await
    }

    /// Send a request and return the promise of its reply. The promise is
    /// registered with the reply consumer *before* the request is sent.
    pub async fn ask_nowait<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: SendOptions,
    ) -> Result<ReplyPromise> {
        let app = self.app();
        let reply_to = opts
            .reply_to
            .clone()
            .unwrap_or_else(|| app.config().reply_to.clone());
        let cid = opts
            .correlation_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let record = self.request_record(value, &opts, &reply_to, &cid)?;
        app.replies().start(&app, &reply_to).await?;
        let promise = ReplyPromise::new(reply_to, cid.clone())?;
        app.replies().add(cid.clone(), Arc::new(promise.clone()));
        if let Err(e) = app.send_record(record).await {
            app.replies().remove(&cid);
            return Err(e);
        }
        Ok(promise)
    }

    /// Ask the agent to process `value` and wait for its reply (up to the
    /// app's `ask_timeout`).
    pub async fn ask<V, R>(&self, value: &V) -> Result<R>
    where
        V: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.ask_with(value, SendOptions::default()).await
    }

    /// [`ask`](Self::ask) with options (key, partition, headers, timeout...).
    pub async fn ask_with<V, R>(&self, value: &V, opts: SendOptions) -> Result<R>
    where
        V: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let started = std::time::Instant::now();
        let timeout = opts.timeout.unwrap_or(self.app().config().ask_timeout);
        let promise = self.ask_nowait(value, opts).await?;
        let guard = Registration {
            agent: self,
            cids: vec![promise.correlation_id().to_string()],
        };
        let reply = tokio::time::timeout(timeout, promise.wait())
            .await
            .map_err(|_| self.timeout_error(timeout))?;
        drop(guard);
        if reply.is_ok() {
            self.stats().record_ask(started.elapsed());
        }
        self.decode_reply(reply)
    }

    fn timeout_error(&self, after: Duration) -> Error {
        Error::Timeout {
            what: format!("ask to agent `{}`", self.name()),
            after,
        }
    }

    fn decode_reply<R: DeserializeOwned>(&self, reply: Result<serde_json::Value>) -> Result<R> {
        match reply {
            Ok(value) => serde_json::from_value(value).map_err(|e| Error::DecodeValue {
                codec: "json",
                reason: format!("reply of agent `{}`: {e}", self.name()),
            }),
            Err(Error::Remote { message, .. }) => Err(Error::Remote {
                agent: self.name().to_string(),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    async fn send_all<K, V, I>(
        &self,
        items: I,
        barrier: &BarrierState,
        reg: &mut Registration<'_>,
    ) -> Result<Vec<String>>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (Option<K>, V)>,
    {
        let app = self.app();
        let reply_to = barrier.reply_to().to_string();
        app.replies().start(&app, &reply_to).await?;
        let waiter: Arc<BarrierState> = Arc::new(barrier.clone());
        let mut order = Vec::new();
        let mut deliveries = Vec::new();
        for (key, value) in items {
            let cid = uuid::Uuid::new_v4().to_string();
            let mut opts = SendOptions::default();
            if let Some(k) = &key {
                opts.key = Some(self.key_bytes(k)?);
            }
            let record = self.request_record(&value, &opts, &reply_to, &cid)?;
            barrier.add_correlation_id(cid.clone())?;
            app.replies().add(cid.clone(), waiter.clone());
            reg.cids.push(cid.clone());
            deliveries.extend(app.enqueue_record(record).await?);
            order.push(cid);
        }
        barrier.finalize();
        futures::future::try_join_all(deliveries).await?;
        Ok(order)
    }

    /// RPC map over (key, value) pairs: results as they arrive.
    pub fn kvmap<'a, K, V, R, I>(&'a self, items: I) -> impl Stream<Item = Result<R>> + 'a
    where
        K: Serialize + 'a,
        V: Serialize + 'a,
        R: DeserializeOwned + 'a,
        I: IntoIterator<Item = (Option<K>, V)> + 'a,
    {
        async_stream_results(self, items)
    }

    /// RPC map: ask the agent for every value; results as they arrive.
    pub fn map<'a, V, R, I>(&'a self, values: I) -> impl Stream<Item = Result<R>> + 'a
    where
        V: Serialize + 'a,
        R: DeserializeOwned + 'a,
        I: IntoIterator<Item = V> + 'a,
    {
        self.kvmap(values.into_iter().map(|v| (None::<()>, v)))
    }

    /// RPC join over (key, value) pairs: every result, in input order.
    pub async fn kvjoin<K, V, R, I>(&self, items: I) -> Result<Vec<R>>
    where
        K: Serialize,
        V: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = (Option<K>, V)>,
    {
        let app = self.app();
        let timeout = app.config().ask_timeout;
        let barrier = BarrierState::new(app.config().reply_to.clone());
        let mut reg = Registration {
            agent: self,
            cids: Vec::new(),
        };
        let order = self.send_all(items, &barrier, &mut reg).await?;
        tokio::time::timeout(timeout, barrier.wait())
            .await
            .map_err(|_| Error::Timeout {
                what: format!(
                    "join on agent `{}` ({} of {} replies)",
                    self.name(),
                    barrier.fulfilled(),
                    barrier.total()
                ),
                after: timeout,
            })?;
        let mut by_cid: std::collections::HashMap<String, ReplyTuple> = barrier
            .drain()
            .into_iter()
            .map(|t| (t.correlation_id.clone(), t))
            .collect();
        order
            .iter()
            .map(|cid| {
                let t = by_cid
                    .remove(cid)
                    .ok_or_else(|| Error::Rpc(format!("missing reply for {cid}")))?;
                self.decode_reply(t.into_result())
            })
            .collect()
    }

    /// RPC join: ask the agent for every value; every result, in input order.
    pub async fn join<V, R, I>(&self, values: I) -> Result<Vec<R>>
    where
        V: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = V>,
    {
        self.kvjoin(values.into_iter().map(|v| (None::<()>, v)))
            .await
    }
}

enum MapState<'a, I> {
    Init(I),
    Running(BarrierState, Registration<'a>, Duration),
    Done,
}

fn async_stream_results<'a, K, V, R, I>(
    agent: &'a Agent,
    items: I,
) -> impl Stream<Item = Result<R>> + 'a
where
    K: Serialize + 'a,
    V: Serialize + 'a,
    R: DeserializeOwned + 'a,
    I: IntoIterator<Item = (Option<K>, V)> + 'a,
{
    futures::stream::unfold(MapState::Init(items), move |st| async move {
        match st {
            MapState::Init(items) => {
                let app = agent.app();
                let timeout = app.config().ask_timeout;
                let barrier = BarrierState::new(app.config().reply_to.clone());
                let mut reg = Registration {
                    agent,
                    cids: Vec::new(),
                };
                match agent.send_all(items, &barrier, &mut reg).await {
                    Ok(_) => next_result(agent, barrier, reg, timeout).await,
                    Err(e) => Some((Err(e), MapState::Done)),
                }
            }
            MapState::Running(barrier, reg, timeout) => {
                next_result(agent, barrier, reg, timeout).await
            }
            MapState::Done => None,
        }
    })
}

async fn next_result<'a, R: DeserializeOwned, I>(
    agent: &'a Agent,
    barrier: BarrierState,
    reg: Registration<'a>,
    timeout: Duration,
) -> Option<(Result<R>, MapState<'a, I>)> {
    match tokio::time::timeout(timeout, barrier.next()).await {
        Ok(Some(t)) => Some((
            agent.decode_reply(t.into_result()),
            MapState::Running(barrier, reg, timeout),
        )),
        Ok(None) => None,
        Err(_) => Some((Err(agent.timeout_error(timeout)), MapState::Done)),
    }
}
