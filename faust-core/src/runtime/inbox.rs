//! Channel inboxes: how values sent through an in-memory channel reach the
//! queues of the agents reading it, without a broker.
//!
//! A value travels as itself ([`Payload`]) in a message of its own, with
//! the channel's name as topic, partition 0 and the channel's next sequence
//! number as offset; nothing of it is ever committed. Every reader gets each
//! value: the first the value sent, the others a copy made through serde
//! (values need not be `Clone`).

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::codec::{CodecRef, Value};
use crate::error::{Error, Result};
use crate::record::{now_millis, Headers, Record, RecordMetadata};
use crate::runtime::acks::{Lease, Message, MessageRef, PartitionAcks, Payload};
use crate::runtime::queue::Queue;
use crate::sync::RwLock;

/// The type of a channel's values, with what the untyped paths need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ValueType {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    /// A copy of a value of this type (for the second and later readers).
    copy: fn(&(dyn Any + Send)) -> Result<Payload>,
    /// A value of this type from JSON (sends of values of another type).
    from_json: fn(serde_json::Value) -> Result<Payload>,
    /// A value of this type decoded from bytes (sends of raw bytes).
    from_bytes: fn(&CodecRef, &[u8]) -> Result<Payload>,
}

impl ValueType {
    pub(crate) fn of<T: Value>() -> Self {
        Self {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            copy: |value| {
                let value = value
                    .downcast_ref::<T>()
                    .ok_or_else(|| Error::config("a channel value of the wrong type"))?;
                let json = serde_json::to_value(value).map_err(Error::json_encode)?;
                Ok(Box::new(serde_json::from_value::<T>(json)?))
            },
            from_json: |json| Ok(Box::new(serde_json::from_value::<T>(json)?)),
            from_bytes: |codec, bytes| Ok(Box::new(codec.decode::<T>(bytes)?)),
        }
    }

    /// A value of this type decoded from `bytes` with `codec`.
    pub(crate) fn decode(&self, codec: &CodecRef, bytes: &[u8]) -> Result<Payload> {
        (self.from_bytes)(codec, bytes)
    }

    /// A value of this type made from any serde value (through JSON).
    pub(crate) fn convert<V: serde::Serialize + ?Sized>(&self, value: &V) -> Result<Payload> {
        let json = serde_json::to_value(value).map_err(Error::json_encode)?;
        (self.from_json)(json)
    }
}

/// One agent reading a channel, and its queue while it runs.
struct Reader {
    agent: Arc<str>,
    queue: Option<Queue>,
}

/// See the [module documentation](self).
pub(crate) struct Inbox {
    name: Arc<str>,
    value_type: ValueType,
    readers: RwLock<Vec<Reader>>,
    next_offset: AtomicI64,
    /// Never committed: the readers' acks only end their leases.
    acks: Arc<PartitionAcks>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inbox({})", self.name)
    }
}

impl Inbox {
    pub(crate) fn new(name: &str, value_type: ValueType) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            value_type,
            readers: RwLock::new(Vec::new()),
            next_offset: AtomicI64::new(0),
            acks: PartitionAcks::new(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn value_type(&self) -> &ValueType {
        &self.value_type
    }

    /// Whether the channel carries values of type `T`.
    pub(crate) fn carries(&self, type_id: TypeId) -> bool {
        self.value_type.type_id == type_id
    }

    /// An error unless values of `value_type` fit this channel.
    pub(crate) fn check_type(&self, value_type: &ValueType) -> Result<()> {
        if self.carries(value_type.type_id) {
            return Ok(());
        }
        Err(Error::config(format!(
            "channel `{}` carries `{}`, not `{}`",
            self.name, self.value_type.type_name, value_type.type_name
        )))
    }

    /// `agent` reads this channel (from when it starts).
    pub(crate) fn add_reader(&self, agent: &str) {
        let mut readers = self.readers.write();
        if !readers.iter().any(|r| &*r.agent == agent) {
            readers.push(Reader {
                agent: agent.into(),
                queue: None,
            });
        }
    }

    /// The agents reading this channel.
    pub(crate) fn readers(&self) -> Vec<String> {
        self.readers
            .read()
            .iter()
            .map(|r| r.agent.to_string())
            .collect()
    }

    /// `agent` started: its values go to `queue`.
    pub(crate) fn attach(&self, agent: &str, queue: Queue) {
        if let Some(r) = self.readers.write().iter_mut().find(|r| &*r.agent == agent) {
            r.queue = Some(queue);
        }
    }

    /// `agent` stopped: the values in its queue are dropped with it.
    pub(crate) fn detach(&self, agent: &str) {
        if let Some(r) = self.readers.write().iter_mut().find(|r| &*r.agent == agent) {
            r.queue = None;
        }
    }

    /// Hand `payload` (of the channel's type) to every reader, waiting up to
    /// `wait` for room in each reader's queue. An error, sending nothing,
    /// if the channel has no reader or one of them is not running.
    pub(crate) async fn push(
        &self,
        payload: Payload,
        key: Option<Bytes>,
        headers: Headers,
        timestamp: Option<i64>,
        wait: Duration,
    ) -> Result<RecordMetadata> {
        let queues = self.running_queues()?;
        let offset = self.next_offset.fetch_add(1, Ordering::Relaxed);
        let timestamp = timestamp.unwrap_or_else(now_millis);
        let record = Record {
            topic: self.name.clone(),
            partition: 0,
            offset,
            timestamp,
            key,
            value: None,
            headers,
        };
        let batch: Arc<[Message]> =
            Arc::from(vec![Message::new(record, self.acks.clone(), queues.len())]);
        // Copies first, so a failing copy sends to no reader.
        let copies = (1..queues.len())
            .map(|_| (self.value_type.copy)(&*payload))
            .collect::<Result<Vec<_>>>()?;
        let payloads = std::iter::once(payload).chain(copies);
        let deadline = tokio::time::Instant::now() + wait;
        for ((agent, queue), payload) in queues.into_iter().zip(payloads) {
            let lease = Lease::with_payload(MessageRef::new(batch.clone(), 0), payload);
            match tokio::time::timeout_at(deadline, queue.push(lease)).await {
                Ok(Ok(())) => {}
                Ok(Err(_closed)) => {
                    return Err(Error::Stopped(format!(
                        "channel `{}`: its reader agent `{agent}`",
                        self.name
                    )))
                }
                Err(_) => {
                    return Err(Error::Timeout {
                        what: format!(
                            "sending to channel `{}` (the queue of agent `{agent}` is full)",
                            self.name
                        ),
                        after: wait,
                    })
                }
            }
        }
        Ok(RecordMetadata {
            topic: self.name.clone(),
            partition: 0,
            offset,
            timestamp,
        })
    }

    fn running_queues(&self) -> Result<Vec<(Arc<str>, Queue)>> {
        let readers = self.readers.read();
        if readers.is_empty() {
            return Err(Error::config(format!(
                "channel `{}` has no agent reading it: values sent to it would be lost",
                self.name
            )));
        }
        readers
            .iter()
            .map(|r| match &r.queue {
                Some(q) => Ok((r.agent.clone(), q.clone())),
                // A channel keeps no values for an agent that is not running.
                None => Err(Error::Stopped(format!(
                    "channel `{}`: its reader agent `{}`",
                    self.name, r.agent
                ))),
            })
            .collect()
    }
}
