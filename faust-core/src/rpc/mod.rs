//! Everything of request/reply below the agent API (`Agent::ask` and its
//! family live in the agent folder): the wire format, the answering side,
//! promises for one reply, barriers for many, the consumer that reads reply
//! topics and fulfils them, and the deadline of a call.

mod barrier;
pub(crate) mod deadline;
mod promise;
pub(crate) mod reply_consumer;
pub(crate) mod server;
pub mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::codec::CodecRef;
use crate::error::Result;
use crate::record::{Headers, RecordMetadata};

pub use barrier::{BarrierState, ReplyTuple};

pub use promise::{ReplyPromise, ReplyWaiter};
pub use reply_consumer::ReplyConsumer;

/// Options of [`Agent::send_with`](crate::Agent::send_with) and the `ask` family.
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
    /// Encode the value with this codec instead of the agent's (Faust's
    /// `value_serializer`); a `ReqRepRequest` envelope is JSON whatever it
    /// is. A name is looked up in the app's codecs when the value is sent.
    pub value_codec: Option<CodecRef>,
    /// Encode the key with this codec instead of the agent's, where the
    /// send encodes a key ([`Agent::send_keyed_with`](crate::Agent::send_keyed_with);
    /// Faust's `key_serializer`).
    pub key_codec: Option<CodecRef>,
    /// Called once the broker has the record, or the send failed (Faust's
    /// `callback`): for each record the call produces (each request of a
    /// `map` or `join`).
    pub on_delivery: Option<OnDelivery>,
}

/// What a delivery callback is called with.
type DeliveryFn = dyn Fn(&Result<RecordMetadata>) + Send + Sync;

/// A delivery callback of [`SendOptions::on_delivery`].
#[derive(Clone)]
pub struct OnDelivery(Arc<DeliveryFn>);

impl OnDelivery {
    /// Tell the callback how the send ended.
    pub(crate) fn call(&self, outcome: &Result<RecordMetadata>) {
        (self.0)(outcome);
    }
}

impl fmt::Debug for OnDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnDelivery(..)")
    }
}

impl SendOptions {
    /// Send with this key, as raw bytes: nothing encodes it. To encode a
    /// key with the agent's key codec, pass [`Agent::key_bytes`](crate::Agent::key_bytes)'s result.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Send to this partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// Give the record this timestamp (milliseconds since the Unix epoch)
    /// instead of the time it is produced.
    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
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
    /// Encode the value with this codec instead of the agent's: a codec
    /// value or a name ([`CodecRef`]).
    pub fn value_codec(mut self, codec: impl Into<CodecRef>) -> Self {
        self.value_codec = Some(codec.into());
        self
    }
    /// Encode the key given to
    /// [`Agent::send_keyed_with`](crate::Agent::send_keyed_with) with this
    /// codec instead of the agent's (Faust's `key_serializer`); a key set
    /// with [`key`](Self::key) is bytes already.
    pub fn key_codec(mut self, codec: impl Into<CodecRef>) -> Self {
        self.key_codec = Some(codec.into());
        self
    }

    /// Call `callback` with the outcome of each record this call produces:
    /// its metadata once the broker has it, or the error the send failed
    /// with. It runs on the producer's side of the call, before the call
    /// returns; keep it short.
    pub fn on_delivery(
        mut self,
        callback: impl Fn(&Result<RecordMetadata>) + Send + Sync + 'static,
    ) -> Self {
        self.on_delivery = Some(OnDelivery(Arc::new(callback)));
        self
    }

    /// Tell the delivery callback, if any, how a send ended.
    pub(crate) fn delivered(&self, outcome: &Result<RecordMetadata>) {
        if let Some(callback) = &self.on_delivery {
            callback.call(outcome);
        }
    }

    /// The headers of a value sent through a channel: the extra headers,
    /// plus the reply address when `reply_to` is set (a new correlation id
    /// unless one is given).
    pub(crate) fn channel_headers(&self) -> Headers {
        let mut headers = self.headers.clone();
        if let Some(reply_to) = &self.reply_to {
            let cid = self
                .correlation_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            headers.extend(wire::request_headers(reply_to, &cid));
        }
        headers
    }
}
