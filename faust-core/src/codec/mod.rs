//! Codecs: how keys and values become bytes and back (Faust's codec
//! registry).
//!
//! Values are any serde type. Built in: `json` ([`Json`], the default and
//! what Python Faust reads and writes), `bincode` ([`Bincode`], compact and
//! fast between Rust apps) and `raw` ([`Raw`], bytes passed through, for
//! types that serialize as bytes or a string), plus the transform `binary`
//! ([`Binary`], base64). Names chain as in Faust: `"json|binary"` is JSON
//! then base64; `"binary"` alone is raw bytes then base64.
//!
//! A [`CodecRef`] is a chosen codec: what agents, sends and the app's
//! settings hold. It converts from a name (`"json|binary"`, or a name
//! registered with [`AppBuilder::codec`](crate::AppBuilder::codec), looked
//! up when the agent is added, the app built or the value sent) and from a
//! codec value (`Json`, or one of your own: [`Codec`], [`Transform`]).

mod builtin;
mod custom;
mod raw;
mod registry;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The crate of the erased serde traits [`Codec`] takes (its version, so
/// that codecs need not depend on it).
pub use erased_serde;

pub use self::builtin::{Binary, Bincode, Json, Raw};
pub use self::custom::{BoxError, Codec, Transform, ValueSlot};
pub(crate) use self::registry::Registry;

use self::raw::{RawError, RawSerializer};

/// A value type an agent can consume or produce.
pub trait Value: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// The names of the built-in codecs; `#[agent(codec = "...")]` accepts
/// these, and chains of one of them (or none) with built-in transforms.
pub const BUILTIN_CODECS: [&str; 3] = ["json", "bincode", "raw"];

/// The names of the built-in transforms.
pub const BUILTIN_TRANSFORMS: [&str; 1] = ["binary"];

/// A chosen codec, maybe with transforms: what an agent, a send or the app
/// encodes with. Cheap to clone (built-ins are a tag, others a shared
/// pointer).
///
/// Made from a name or a codec value (`impl Into<CodecRef>`):
///
/// ```
/// # use faust_core as faust;
/// use faust::codec::{CodecRef, Json};
///
/// let json: CodecRef = Json.into();
/// assert_eq!(json, "json");
/// let b64: CodecRef = "json|binary".into();
/// assert_eq!(b64.encode(&[1])?, b"WzFd"); // base64 of `[1]`
/// assert_eq!(b64.decode::<Vec<u8>>(b"WzFd")?, [1]);
/// # Ok::<_, faust::Error>(())
/// ```
///
/// A name that is not built in is looked up in the app's registry
/// ([`AppBuilder::codec`](crate::AppBuilder::codec)) when it is used:
/// [`App::add_agent`](crate::App::add_agent), [`AppBuilder::build`](crate::AppBuilder::build)
/// or the send; an unknown name is an [`Error::Config`] naming the known
/// ones. [`App::codec`](crate::App::codec) looks one up. Two codecs are
/// equal when their names are.
#[derive(Clone)]
pub struct CodecRef(Inner);

#[derive(Clone)]
enum Inner {
    Json,
    Bincode,
    Raw,
    /// A codec of the user's, or any codec with transforms.
    Chain(Arc<Chain>),
    /// A name not looked up yet (neither built in nor a chain of built-ins).
    Named(Arc<str>),
}

struct Chain {
    name: Arc<str>,
    base: Base,
    transforms: Vec<(Arc<str>, Arc<dyn Transform>)>,
}

/// The codec at the head of a chain.
#[derive(Clone)]
enum Base {
    Json,
    Bincode,
    Raw,
    Custom(Arc<dyn Codec>),
}

impl Base {
    /// The built-in behind a codec value, else the value itself.
    fn of<C: Codec>(codec: C) -> Self {
        let any: &dyn std::any::Any = &codec;
        if any.is::<Json>() {
            Base::Json
        } else if any.is::<Bincode>() {
            Base::Bincode
        } else if any.is::<Raw>() {
            Base::Raw
        } else {
            Base::Custom(Arc::new(codec))
        }
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Base::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Base::Bincode => bincode::serialize(value).map_err(|e| e.to_string()),
            Base::Raw => value.serialize(RawSerializer).map_err(|e| e.0),
            Base::Custom(codec) => codec.encode(&Erase(value)).map_err(|e| e.to_string()),
        }
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Base::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Base::Bincode => bincode::deserialize(bytes).map_err(|e| e.to_string()),
            Base::Raw => {
                T::deserialize(serde::de::value::BytesDeserializer::<RawError>::new(bytes))
                    .map_err(|e| e.0)
            }
            Base::Custom(codec) => {
                let mut value = None;
                let visit: &mut custom::Visit<'_> = &mut |de| {
                    value = Some(erased_serde::deserialize::<T>(de)?);
                    Ok(())
                };
                codec
                    .decode(bytes, ValueSlot::new(visit))
                    .map_err(|e| e.to_string())?;
                value.ok_or_else(|| {
                    "the codec decoded no value (its `decode` must call `out.deserialize`)".into()
                })
            }
        }
    }
}

/// Lends an unsized `Serialize` to the erased codec interface.
struct Erase<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Erase<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl CodecRef {
    /// JSON ([`Json`]).
    pub const JSON: CodecRef = CodecRef(Inner::Json);
    /// bincode ([`Bincode`]).
    pub const BINCODE: CodecRef = CodecRef(Inner::Bincode);
    /// Raw bytes ([`Raw`]).
    pub const RAW: CodecRef = CodecRef(Inner::Raw);

    /// A codec by name, looked up when used, like `CodecRef::from(name)`
    /// (for `#[agent(codec = CodecRef::named("msgpack"))]`, whose string
    /// literals must be built-in names).
    pub fn named(name: &str) -> CodecRef {
        CodecRef::from(name)
    }

    /// The codec's name: `json`, `json|binary`, a registered name, or a
    /// codec value's [`Codec::name`].
    pub fn name(&self) -> &str {
        match &self.0 {
            Inner::Json => "json",
            Inner::Bincode => "bincode",
            Inner::Raw => "raw",
            Inner::Chain(chain) => &chain.name,
            Inner::Named(name) => name,
        }
    }

    /// Whether this is a name still to be looked up in an app's registry.
    pub(crate) fn is_resolved(&self) -> bool {
        !matches!(self.0, Inner::Named(_))
    }

    fn encode_error(&self, reason: String) -> Error {
        Error::Encode {
            codec: self.name().to_string(),
            reason,
        }
    }

    fn decode_error(&self, reason: String) -> Error {
        Error::DecodeValue {
            codec: self.name().to_string(),
            reason,
        }
    }

    fn unresolved(&self) -> String {
        format!(
            "`{}` is not a built-in codec; look a registered one up with `App::codec`",
            self.name()
        )
    }

    /// Encode a value.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let chain = match &self.0 {
            Inner::Json => return Base::Json.encode(value).map_err(|e| self.encode_error(e)),
            Inner::Bincode => {
                return Base::Bincode
                    .encode(value)
                    .map_err(|e| self.encode_error(e))
            }
            Inner::Raw => return Base::Raw.encode(value).map_err(|e| self.encode_error(e)),
            Inner::Named(_) => return Err(self.encode_error(self.unresolved())),
            Inner::Chain(chain) => chain,
        };
        let mut bytes = chain.base.encode(value).map_err(|e| self.encode_error(e))?;
        for (name, transform) in &chain.transforms {
            bytes = transform
                .encode(bytes)
                .map_err(|e| self.encode_error(format!("{name}: {e}")))?;
        }
        Ok(bytes)
    }

    /// Encode a value into [`Bytes`] (what records need).
    ///
    /// Small JSON values are written into a per-thread 4 KiB block that
    /// many values share: one allocation per block, not per value. A value
    /// keeps its block alive, so a value held long holds its block; values
    /// over 512 bytes get an allocation of their own.
    pub fn encode_bytes<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        thread_local! {
            static SLAB: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
        }
        if !matches!(self.0, Inner::Json) {
            return self.encode(value).map(Bytes::from);
        }
        SLAB.with(|slab| {
            // Re-entrant use (a value whose `Serialize` encodes another
            // value) falls back to a fresh buffer.
            let Ok(mut buf) = slab.try_borrow_mut() else {
                return self.encode(value).map(Bytes::from);
            };
            if buf.capacity() - buf.len() < SLAB_VALUE_MAX {
                *buf = BytesMut::with_capacity(SLAB_SIZE);
            }
            if let Err(e) = serde_json::to_writer((&mut *buf).writer(), value) {
                buf.clear();
                return Err(self.encode_error(e.to_string()));
            }
            if buf.len() > SLAB_VALUE_MAX {
                // Large: its own allocation; the block is reused as it was.
                let own = Bytes::copy_from_slice(&buf);
                buf.clear();
                return Ok(own);
            }
            Ok(buf.split().freeze())
        })
    }

    /// Decode a value.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let chain = match &self.0 {
            Inner::Json => return Base::Json.decode(bytes).map_err(|e| self.decode_error(e)),
            Inner::Bincode => {
                return Base::Bincode
                    .decode(bytes)
                    .map_err(|e| self.decode_error(e))
            }
            Inner::Raw => return Base::Raw.decode(bytes).map_err(|e| self.decode_error(e)),
            Inner::Named(_) => return Err(self.decode_error(self.unresolved())),
            Inner::Chain(chain) => chain,
        };
        let mut bytes = Cow::Borrowed(bytes);
        for (name, transform) in chain.transforms.iter().rev() {
            let undone = transform
                .decode(&bytes)
                .map_err(|e| self.decode_error(format!("{name}: {e}")))?;
            bytes = Cow::Owned(undone);
        }
        chain.base.decode(&bytes).map_err(|e| self.decode_error(e))
    }
}

/// Bytes of the per-thread block small encoded values share
/// ([`CodecRef::encode_bytes`]).
const SLAB_SIZE: usize = 4096;

/// Largest encoded value written into a shared block.
const SLAB_VALUE_MAX: usize = 512;

impl Default for CodecRef {
    fn default() -> Self {
        CodecRef::JSON
    }
}

impl std::fmt::Display for CodecRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Debug for CodecRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CodecRef").field(&self.name()).finish()
    }
}

impl PartialEq for CodecRef {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for CodecRef {}

impl std::hash::Hash for CodecRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl PartialEq<str> for CodecRef {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for CodecRef {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// A name: built-ins and chains of them at once, others when used.
impl From<&str> for CodecRef {
    fn from(name: &str) -> Self {
        Registry::builtins()
            .parse(name)
            .unwrap_or_else(|_| CodecRef(Inner::Named(name.trim().into())))
    }
}

/// A name: built-ins and chains of them at once, others when used.
impl From<String> for CodecRef {
    fn from(name: String) -> Self {
        CodecRef::from(name.as_str())
    }
}

/// A codec value: a built-in, or one of your own (named by its
/// [`Codec::name`]).
impl<C: Codec> From<C> for CodecRef {
    fn from(codec: C) -> Self {
        let name: Arc<str> = codec.name().into();
        CodecRef::from_base(name, Base::of(codec))
    }
}

/// Raw bytes, then base64 (Faust's `binary` codec).
impl From<Binary> for CodecRef {
    fn from(_: Binary) -> Self {
        CodecRef::from("binary")
    }
}

impl CodecRef {
    fn from_base(name: Arc<str>, base: Base) -> Self {
        CodecRef(match base {
            Base::Json if &*name == "json" => Inner::Json,
            Base::Bincode if &*name == "bincode" => Inner::Bincode,
            Base::Raw if &*name == "raw" => Inner::Raw,
            base => Inner::Chain(Arc::new(Chain {
                name,
                base,
                transforms: Vec::new(),
            })),
        })
    }
}

/// Built-in names and chains of them only (a registered name needs its
/// app: [`App::codec`](crate::App::codec)).
impl std::str::FromStr for CodecRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Registry::builtins().parse(s)
    }
}
