//! [`Event`]: one decoded value and the message it came from.

use std::fmt;

use crate::codec::Value;
use crate::error::Result;
use crate::runtime::acks::MessageRef;

/// One event: a decoded value plus the message it came from.
pub struct Event<T> {
    /// The decoded value.
    pub value: T,
    message: MessageRef,
    key_codec: crate::codec::CodecRef,
}

impl<T> Event<T> {
    pub(crate) fn new(value: T, message: MessageRef, key_codec: crate::codec::CodecRef) -> Self {
        Self {
            value,
            message,
            key_codec,
        }
    }

    /// The message: topic, partition, offset, timestamp, raw key and headers.
    pub fn message(&self) -> &MessageRef {
        &self.message
    }

    /// The key decoded with the agent's key codec (raw by default).
    pub fn key<K: Value>(&self) -> Result<Option<K>> {
        self.message
            .key()
            .map(|k| self.key_codec.decode(k))
            .transpose()
    }

    /// Split into the value and the message (the handle keeps its batch
    /// alive; see [`MessageRef`]).
    pub fn into_parts(self) -> (T, MessageRef) {
        (self.value, self.message)
    }
}

impl<T: fmt::Debug> fmt::Debug for Event<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("value", &self.value)
            .field("topic", &self.message.topic())
            .field("partition", &self.message.partition())
            .field("offset", &self.message.offset())
            .finish()
    }
}
