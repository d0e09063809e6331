//! Schemas: the key and value types of a topic or an agent, with their
//! codecs (Faust's `Schema`, and its `key_type=` / `value_type=` /
//! `key_serializer=` / `value_serializer=` arguments).
//!
//! A schema is typed: `Schema::<String, Order>::new()` says keys are
//! `String`s and values `Order`s. On a [`Topic`](crate::Topic) it gives the
//! topic's codecs and checks that every agent reading the topic takes that
//! value type (when the agent is added; with `#[agent(schema = ...)]` when
//! the code compiles). A record that does not match is a decode error with
//! its topic, partition and offset, routed like any other (`on_error`, the
//! dead-letter topic, skipped).

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;

use crate::codec::{CodecRef, Value};

/// The key type `K` and value type `V` of a topic or an agent, and
/// optionally their codecs.
///
/// ```
/// # use faust_core as faust;
/// use faust::{Schema, Topic};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Order { id: u32 }
///
/// let schema = Schema::<String, Order>::new().value_codec("json").key_codec("raw");
/// let orders = Topic::new("orders").schema(schema);
/// assert_eq!(orders.value_type(), Some(std::any::type_name::<Order>()));
/// ```
pub struct Schema<K, V> {
    pub(crate) erased: ErasedSchema,
    _types: PhantomData<fn() -> (K, V)>,
}

/// A schema with its types erased, as topics and agents keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ErasedSchema {
    pub(crate) key_type: TypeName,
    pub(crate) value_type: TypeName,
    pub(crate) key_codec: Option<CodecRef>,
    pub(crate) value_codec: Option<CodecRef>,
}

/// A type's id and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TypeName {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
}

impl TypeName {
    pub(crate) fn of<T: 'static>() -> Self {
        Self {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }
}

impl<K: Value, V: Value> Schema<K, V> {
    /// A schema of keys `K` and values `V`, with the codecs of whatever
    /// uses it (the agent's, the topic's or the app's).
    pub fn new() -> Self {
        Self {
            erased: ErasedSchema {
                key_type: TypeName::of::<K>(),
                value_type: TypeName::of::<V>(),
                key_codec: None,
                value_codec: None,
            },
            _types: PhantomData,
        }
    }

    /// Encode keys with this codec (Faust's `key_serializer`): a codec
    /// value or a name, looked up in the app's codecs.
    pub fn key_codec(mut self, codec: impl Into<CodecRef>) -> Self {
        self.erased.key_codec = Some(codec.into());
        self
    }

    /// Encode values with this codec (Faust's `value_serializer`).
    pub fn value_codec(mut self, codec: impl Into<CodecRef>) -> Self {
        self.erased.value_codec = Some(codec.into());
        self
    }

    /// The name of the key type.
    pub fn key_type(&self) -> &'static str {
        self.erased.key_type.name
    }

    /// The name of the value type.
    pub fn value_type(&self) -> &'static str {
        self.erased.value_type.name
    }
}

impl<K: Value, V: Value> Default for Schema<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Clone for Schema<K, V> {
    fn clone(&self) -> Self {
        Self {
            erased: self.erased.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for Schema<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("key_type", &self.erased.key_type.name)
            .field("value_type", &self.erased.value_type.name)
            .field("key_codec", &self.erased.key_codec)
            .field("value_codec", &self.erased.value_codec)
            .finish()
    }
}
