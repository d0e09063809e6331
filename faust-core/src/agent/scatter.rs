//! Agent RPC of many requests under one barrier: `map`, `kvmap`, `join`,
//! `kvjoin` and the partial join, from iterables or async streams.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures::future::Either;
use futures::{Stream, StreamExt as _};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::rpc::deadline::{Deadline, PRODUCING, WAITING};
use crate::rpc::{BarrierState, ReplyTuple, SendOptions};
use crate::transport::producer::{GroupSlot, Latency};

use super::ask::{Registration, Send};
use super::Agent;

/// The results of [`Agent::join_partial_with`]: one slot per input, in
/// input order, `None` where no reply came before the deadline.
pub struct JoinResults<R> {
    replies: Vec<Option<Result<R>>>,
}

impl<R> JoinResults<R> {
    /// Whether every input was answered.
    pub fn is_complete(&self) -> bool {
        self.replies.iter().all(Option::is_some)
    }

    /// The positions (in input order) of the inputs that got no reply.
    pub fn missing(&self) -> Vec<usize> {
        self.replies
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.is_none().then_some(i))
            .collect()
    }

    /// Number of inputs sent.
    pub fn len(&self) -> usize {
        self.replies.len()
    }

    /// Whether there were no inputs.
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// One slot per input: its reply (a value or the agent's error), or
    /// `None` where none came.
    pub fn into_vec(self) -> Vec<Option<Result<R>>> {
        self.replies
    }
}

impl<R: fmt::Debug> fmt::Debug for JoinResults<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinResults")
            .field("replies", &self.replies)
            .finish()
    }
}

/// One call of many requests: its barrier, its deadline and the
/// registration of its correlation ids.
struct Scatter<'a> {
    agent: &'a Agent,
    opts: SendOptions,
    barrier: BarrierState,
    deadline: Deadline<'a>,
    registration: Registration<'a>,
}

impl<'a> Scatter<'a> {
    fn new(agent: &'a Agent, call: &'static str, opts: SendOptions) -> Self {
        let reply_to = opts
            .reply_to
            .clone()
            .unwrap_or_else(|| agent.context().config.reply_to.clone());
        let barrier = BarrierState::new(reply_to);
        let deadline = Deadline::new(call, agent.name(), agent.ask_timeout(&opts));
        let registration = Registration::new(agent, Arc::new(barrier.clone()));
        Self {
            agent,
            opts,
            barrier,
            deadline,
            registration,
        }
    }

    /// Produce a request per input (each input's key, else the options'),
    /// then finalize the barrier and wait for the deliveries, all within
    /// the deadline. Returns the correlation ids in input order.
    async fn send_all<K, V, S>(&self, items: S) -> Result<Vec<String>>
    where
        K: Serialize,
        V: Serialize,
        S: Stream<Item = (Option<K>, V)>,
    {
        self.deadline
            .run(async {
                let agent = self.agent;
                let ctx = agent.context();
                let reply_to = self.barrier.reply_to().to_string();
                ctx.replies.start(&reply_to).await?;
                self.deadline.step(PRODUCING);
                let mut order = Vec::new();
                let mut deliveries = Vec::new();
                // Requests whose deliveries the transport reports: counted,
                // with no future each.
                let group = GroupSlot::new();
                // One trace context for every request of the call.
                let mut base = self.opts.clone();
                super::trace::inject_for_send(&mut base.headers, true);
                let mut items = std::pin::pin!(items);
                while let Some((key, value)) = items.next().await {
                    let cid = uuid::Uuid::new_v4().to_string();
                    // Options are copied only for a request with a key of
                    // its own.
                    let opts = match &key {
                        Some(k) => Cow::Owned(SendOptions {
                            key: Some(agent.key_bytes(k)?),
                            ..base.clone()
                        }),
                        None => Cow::Borrowed(&base),
                    };
                    let send = match agent.inbox() {
                        Some(inbox) => Send::Channel(inbox, inbox.value_type().convert(&value)?),
                        None => Send::Record(agent.request_record(&value, &opts, &reply_to, &cid)?),
                    };
                    self.barrier.add_correlation_id(cid.clone())?;
                    self.registration.add(&cid);
                    match send {
                        Send::Channel(inbox, payload) => {
                            let mut opts = opts.into_owned();
                            opts.reply_to = Some(reply_to.clone());
                            opts.correlation_id = Some(cid.clone());
                            let sent = agent.send_to_channel(inbox, payload, &opts).await;
                            opts.delivered(&sent);
                            sent?;
                        }
                        Send::Record(record) if self.opts.on_delivery.is_none() => {
                            deliveries.extend(
                                ctx.producer
                                    .enqueue_reported(record, Latency::Immediate, &group)
                                    .await?
                                    .map(Either::Left),
                            );
                        }
                        Send::Record(record) => {
                            // The callback hears of each record, delivered at
                            // once or later.
                            match ctx
                                .producer
                                .enqueue_keeping_metadata(record, Latency::Immediate)
                                .await?
                            {
                                Either::Left(meta) => self.opts.delivered(&Ok(meta)),
                                Either::Right(d) => {
                                    let opts = &self.opts;
                                    deliveries.push(Either::Right(async move {
                                        let delivered = d.await;
                                        opts.delivered(&delivered);
                                        delivered
                                    }));
                                }
                            }
                        }
                    }
                    order.push(cid);
                }
                self.barrier.finalize();
                futures::future::try_join_all(deliveries).await?;
                if let Some(group) = group.into_inner() {
                    group.close_and_wait().await?;
                }
                Ok(order)
            })
            .await
    }

    /// Wait for every reply, within the deadline.
    async fn wait_all(&self) -> Result<()> {
        self.deadline.step(WAITING);
        self.deadline
            .run(async {
                self.barrier.wait().await;
                Ok(())
            })
            .await
            .map_err(|e| match e {
                Error::Timeout { what, after } => Error::Timeout {
                    what: format!(
                        "{what} ({} of {} replies)",
                        self.barrier.fulfilled(),
                        self.barrier.total()
                    ),
                    after,
                },
                other => other,
            })
    }

    /// The replies received so far, one slot per correlation id of
    /// `order`, in its order (`None`: no reply came).
    fn received(&self, order: &[String]) -> Vec<Option<ReplyTuple>> {
        let slot: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, cid)| (cid.as_str(), i))
            .collect();
        let mut replies = vec![None; order.len()];
        for reply in self.barrier.drain() {
            if let Some(&i) = slot.get(reply.correlation_id.as_str()) {
                replies[i] = Some(reply);
            }
        }
        replies
    }
}

/// Pairs without keys.
fn unkeyed<V>(values: impl Stream<Item = V>) -> impl Stream<Item = (Option<()>, V)> {
    values.map(|v| (None, v))
}

impl Agent {
    /// RPC map: ask the agent for every value; results as they arrive.
    /// See [`map_with`](Self::map_with).
    pub fn map<'a, V, R, I>(&'a self, values: I) -> impl Stream<Item = Result<R>> + 'a
    where
        V: Serialize + 'a,
        R: DeserializeOwned + 'a,
        I: IntoIterator<Item = V> + 'a,
    {
        self.map_with(futures::stream::iter(values), SendOptions::default())
    }

    /// RPC map over an async stream of values, with options: `key` (every
    /// request's), `reply_to`, `timeout` (the deadline of the whole call:
    /// starting the reply consumer, reading and sending the inputs, and
    /// every reply), headers, partition, codec, `on_delivery`.
    ///
    /// Results come in arrival order while requests are still being sent.
    /// An agent error answers its request with `Err` and the map goes on;
    /// the deadline, or a request that cannot be sent, ends the stream with
    /// that error. From an iterable: `futures::stream::iter(values)`.
    pub fn map_with<'a, V, R, S>(
        &'a self,
        values: S,
        opts: SendOptions,
    ) -> impl Stream<Item = Result<R>> + 'a
    where
        V: Serialize + 'a,
        R: DeserializeOwned + 'a,
        S: Stream<Item = V> + 'a,
    {
        self.kvmap_with(unkeyed(values), opts)
    }

    /// RPC map over `(key, value)` pairs (a `None` key: the options' key):
    /// results as they arrive.
    pub fn kvmap<'a, K, V, R, I>(&'a self, items: I) -> impl Stream<Item = Result<R>> + 'a
    where
        K: Serialize + 'a,
        V: Serialize + 'a,
        R: DeserializeOwned + 'a,
        I: IntoIterator<Item = (Option<K>, V)> + 'a,
    {
        self.kvmap_with(futures::stream::iter(items), SendOptions::default())
    }

    /// [`kvmap`](Self::kvmap) over an async stream, with the options of
    /// [`map_with`](Self::map_with).
    pub fn kvmap_with<'a, K, V, R, S>(
        &'a self,
        items: S,
        opts: SendOptions,
    ) -> impl Stream<Item = Result<R>> + 'a
    where
        K: Serialize + 'a,
        V: Serialize + 'a,
        R: DeserializeOwned + 'a,
        S: Stream<Item = (Option<K>, V)> + 'a,
    {
        async_stream::stream! {
            let call = Scatter::new(self, "map on", opts);
            let mut sending = std::pin::pin!(call.send_all(items));
            let mut sent = false;
            loop {
                tokio::select! {
                    biased;
                    done = &mut sending, if !sent => {
                        sent = true;
                        if let Err(e) = done {
                            yield Err(e);
                            return;
                        }
                        call.deadline.step(WAITING);
                    }
                    next = call.deadline.run(async { Ok(call.barrier.next().await) }) => match next {
                        Ok(Some(reply)) => yield self.decode_reply(reply.into_result()),
                        Ok(None) => return,
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    },
                }
            }
        }
    }

    /// RPC join: ask the agent for every value; every result, in input
    /// order. See [`join_with`](Self::join_with).
    pub async fn join<V, R, I>(&self, values: I) -> Result<Vec<R>>
    where
        V: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = V>,
    {
        self.join_with(futures::stream::iter(values), SendOptions::default())
            .await
    }

    /// RPC join over an async stream of values, with the options of
    /// [`map_with`](Self::map_with): every result, in input order. The
    /// first agent error fails the join; the deadline fails it with the
    /// count of replies received. [`join_partial_with`](Self::join_partial_with)
    /// returns what arrived instead.
    pub async fn join_with<V, R, S>(&self, values: S, opts: SendOptions) -> Result<Vec<R>>
    where
        V: Serialize,
        R: DeserializeOwned,
        S: Stream<Item = V>,
    {
        self.kvjoin_with(unkeyed(values), opts).await
    }

    /// RPC join over `(key, value)` pairs: every result, in input order.
    pub async fn kvjoin<K, V, R, I>(&self, items: I) -> Result<Vec<R>>
    where
        K: Serialize,
        V: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = (Option<K>, V)>,
    {
        self.kvjoin_with(futures::stream::iter(items), SendOptions::default())
            .await
    }

    /// [`kvjoin`](Self::kvjoin) over an async stream, with options.
    pub async fn kvjoin_with<K, V, R, S>(&self, items: S, opts: SendOptions) -> Result<Vec<R>>
    where
        K: Serialize,
        V: Serialize,
        R: DeserializeOwned,
        S: Stream<Item = (Option<K>, V)>,
    {
        let call = Scatter::new(self, "join on", opts);
        let order = call.send_all(items).await?;
        call.wait_all().await?;
        let received = call.received(&order);
        order
            .iter()
            .zip(received)
            .map(|(cid, reply)| {
                let reply = reply.ok_or_else(|| Error::Rpc(format!("missing reply for {cid}")))?;
                self.decode_reply(reply.into_result())
            })
            .collect()
    }

    /// A join that returns, at its deadline, the replies that arrived and
    /// which inputs got none (scatter-gather with partial results), instead
    /// of failing the whole call. Each slot holds its own reply: a value or
    /// that request's error. Only a failure to start the reply consumer or
    /// to send the requests (also their deadline passing) fails the call.
    ///
    /// ```
    /// # use faust_core as faust;
    /// # async fn demo(agent: faust::Agent) -> faust::Result<()> {
    /// use std::time::Duration;
    /// let opts = faust::SendOptions::default().timeout(Duration::from_millis(200));
    /// let got = agent
    ///     .join_partial_with::<_, i64, _>(futures::stream::iter([1, 2, 3]), opts)
    ///     .await?;
    /// if !got.is_complete() {
    ///     tracing::warn!(missing = ?got.missing(), "some shards did not answer");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn join_partial_with<V, R, S>(
        &self,
        values: S,
        opts: SendOptions,
    ) -> Result<JoinResults<R>>
    where
        V: Serialize,
        R: DeserializeOwned,
        S: Stream<Item = V>,
    {
        self.kvjoin_partial_with(unkeyed(values), opts).await
    }

    /// [`join_partial_with`](Self::join_partial_with) over `(key, value)` pairs.
    pub async fn kvjoin_partial_with<K, V, R, S>(
        &self,
        items: S,
        opts: SendOptions,
    ) -> Result<JoinResults<R>>
    where
        K: Serialize,
        V: Serialize,
        R: DeserializeOwned,
        S: Stream<Item = (Option<K>, V)>,
    {
        let call = Scatter::new(self, "join on", opts);
        let order = call.send_all(items).await?;
        match call.wait_all().await {
            Ok(()) | Err(Error::Timeout { .. }) => {}
            Err(other) => return Err(other),
        }
        let replies = call
            .received(&order)
            .into_iter()
            .map(|reply| reply.map(|reply| self.decode_reply(reply.into_result())))
            .collect();
        Ok(JoinResults { replies })
    }
}
