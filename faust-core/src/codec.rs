//! Codecs: how keys and values become bytes and back.
//!
//! Values are any serde type. [`Codec::Json`] is the default and what Python
//! Faust reads and writes; [`Codec::Bincode`] is compact and fast between Rust
//! apps; [`Codec::Raw`] passes bytes through untouched and works for types that
//! serialize as bytes or a string (`String`, `bytes::Bytes`, `serde_bytes`).

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A value type an agent can consume or produce.
pub trait Value: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// How keys or values are encoded on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// JSON (serde_json): readable, and what Python Faust uses.
    #[default]
    Json,
    /// bincode 1.x: compact, Rust-to-Rust only.
    Bincode,
    /// Bytes as they are: the type must serialize as bytes or a string.
    Raw,
}

impl Codec {
    /// Every codec with its name; `#[agent(codec = ...)]` accepts these names.
    pub const ALL: [(&'static str, Codec); 3] = [
        ("json", Codec::Json),
        ("bincode", Codec::Bincode),
        ("raw", Codec::Raw),
    ];

    /// The codec's name: `json`, `bincode` or `raw`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Bincode => "bincode",
            Codec::Raw => "raw",
        }
    }

    /// Parse a codec name (`json`, `bincode`, `raw`).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown codec `{name}`; expected one of: {}",
                    Self::ALL.map(|(n, _)| n).join(", ")
                ))
            })
    }

    /// Encode a value.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>> {
        let enc_err = |reason: String| Error::Encode {
            codec: self.name(),
            reason,
        };
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| enc_err(e.to_string())),
            Codec::Bincode => bincode::serialize(value).map_err(|e| enc_err(e.to_string())),
            Codec::Raw => value
                .serialize(raw::RawSerializer)
                .map_err(|e| enc_err(e.0)),
        }
    }

    /// Encode a value into [`Bytes`] (what records need).
    ///
    /// Small JSON values are written into a per-thread 4 KiB block that
    /// many values share: one allocation per block, not per value. A value
    /// keeps its block alive, so a value held long holds its block; values
    /// over 512 bytes get an allocation of their own.
    pub fn encode_bytes<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes> {
        thread_local! {
            static SLAB: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
        }
        if self != Codec::Json {
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
                return Err(Error::Encode {
                    codec: self.name(),
                    reason: e.to_string(),
                });
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
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        let dec_err = |reason: String| Error::DecodeValue {
            codec: self.name(),
            reason,
        };
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| dec_err(e.to_string())),
            Codec::Bincode => bincode::deserialize(bytes).map_err(|e| dec_err(e.to_string())),
            Codec::Raw => {
                let de = serde::de::value::BytesDeserializer::<raw::RawError>::new(bytes);
                T::deserialize(de).map_err(|e| dec_err(e.0))
            }
        }
    }
}

/// Bytes of the per-thread block small encoded values share
/// ([`Codec::encode_bytes`]).
const SLAB_SIZE: usize = 4096;

/// Largest encoded value written into a shared block.
const SLAB_VALUE_MAX: usize = 512;

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Codec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Codec::from_name(s)
    }
}

mod raw {
    //! A serializer that accepts only bytes and strings.
    use serde::ser::{self, Impossible, Serialize};

    #[derive(Debug)]
    pub(super) struct RawError(pub(super) String);

    impl std::fmt::Display for RawError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for RawError {}
    impl ser::Error for RawError {
        fn custom<T: std::fmt::Display>(msg: T) -> Self {
            RawError(msg.to_string())
        }
    }
    impl serde::de::Error for RawError {
        fn custom<T: std::fmt::Display>(msg: T) -> Self {
            RawError(msg.to_string())
        }
    }

    pub(super) struct RawSerializer;

    fn unsupported<T>(what: &str) -> Result<T, RawError> {
        Err(RawError(format!(
            "the raw codec only takes bytes or strings, not {what}"
        )))
    }

    macro_rules! reject {
        ($($method:ident($($ty:ty),*) => $what:literal;)*) => {
            $(fn $method(self, $(_: $ty),*) -> Result<Vec<u8>, RawError> { unsupported($what) })*
        };
    }

    impl ser::Serializer for RawSerializer {
        type Ok = Vec<u8>;
        type Error = RawError;
        type SerializeSeq = Impossible<Vec<u8>, RawError>;
        type SerializeTuple = Impossible<Vec<u8>, RawError>;
        type SerializeTupleStruct = Impossible<Vec<u8>, RawError>;
        type SerializeTupleVariant = Impossible<Vec<u8>, RawError>;
        type SerializeMap = Impossible<Vec<u8>, RawError>;
        type SerializeStruct = Impossible<Vec<u8>, RawError>;
        type SerializeStructVariant = Impossible<Vec<u8>, RawError>;

        fn serialize_bytes(self, v: &[u8]) -> Result<Vec<u8>, RawError> {
            Ok(v.to_vec())
        }
        fn serialize_str(self, v: &str) -> Result<Vec<u8>, RawError> {
            Ok(v.as_bytes().to_vec())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            value: &T,
        ) -> Result<Vec<u8>, RawError> {
            value.serialize(self)
        }
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, RawError> {
            value.serialize(self)
        }
        reject! {
            serialize_bool(bool) => "a bool";
            serialize_i8(i8) => "an integer";
            serialize_i16(i16) => "an integer";
            serialize_i32(i32) => "an integer";
            serialize_i64(i64) => "an integer";
            serialize_u8(u8) => "an integer";
            serialize_u16(u16) => "an integer";
            serialize_u32(u32) => "an integer";
            serialize_u64(u64) => "an integer";
            serialize_f32(f32) => "a float";
            serialize_f64(f64) => "a float";
            serialize_char(char) => "a char";
            serialize_none() => "None";
            serialize_unit() => "()";
            serialize_unit_struct(&'static str) => "a unit struct";
            serialize_unit_variant(&'static str, u32, &'static str) => "an enum";
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Vec<u8>, RawError> {
            unsupported("an enum")
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, RawError> {
            unsupported("a sequence (use bytes::Bytes or serde_bytes instead of Vec<u8>)")
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RawError> {
            unsupported("a tuple")
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, RawError> {
            unsupported("a tuple struct")
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, RawError> {
            unsupported("an enum")
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, RawError> {
            unsupported("a map")
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, RawError> {
            unsupported("a struct")
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, RawError> {
            unsupported("an enum")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u32,
        item: String,
    }

    #[test]
    fn json_round_trip() {
        let o = Order {
            id: 1,
            item: "tea".into(),
        };
        let bytes = Codec::Json.encode(&o).unwrap();
        assert_eq!(bytes, br#"{"id":1,"item":"tea"}"#);
        assert_eq!(Codec::Json.decode::<Order>(&bytes).unwrap(), o);
    }

    #[test]
    fn bincode_round_trip() {
        let o = Order {
            id: 7,
            item: "x".into(),
        };
        let bytes = Codec::Bincode.encode(&o).unwrap();
        assert_eq!(Codec::Bincode.decode::<Order>(&bytes).unwrap(), o);
    }

    #[test]
    fn raw_passes_strings_and_bytes_through() {
        assert_eq!(Codec::Raw.encode("héllo").unwrap(), "héllo".as_bytes());
        let b = bytes::Bytes::from_static(b"\x00\xff");
        assert_eq!(Codec::Raw.encode(&b).unwrap(), b"\x00\xff");
        assert_eq!(Codec::Raw.decode::<String>(b"abc").unwrap(), "abc");
        assert_eq!(
            Codec::Raw.decode::<bytes::Bytes>(b"\x01\x02").unwrap(),
            bytes::Bytes::from_static(b"\x01\x02")
        );
    }

    #[test]
    fn raw_rejects_structured_values_with_a_clear_error() {
        let err = Codec::Raw.encode(&5u32).unwrap_err().to_string();
        assert!(err.contains("only takes bytes or strings"), "{err}");
        let err = Codec::Raw.decode::<Order>(b"x").unwrap_err().to_string();
        assert!(err.contains("raw"), "{err}");
    }

    #[test]
    fn bad_json_is_a_decode_error() {
        let err = Codec::Json.decode::<Order>(b"{not json").unwrap_err();
        assert!(matches!(err, Error::DecodeValue { codec: "json", .. }));
    }

    #[test]
    fn codec_names_parse() {
        assert_eq!("bincode".parse::<Codec>().unwrap(), Codec::Bincode);
        assert!("yaml"
            .parse::<Codec>()
            .unwrap_err()
            .to_string()
            .contains("json, bincode, raw"));
    }
}
