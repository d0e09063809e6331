//! Agent RPC: `send` with a reply address, `ask`, `ask_nowait`, `map`,
//! `kvmap`, `join` and `kvjoin`, in Faust's wire format.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::CodecRef;
use crate::error::{Error, Result};
use crate::record::{ProducerRecord, RecordMetadata};
use crate::rpc::deadline::{Deadline, PRODUCING, WAITING};
use crate::rpc::wire::{self, ReqRepRequest};
use crate::rpc::{BarrierState, ReplyPromise, ReplyTuple, SendOptions};

use super::Agent;

/// What a request becomes: a record for a topic agent, the value itself
/// for a channel agent.
enum Send<'a> {
    Record(ProducerRecord),
    Channel(
        &'a crate::runtime::inbox::Inbox,
        crate::runtime::acks::Payload,
    ),
}

/// Removes a correlation id from the reply consumer when dropped, so an
/// asker that gives up (timeout, cancellation) frees its entry.
struct Registration<'a> {
    agent: &'a Agent,
    cids: Vec<String>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let replies = &self.agent.context().replies;
        for cid in &self.cids {
            replies.remove(cid);
        }
    }
}

impl Agent {
    /// Encode a key with the agent's key codec.
    pub fn key_bytes<K: Serialize + ?Sized>(&self, key: &K) -> Result<Bytes> {
        self.key_codec().encode_bytes(key)
    }

    /// The value codec of a send: the options', looked up, or the agent's.
    fn send_codec(&self, opts: &SendOptions) -> Result<std::borrow::Cow<'_, CodecRef>> {
        Ok(match &opts.value_codec {
            Some(codec) => std::borrow::Cow::Owned(self.context().codec(codec)?),
            None => std::borrow::Cow::Borrowed(self.value_codec()),
        })
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
            self.send_codec(opts)?.encode(value)?
        } else {
            let json = serde_json::to_value(value).map_err(Error::json_encode)?;
            let model = wire::is_record(&json);
            ReqRepRequest::encode_parts(value, reply_to, correlation_id, model)?
        };
        Ok(ProducerRecord {
            topic: self.topic_name()?.clone(),
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
                topic: self.topic_name()?.clone(),
                partition: opts.partition,
                key: opts.key.clone(),
                value: Some(self.send_codec(opts)?.encode_bytes(value)?),
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
        if let Some(inbox) = self.inbox() {
            let payload = inbox.value_type().convert(value)?;
            return self.send_to_channel(inbox, payload, &opts).await;
        }
        let record = self.record_for(value, &opts)?;
        self.context().producer.send(record).await
    }

    /// Send a request and return the promise of its reply. The promise is
    /// registered with the reply consumer *before* the request is sent.
    ///
    /// Starting the reply consumer and producing the request end within the
    /// ask deadline (`opts.timeout`, default the app's `ask_timeout`), or
    /// the call fails with [`Error::Timeout`]. The promise itself has no
    /// deadline: [`ask_with`](Self::ask_with) waits for it within the same one.
    pub async fn ask_nowait<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: SendOptions,
    ) -> Result<ReplyPromise> {
        let deadline = Deadline::new("ask to", self.name(), self.ask_timeout(&opts));
        let promise = self.request(value, opts, &deadline).await?;
        Ok(promise)
    }

    /// The ask deadline of a call with these options.
    fn ask_timeout(&self, opts: &SendOptions) -> Duration {
        opts.timeout.unwrap_or(self.context().config.ask_timeout)
    }

    /// Register a promise and produce the request, within `deadline`. On
    /// any failure the promise is unregistered.
    async fn request<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: SendOptions,
        deadline: &Deadline<'_>,
    ) -> Result<ReplyPromise> {
        let ctx = self.context();
        let reply_to = opts
            .reply_to
            .clone()
            .unwrap_or_else(|| ctx.config.reply_to.clone());
        let cid = opts
            .correlation_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let send = match self.inbox() {
            Some(inbox) => Send::Channel(inbox, inbox.value_type().convert(value)?),
            None => Send::Record(self.request_record(value, &opts, &reply_to, &cid)?),
        };
        deadline.run(ctx.replies.start(&reply_to)).await?;
        let promise = ReplyPromise::new(reply_to.clone(), cid.clone())?;
        let mut guard = Registration {
            agent: self,
            cids: vec![cid.clone()],
        };
        ctx.replies.add(cid.clone(), Arc::new(promise.clone()));
        deadline.step(PRODUCING);
        match send {
            Send::Channel(inbox, payload) => {
                let mut opts = opts;
                opts.reply_to = Some(reply_to);
                opts.correlation_id = Some(cid);
                deadline
                    .run(self.send_to_channel(inbox, payload, &opts))
                    .await?;
            }
            Send::Record(record) => {
                deadline.run(ctx.producer.send(record)).await?;
            }
        }
        guard.cids.clear();
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
    ///
    /// The whole call (starting the reply consumer, producing the request,
    /// waiting for the reply) ends within `opts.timeout` (default the app's
    /// `ask_timeout`); past it the error is [`Error::Timeout`] with the
    /// step it was in and the time spent.
    pub async fn ask_with<V, R>(&self, value: &V, opts: SendOptions) -> Result<R>
    where
        V: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let deadline = Deadline::new("ask to", self.name(), self.ask_timeout(&opts));
        let promise = self.request(value, opts, &deadline).await?;
        let guard = Registration {
            agent: self,
            cids: vec![promise.correlation_id().to_string()],
        };
        deadline.step(WAITING);
        let reply = deadline.run(async { Ok(promise.wait().await) }).await?;
        drop(guard);
        if reply.is_ok() {
            self.stats().record_ask(deadline.started.elapsed());
        }
        self.decode_reply(reply)
    }

    fn decode_reply<R: DeserializeOwned>(&self, reply: Result<serde_json::Value>) -> Result<R> {
        match reply {
            Ok(value) => serde_json::from_value(value).map_err(|e| Error::DecodeValue {
                codec: "json".into(),
                reason: format!("reply of agent `{}`: {e}", self.name()),
            }),
            Err(Error::Remote { message, .. }) => Err(Error::Remote {
                agent: self.name().to_string(),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    /// Produce a request per item for `barrier`, within `deadline`.
    async fn send_all<K, V, I>(
        &self,
        items: I,
        barrier: &BarrierState,
        reg: &mut Registration<'_>,
        deadline: &Deadline<'_>,
    ) -> Result<Vec<String>>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (Option<K>, V)>,
    {
        deadline
            .run(async {
                let ctx = self.context();
                let reply_to = barrier.reply_to().to_string();
                ctx.replies.start(&reply_to).await?;
                deadline.step(PRODUCING);
                let waiter: Arc<BarrierState> = Arc::new(barrier.clone());
                let mut order = Vec::new();
                let mut deliveries = Vec::new();
                for (key, value) in items {
                    let cid = uuid::Uuid::new_v4().to_string();
                    let mut opts = SendOptions::default();
                    if let Some(k) = &key {
                        opts.key = Some(self.key_bytes(k)?);
                    }
                    let send = match self.inbox() {
                        Some(inbox) => Send::Channel(inbox, inbox.value_type().convert(&value)?),
                        None => Send::Record(self.request_record(&value, &opts, &reply_to, &cid)?),
                    };
                    barrier.add_correlation_id(cid.clone())?;
                    ctx.replies.add(cid.clone(), waiter.clone());
                    reg.cids.push(cid.clone());
                    match send {
                        Send::Channel(inbox, payload) => {
                            opts.reply_to = Some(reply_to.clone());
                            opts.correlation_id = Some(cid.clone());
                            self.send_to_channel(inbox, payload, &opts).await?;
                        }
                        Send::Record(record) => {
                            deliveries.extend(ctx.producer.enqueue(record).await?)
                        }
                    }
                    order.push(cid);
                }
                barrier.finalize();
                futures::future::try_join_all(deliveries).await?;
                Ok(order)
            })
            .await
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
        let cfg = &self.context().config;
        let deadline = Deadline::new("join on", self.name(), cfg.ask_timeout);
        let barrier = BarrierState::new(cfg.reply_to.clone());
        let mut reg = Registration {
            agent: self,
            cids: Vec::new(),
        };
        let order = self.send_all(items, &barrier, &mut reg, &deadline).await?;
        deadline.step(WAITING);
        deadline
            .run(async {
                barrier.wait().await;
                Ok(())
            })
            .await
            .map_err(|e| match e {
                Error::Timeout { what, after } => Error::Timeout {
                    what: format!(
                        "{what} ({} of {} replies)",
                        barrier.fulfilled(),
                        barrier.total()
                    ),
                    after,
                },
                other => other,
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
    Running(BarrierState, Registration<'a>, Deadline<'a>),
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
                let cfg = &agent.context().config;
                let deadline = Deadline::new("map on", agent.name(), cfg.ask_timeout);
                let barrier = BarrierState::new(cfg.reply_to.clone());
                let mut reg = Registration {
                    agent,
                    cids: Vec::new(),
                };
                match agent.send_all(items, &barrier, &mut reg, &deadline).await {
                    Ok(_) => {
                        deadline.step(WAITING);
                        next_result(agent, barrier, reg, deadline).await
                    }
                    Err(e) => Some((Err(e), MapState::Done)),
                }
            }
            MapState::Running(barrier, reg, deadline) => {
                next_result(agent, barrier, reg, deadline).await
            }
            MapState::Done => None,
        }
    })
}

/// The next reply of a map, within the map's deadline.
async fn next_result<'a, R: DeserializeOwned, I>(
    agent: &'a Agent,
    barrier: BarrierState,
    reg: Registration<'a>,
    deadline: Deadline<'a>,
) -> Option<(Result<R>, MapState<'a, I>)> {
    match deadline.run(async { Ok(barrier.next().await) }).await {
        Ok(Some(t)) => Some((
            agent.decode_reply(t.into_result()),
            MapState::Running(barrier, reg, deadline),
        )),
        Ok(None) => None,
        Err(e) => Some((Err(e), MapState::Done)),
    }
}
