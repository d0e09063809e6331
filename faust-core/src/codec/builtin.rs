//! The built-in codecs as values ([`Json`], [`Bincode`], [`Raw`]) and the
//! built-in transform [`Binary`] (base64, Faust's `binary`).
//!
//! A [`CodecRef`](super::CodecRef) made from one of these codecs calls
//! serde_json or bincode directly, not through the erased [`Codec`] methods;
//! those are there for codecs of your own that wrap a built-in.

use base64::Engine as _;
use bincode::Options as _;

use super::custom::{BoxError, Codec, Transform, ValueSlot};
use super::raw::{RawError, RawSerializer};

/// JSON (serde_json): readable, and what Python Faust uses. Name `json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Json;

/// bincode 1.x: compact, Rust-to-Rust only. Name `bincode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bincode;

/// Bytes as they are: the type must serialize as bytes or a string
/// (`String`, `bytes::Bytes`, `serde_bytes`). Name `raw`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Raw;

/// Base64 (standard alphabet, padded), Faust's `binary` codec: alone it is
/// raw bytes then base64; after a codec (`"json|binary"`), that codec's
/// bytes then base64. Name `binary`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Binary;

/// The options `bincode::serialize`/`deserialize` use.
pub(super) fn bincode_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
}

impl Codec for Json {
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(value)?)
    }
    fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        out.deserialize(&mut de)?;
        Ok(de.end()?)
    }
    fn name(&self) -> &str {
        "json"
    }
}

impl Codec for Bincode {
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
        Ok(bincode::serialize(value)?)
    }
    fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError> {
        let mut de = bincode::Deserializer::from_slice(bytes, bincode_options());
        out.deserialize(&mut de)
    }
    fn name(&self) -> &str {
        "bincode"
    }
}

impl Codec for Raw {
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
        Ok(serde::Serialize::serialize(value, RawSerializer)?)
    }
    fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError> {
        out.deserialize(serde::de::value::BytesDeserializer::<RawError>::new(bytes))
    }
    fn name(&self) -> &str {
        "raw"
    }
}

impl Transform for Binary {
    fn encode(&self, bytes: Vec<u8>) -> Result<Vec<u8>, BoxError> {
        Ok(base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes())
    }
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        Ok(base64::engine::general_purpose::STANDARD.decode(bytes)?)
    }
}
