//! Agent RPC of one request: `send` with a reply address, `ask`,
//! `ask_nowait`, in Faust's wire format (`map` and `join`: `scatter.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::CodecRef;
use crate::error::{Error, Result};
use crate::metrics::app::AppCounters;
use crate::record::{ProducerRecord, RecordMetadata};
use crate::rpc::deadline::{Deadline, PRODUCING, WAITING};
use crate::rpc::wire::{self, ReqRepRequest};
use crate::rpc::{ReplyPromise, ReplyWaiter, SendOptions};
use crate::sync::Mutex;
use crate::transport::producer::Latency;

use super::Agent;

/// What a request becomes: a record for a topic agent, the value itself
/// for a channel agent.
pub(super) enum Send<'a> {
    Record(ProducerRecord),
    Channel(
        &'a crate::runtime::inbox::Inbox,
        crate::runtime::acks::Payload,
    ),
}

/// Takes a waiter's correlation ids out of the reply consumer when dropped,
/// so an asker that gives up (timeout, cancellation) frees its entries and
/// leaves other waiters of the same ids waiting.
pub(super) struct Registration<'a> {
    agent: &'a Agent,
    waiter: Arc<dyn ReplyWaiter>,
    cids: Mutex<Vec<String>>,
}

impl<'a> Registration<'a> {
    pub(super) fn new(agent: &'a Agent, waiter: Arc<dyn ReplyWaiter>) -> Self {
        Self {
            agent,
            waiter,
            cids: Mutex::new(Vec::new()),
        }
    }

    /// Wait for the reply to `cid`.
    pub(super) fn add(&self, cid: &str) {
        self.agent
            .context()
            .replies
            .add(cid.to_string(), self.waiter.clone());
        self.cids.lock().push(cid.to_string());
    }

    /// Keep waiting after this guard is gone (the caller holds a promise).
    fn disarm(&self) {
        self.cids.lock().clear();
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let replies = &self.agent.context().replies;
        for cid in self.cids.lock().iter() {
            replies.remove_waiter(cid, &self.waiter);
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
        super::trace::inject_for_send(&mut headers, true);
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
            None => {
                let mut headers = opts.headers.clone();
                super::trace::inject_for_send(&mut headers, false);
                Ok(ProducerRecord {
                    topic: self.topic_name()?.clone(),
                    partition: opts.partition,
                    key: opts.key.clone(),
                    value: Some(self.send_codec(opts)?.encode_bytes(value)?),
                    headers,
                    timestamp: opts.timestamp,
                })
            }
        }
    }

    /// Send a value with options. With `reply_to` set, the record is a
    /// request whose reply goes to that topic (nobody waits for it here).
    pub async fn send_with<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: SendOptions,
    ) -> Result<RecordMetadata> {
        if opts.on_delivery.is_none() {
            return self.send_now(value, &opts).await;
        }
        let sent = self.send_now(value, &opts).await;
        opts.delivered(&sent);
        sent
    }

    /// Produce `value` (or hand it to the agent's channel) and wait until
    /// the broker (or the channel) has it.
    async fn send_now<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: &SendOptions,
    ) -> Result<RecordMetadata> {
        if let Some(inbox) = self.inbox() {
            let payload = inbox.value_type().convert(value)?;
            return self.send_to_channel(inbox, payload, opts).await;
        }
        let record = self.record_for(value, opts)?;
        self.context().producer.send(record).await
    }

    /// Send a request and return the promise of its reply. The promise is
    /// registered with the reply consumer *before* the request is sent.
    ///
    /// Starting the reply consumer and producing the request end within the
    /// ask deadline (`opts.timeout`, default the app's `ask_timeout`), or
    /// the call fails with [`Error::Timeout`]. The promise itself has no
    /// deadline: [`ask_with`](Self::ask_with) waits for it within the same one.
    ///
    /// Faust's `force` has nothing to choose here: the request is always
    /// produced at once (Faust's `force=True`). Sent from inside an agent,
    /// the event being processed stays uncommitted until the request is
    /// delivered, which is what Faust's publish-on-commit buffering aims at.
    pub async fn ask_nowait<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: SendOptions,
    ) -> Result<ReplyPromise> {
        let deadline = Deadline::new("ask to", self.name(), self.ask_timeout(&opts));
        let (promise, registration) = self.request(value, opts, &deadline).await?;
        registration.disarm();
        Ok(promise)
    }

    /// The ask deadline of a call with these options.
    pub(super) fn ask_timeout(&self, opts: &SendOptions) -> Duration {
        opts.timeout.unwrap_or(self.context().config.ask_timeout)
    }

    /// Register a promise and produce the request, within `deadline`. On
    /// any failure the promise is unregistered; the registration returned
    /// unregisters it when dropped.
    async fn request<V: Serialize + ?Sized>(
        &self,
        value: &V,
        opts: SendOptions,
        deadline: &Deadline<'_>,
    ) -> Result<(ReplyPromise, Registration<'_>)> {
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
        let registration = Registration::new(self, Arc::new(promise.clone()));
        registration.add(&cid);
        deadline.step(PRODUCING);
        let sent = match send {
            Send::Channel(inbox, payload) => {
                let mut channel_opts = opts.clone();
                channel_opts.reply_to = Some(reply_to);
                channel_opts.correlation_id = Some(cid);
                deadline
                    .run(self.send_to_channel(inbox, payload, &channel_opts))
                    .await
            }
            Send::Record(record) => {
                deadline
                    .run(ctx.producer.send_with(record, Latency::Immediate))
                    .await
            }
        };
        opts.delivered(&sent);
        sent?;
        Ok((promise, registration))
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
        let counters = &self.context().counters;
        let asked = async {
            let (promise, registration) = self.request(value, opts, &deadline).await?;
            AppCounters::add(&counters.asks_sent);
            deadline.step(WAITING);
            let reply = deadline.run(async { Ok(promise.wait().await) }).await?;
            drop(registration);
            Ok::<_, Error>(reply)
        };
        let reply = match asked.await {
            Ok(reply) => reply,
            Err(e) => {
                counters.ask_ended(None, matches!(e, Error::Timeout { .. }));
                return Err(e);
            }
        };
        let elapsed = deadline.started.elapsed();
        counters.ask_ended(Some(elapsed), false);
        if reply.is_ok() {
            self.stats().record_ask(elapsed);
        }
        self.decode_reply(reply)
    }

    pub(super) fn decode_reply<R: DeserializeOwned>(
        &self,
        reply: Result<serde_json::Value>,
    ) -> Result<R> {
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
}
