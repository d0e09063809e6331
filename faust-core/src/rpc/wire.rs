//! The request/reply wire format of Faust agents, byte-compatible with
//! Python Faust.
//!
//! A request reaches an agent in one of two modes:
//!
//! * **Headers mode**: the value is sent unchanged and two headers carry the
//!   return address, [`REPLY_TO_HEADER`] and [`CORRELATION_ID_HEADER`]
//!   (see [`request_headers`] and [`request_from_headers`]).
//! * **Envelope mode**: the value is wrapped in a [`ReqRepRequest`] record.
//!
//! Replies are always [`ReqRepResponse`] envelopes, sent to the reply topic
//! with a `null` record key.
//!
//! Both envelopes are Faust records: compact JSON with the fields in
//! declaration order and the "blessed key" `"__faust":{"ns":…}` last:
//!
//! ```text
//! {"value":4,"reply_to":"f-reply-x","correlation_id":"cid-1","__faust":{"ns":"@ReqRepRequest"}}
//! {"key":null,"value":8,"correlation_id":"cid-1","__faust":{"ns":"@ReqRepResponse"}}
//! ```
//!
//! When the wrapped value is itself a Faust record (see [`is_record`]), Faust
//! uses the model subclasses, whose namespaces are [`MODEL_REQUEST_NS`] and
//! [`MODEL_RESPONSE_NS`]; the encoders here do the same. The decoders accept
//! both namespaces, any field order and unknown extra fields.
//!
//! Nested objects inside `value`/`key` are written by `serde_json`: without
//! its `preserve_order` feature their keys come out sorted. That is the same
//! JSON document Faust would produce, with possibly different key order.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Header naming the topic a reply must be sent to (headers mode).
pub const REPLY_TO_HEADER: &str = "Faust-Ag-ReplyTo";

/// Header carrying the correlation id of a request (headers mode).
pub const CORRELATION_ID_HEADER: &str = "Faust-Ag-CorrelationId";

/// Prefix of the reply topic Faust generates per app (`f-reply-<uuid4>`).
pub const DEFAULT_REPLY_TO_PREFIX: &str = "f-reply-";

/// Header of ours (not Faust's) marking a reply whose agent failed.
///
/// The envelope's `value` is then `null` and the header value is the UTF-8
/// error message (see [`error_from_headers`]). Python Faust ignores it and
/// sees a `None` reply.
pub const ERROR_HEADER: &str = "faust-rs-error";

/// The key under which Faust records carry their model namespace.
pub const BLESSED_KEY: &str = "__faust";

/// Namespace of `faust.agents.models.ReqRepRequest`.
pub const REQUEST_NS: &str = "@ReqRepRequest";

/// Namespace of `ModelReqRepRequest`, used when the value is a record.
pub const MODEL_REQUEST_NS: &str = "faust.agents.models.ModelReqRepRequest";

/// Namespace of `faust.agents.models.ReqRepResponse`.
pub const RESPONSE_NS: &str = "@ReqRepResponse";

/// Namespace of `ModelReqRepResponse`, used when the value is a record.
pub const MODEL_RESPONSE_NS: &str = "faust.agents.models.ModelReqRepResponse";

/// Whether `value` is a Faust record: a JSON object whose blessed key
/// `"__faust"` is an object with a string `"ns"`.
pub fn is_record(value: &Value) -> bool {
    value
        .as_object()
        .and_then(|o| o.get(BLESSED_KEY))
        .and_then(Value::as_object)
        .and_then(|b| b.get("ns"))
        .is_some_and(Value::is_string)
}

/// The two headers of a headers-mode request, as Faust sends them:
/// [`REPLY_TO_HEADER`] then [`CORRELATION_ID_HEADER`], UTF-8 values.
pub fn request_headers(reply_to: &str, correlation_id: &str) -> [(String, Bytes); 2] {
    [
        (
            REPLY_TO_HEADER.to_owned(),
            Bytes::copy_from_slice(reply_to.as_bytes()),
        ),
        (
            CORRELATION_ID_HEADER.to_owned(),
            Bytes::copy_from_slice(correlation_id.as_bytes()),
        ),
    ]
}

/// The return address of a headers-mode request: `(reply_to, correlation_id)`.
///
/// `None` unless a [`REPLY_TO_HEADER`] is present, non-empty and UTF-8. The
/// correlation id is `None` when its header is missing, empty or not UTF-8
/// (Faust then replies with `"correlation_id":null`). Header names match
/// exactly; when a name repeats the last one wins, as with Faust's dict.
pub fn request_from_headers(headers: &[(String, Bytes)]) -> Option<(String, Option<String>)> {
    let reply_to = last_utf8_header(headers, REPLY_TO_HEADER)?;
    let correlation_id = last_utf8_header(headers, CORRELATION_ID_HEADER);
    Some((reply_to, correlation_id))
}

/// The error message of a failed reply (one carrying [`ERROR_HEADER`]),
/// decoded lossily; `None` for a successful reply.
pub fn error_from_headers(headers: &[(String, Bytes)]) -> Option<String> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == ERROR_HEADER)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn last_utf8_header(headers: &[(String, Bytes)], name: &str) -> Option<String> {
    let (_, v) = headers.iter().rev().find(|(k, _)| k == name)?;
    if v.is_empty() {
        return None;
    }
    std::str::from_utf8(v).ok().map(str::to_owned)
}

/// A request envelope (`ReqRepRequest` / `ModelReqRepRequest`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReqRepRequest {
    /// The request value the agent processes.
    pub value: Value,
    /// Topic the reply must be sent to.
    pub reply_to: String,
    /// Correlation id copied into the reply.
    pub correlation_id: String,
}

/// A reply envelope (`ReqRepResponse` / `ModelReqRepResponse`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReqRepResponse {
    /// The key of the request (`Null` when it had none).
    pub key: Value,
    /// The value the agent yielded.
    pub value: Value,
    /// Correlation id of the request (empty when the request had none; it is
    /// written as a string either way).
    pub correlation_id: String,
}

impl ReqRepRequest {
    /// A request envelope.
    pub fn new(
        value: Value,
        reply_to: impl Into<String>,
        correlation_id: impl Into<String>,
    ) -> Self {
        Self {
            value,
            reply_to: reply_to.into(),
            correlation_id: correlation_id.into(),
        }
    }

    /// The namespace Faust would write for this request.
    pub fn namespace(&self) -> &'static str {
        if is_record(&self.value) {
            MODEL_REQUEST_NS
        } else {
            REQUEST_NS
        }
    }

    /// Serialize exactly as Faust does (compact JSON, fields in order,
    /// blessed key last).
    pub fn encode(&self) -> Vec<u8> {
        encode_infallible(&RequestOut {
            value: &self.value,
            reply_to: &self.reply_to,
            correlation_id: &self.correlation_id,
            faust: Blessed {
                ns: self.namespace(),
            },
        })
    }

    /// Serialize a request from borrowed parts without building a
    /// [`serde_json::Value`] first. `model` selects [`MODEL_REQUEST_NS`]
    /// (the value serializes to a Faust record) over [`REQUEST_NS`].
    pub fn encode_parts<T: Serialize + ?Sized>(
        value: &T,
        reply_to: &str,
        correlation_id: &str,
        model: bool,
    ) -> Result<Vec<u8>> {
        let ns = if model { MODEL_REQUEST_NS } else { REQUEST_NS };
        serde_json::to_vec(&RequestOut {
            value,
            reply_to,
            correlation_id,
            faust: Blessed { ns },
        })
        .map_err(Error::json_encode)
    }

    /// Parse a request envelope.
    ///
    /// `Ok(None)` when the bytes are JSON but not a request envelope (not an
    /// object, no blessed key, another namespace); `Err` when they are not
    /// JSON, or claim to be a request but `reply_to` is not a string or
    /// `correlation_id` is missing or neither a string nor `null` (`null`
    /// becomes the empty string). A missing `value` is `null`.
    pub fn decode(bytes: &[u8]) -> Result<Option<Self>> {
        let Parsed::Object(f) = serde_json::from_slice::<Parsed>(bytes)? else {
            return Ok(None);
        };
        match f.ns.as_deref() {
            Some(REQUEST_NS | MODEL_REQUEST_NS) => {}
            _ => return Ok(None),
        }
        let reply_to = match f.reply_to {
            Some(Value::String(s)) => s,
            _ => return Err(malformed("ReqRepRequest", "reply_to must be a string")),
        };
        let correlation_id = correlation_id("ReqRepRequest", f.correlation_id)?;
        Ok(Some(Self {
            value: f.value.unwrap_or(Value::Null),
            reply_to,
            correlation_id,
        }))
    }
}

impl ReqRepResponse {
    /// A reply envelope.
    pub fn new(key: Value, value: Value, correlation_id: impl Into<String>) -> Self {
        Self {
            key,
            value,
            correlation_id: correlation_id.into(),
        }
    }

    /// The namespace Faust would write for this reply.
    pub fn namespace(&self) -> &'static str {
        if is_record(&self.value) {
            MODEL_RESPONSE_NS
        } else {
            RESPONSE_NS
        }
    }

    /// Serialize exactly as Faust does (compact JSON, fields in order,
    /// blessed key last).
    pub fn encode(&self) -> Vec<u8> {
        encode_infallible(&ResponseOut {
            key: &self.key,
            value: &self.value,
            correlation_id: &self.correlation_id,
            faust: Blessed {
                ns: self.namespace(),
            },
        })
    }

    /// Serialize a reply from borrowed parts without building
    /// [`serde_json::Value`]s first. `model` selects [`MODEL_RESPONSE_NS`]
    /// (the value serializes to a Faust record) over [`RESPONSE_NS`].
    pub fn encode_parts<K, V>(
        key: &K,
        value: &V,
        correlation_id: &str,
        model: bool,
    ) -> Result<Vec<u8>>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let ns = if model {
            MODEL_RESPONSE_NS
        } else {
            RESPONSE_NS
        };
        serde_json::to_vec(&ResponseOut {
            key,
            value,
            correlation_id,
            faust: Blessed { ns },
        })
        .map_err(Error::json_encode)
    }

    /// Parse a reply envelope.
    ///
    /// `Ok(None)` when the bytes are JSON but not a reply envelope; `Err`
    /// when they are not JSON, or claim to be a reply but `correlation_id` is
    /// missing or neither a string nor `null` (`null` becomes the empty
    /// string). A missing `key` or `value` is `null`.
    pub fn decode(bytes: &[u8]) -> Result<Option<Self>> {
        let Parsed::Object(f) = serde_json::from_slice::<Parsed>(bytes)? else {
            return Ok(None);
        };
        match f.ns.as_deref() {
            Some(RESPONSE_NS | MODEL_RESPONSE_NS) => {}
            _ => return Ok(None),
        }
        let correlation_id = correlation_id("ReqRepResponse", f.correlation_id)?;
        Ok(Some(Self {
            key: f.key.unwrap_or(Value::Null),
            value: f.value.unwrap_or(Value::Null),
            correlation_id,
        }))
    }
}

fn malformed(what: &str, why: &str) -> Error {
    Error::Rpc(format!("malformed {what} envelope: {why}"))
}

fn correlation_id(what: &str, v: Option<Value>) -> Result<String> {
    match v {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) => Ok(String::new()),
        _ => Err(malformed(what, "correlation_id must be a string or null")),
    }
}

fn encode_infallible<T: Serialize>(v: &T) -> Vec<u8> {
    // Only `Value`s and strings are serialized here: their keys are always
    // strings and their numbers always finite, so this cannot fail.
    serde_json::to_vec(v).expect("serializing JSON values cannot fail")
}

// ---- serialization ----------------------------------------------------------

#[derive(Serialize)]
struct Blessed<'a> {
    ns: &'a str,
}

#[derive(Serialize)]
struct RequestOut<'a, T: ?Sized> {
    value: &'a T,
    reply_to: &'a str,
    correlation_id: &'a str,
    #[serde(rename = "__faust")]
    faust: Blessed<'a>,
}

#[derive(Serialize)]
struct ResponseOut<'a, K: ?Sized, V: ?Sized> {
    key: &'a K,
    value: &'a V,
    correlation_id: &'a str,
    #[serde(rename = "__faust")]
    faust: Blessed<'a>,
}

// ---- deserialization --------------------------------------------------------

/// The fields of either envelope, collected in one pass over any JSON value.
/// Never fails on valid JSON: the shape is checked afterwards.
enum Parsed {
    NotObject,
    Object(Fields),
}

#[derive(Default)]
struct Fields {
    key: Option<Value>,
    value: Option<Value>,
    reply_to: Option<Value>,
    correlation_id: Option<Value>,
    ns: Option<String>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Key,
    Value,
    ReplyTo,
    CorrelationId,
    #[serde(rename = "__faust")]
    Faust,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ParsedVisitor)
    }
}

struct ParsedVisitor;

impl<'de> Visitor<'de> for ParsedVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Parsed, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Parsed::NotObject)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Parsed, A::Error> {
        let mut f = Fields::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Key => f.key = Some(map.next_value()?),
                Field::Value => f.value = Some(map.next_value()?),
                Field::ReplyTo => f.reply_to = Some(map.next_value()?),
                Field::CorrelationId => f.correlation_id = Some(map.next_value()?),
                Field::Faust => f.ns = map.next_value::<Blessing>()?.0,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Parsed::Object(f))
    }
}

/// The `ns` of a blessed key, if it is an object with a string `ns`.
struct Blessing(Option<String>);

impl<'de> Deserialize<'de> for Blessing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(BlessingVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum BlessingField {
    Ns,
    #[serde(other)]
    Other,
}

struct BlessingVisitor;

impl<'de> Visitor<'de> for BlessingVisitor {
    type Value = Blessing;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Blessing, E> {
        Ok(Blessing(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Blessing, E> {
        Ok(Blessing(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Blessing, E> {
        Ok(Blessing(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Blessing, E> {
        Ok(Blessing(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Blessing, E> {
        Ok(Blessing(None))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Blessing, E> {
        Ok(Blessing(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Blessing, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Blessing(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Blessing, A::Error> {
        let mut ns = None;
        while let Some(k) = map.next_key::<BlessingField>()? {
            match k {
                BlessingField::Ns => {
                    ns = match map.next_value::<Value>()? {
                        Value::String(s) => Some(s),
                        _ => None,
                    };
                }
                BlessingField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Blessing(ns))
    }
}

/// Cheap pre-check: could these bytes be a `ReqRepRequest` envelope?
/// (Avoids parsing every ordinary JSON value twice.)
pub fn looks_like_request(bytes: &[u8]) -> bool {
    // Built once: `memmem::rfind` would build its searcher on every call.
    static NEEDLE: std::sync::LazyLock<memchr::memmem::FinderRev<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::FinderRev::new(b"ReqRepRequest"));
    // The namespace key usually comes last: search from the end.
    bytes.first() == Some(&b'{') && NEEDLE.rfind(bytes).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn golden_request() {
        let r = ReqRepRequest::new(json!(4), "f-reply-x", "cid-1");
        assert_eq!(
            s(&r.encode()),
            r#"{"value":4,"reply_to":"f-reply-x","correlation_id":"cid-1","__faust":{"ns":"@ReqRepRequest"}}"#
        );
    }

    #[test]
    fn golden_response() {
        let r = ReqRepResponse::new(Value::Null, json!(8), "cid-1");
        assert_eq!(
            s(&r.encode()),
            r#"{"key":null,"value":8,"correlation_id":"cid-1","__faust":{"ns":"@ReqRepResponse"}}"#
        );
    }

    #[test]
    fn golden_model_request() {
        // Keys of the nested record are sorted by serde_json (no
        // `preserve_order`); `encode_parts` keeps a typed value's field order.
        let r = ReqRepRequest::new(
            json!({"a": 1, "b": 2, "__faust": {"ns": "t.Add"}}),
            "f-reply-x",
            "cid-1",
        );
        assert_eq!(
            s(&r.encode()),
            concat!(
                r#"{"value":{"__faust":{"ns":"t.Add"},"a":1,"b":2},"reply_to":"f-reply-x","#,
                r#""correlation_id":"cid-1","__faust":{"ns":"faust.agents.models.ModelReqRepRequest"}}"#
            )
        );

        #[derive(Serialize)]
        struct Add {
            a: i32,
            b: i32,
            __faust: Ns,
        }
        #[derive(Serialize)]
        struct Ns {
            ns: &'static str,
        }
        let add = Add {
            a: 1,
            b: 2,
            __faust: Ns { ns: "t.Add" },
        };
        let bytes = ReqRepRequest::encode_parts(&add, "f-reply-x", "cid-1", true).unwrap();
        assert_eq!(
            s(&bytes),
            concat!(
                r#"{"value":{"a":1,"b":2,"__faust":{"ns":"t.Add"}},"reply_to":"f-reply-x","#,
                r#""correlation_id":"cid-1","__faust":{"ns":"faust.agents.models.ModelReqRepRequest"}}"#
            )
        );
    }

    #[test]
    fn golden_model_response() {
        let r = ReqRepResponse::new(
            json!("k"),
            json!({"a": 1, "__faust": {"ns": "t.Add"}}),
            "cid-1",
        );
        assert_eq!(
            s(&r.encode()),
            concat!(
                r#"{"key":"k","value":{"__faust":{"ns":"t.Add"},"a":1},"correlation_id":"cid-1","#,
                r#""__faust":{"ns":"faust.agents.models.ModelReqRepResponse"}}"#
            )
        );
    }

    #[test]
    fn encode_parts_matches_encode() {
        let bytes = ReqRepRequest::encode_parts(&4, "f-reply-x", "cid-1", false).unwrap();
        assert_eq!(
            bytes,
            ReqRepRequest::new(json!(4), "f-reply-x", "cid-1").encode()
        );
        let bytes = ReqRepResponse::encode_parts(&(), &8, "cid-1", false).unwrap();
        assert_eq!(
            bytes,
            ReqRepResponse::new(Value::Null, json!(8), "cid-1").encode()
        );
    }

    #[test]
    fn not_a_record() {
        assert!(!is_record(&json!({"__faust": "x"})));
        assert!(!is_record(&json!({"__faust": {"ns": 1}})));
        assert!(!is_record(&json!([1])));
        assert!(is_record(&json!({"__faust": {"ns": "x"}})));
        let r = ReqRepRequest::new(json!({"__faust": {}}), "r", "c");
        assert_eq!(r.namespace(), REQUEST_NS);
    }

    #[test]
    fn round_trips() {
        for value in [
            json!(4),
            json!(null),
            json!("text \"quoted\" é"),
            json!([1, 2.5, {"x": null}]),
            json!({"a": 1, "__faust": {"ns": "m.A"}}),
        ] {
            let req = ReqRepRequest::new(value.clone(), "f-reply-1", "cid");
            assert_eq!(ReqRepRequest::decode(&req.encode()).unwrap(), Some(req));
            let resp = ReqRepResponse::new(json!({"k": [1]}), value, "cid");
            assert_eq!(ReqRepResponse::decode(&resp.encode()).unwrap(), Some(resp));
        }
    }

    #[test]
    fn decodes_python_bytes_any_order_and_extra_fields() {
        let b = br#"{"__faust": {"ns": "faust.agents.models.ModelReqRepRequest"}, "correlation_id": "c", "extra": [1, {"a": 2}], "reply_to": "r", "value": {"a": 1, "__faust": {"ns": "m.A"}}}"#;
        let r = ReqRepRequest::decode(b).unwrap().unwrap();
        assert_eq!(r.reply_to, "r");
        assert_eq!(r.correlation_id, "c");
        assert_eq!(r.value, json!({"a": 1, "__faust": {"ns": "m.A"}}));

        let b = br#"{"correlation_id":null,"__faust":{"ns":"@ReqRepResponse","x":1},"value":8}"#;
        let r = ReqRepResponse::decode(b).unwrap().unwrap();
        assert_eq!(r, ReqRepResponse::new(Value::Null, json!(8), ""));
    }

    #[test]
    fn not_an_envelope_is_none() {
        for b in [
            &br#"4"#[..],
            br#""s""#,
            br#"null"#,
            br#"true"#,
            br#"[1,{"__faust":{"ns":"@ReqRepRequest"}}]"#,
            br#"{"value":4,"reply_to":"r","correlation_id":"c"}"#,
            br#"{"value":4,"reply_to":"r","correlation_id":"c","__faust":{"ns":"m.Other"}}"#,
            br#"{"value":4,"reply_to":"r","correlation_id":"c","__faust":"@ReqRepRequest"}"#,
            br#"{"value":4,"reply_to":"r","correlation_id":"c","__faust":{"ns":5}}"#,
        ] {
            assert_eq!(ReqRepRequest::decode(b).unwrap(), None, "{}", s(b));
            assert_eq!(ReqRepResponse::decode(b).unwrap(), None, "{}", s(b));
        }
        // The other envelope is not this one.
        let req = ReqRepRequest::new(json!(1), "r", "c").encode();
        let resp = ReqRepResponse::new(Value::Null, json!(1), "c").encode();
        assert_eq!(ReqRepResponse::decode(&req).unwrap(), None);
        assert_eq!(ReqRepRequest::decode(&resp).unwrap(), None);
    }

    #[test]
    fn garbage_is_err() {
        for b in [&b""[..], b"{", b"\xff\xfe", b"{\"value\":4} x", b"not json"] {
            assert!(ReqRepRequest::decode(b).is_err(), "{:?}", b);
            assert!(ReqRepResponse::decode(b).is_err(), "{:?}", b);
        }
    }

    #[test]
    fn malformed_envelope_is_rpc_err() {
        let b =
            br#"{"value":4,"reply_to":7,"correlation_id":"c","__faust":{"ns":"@ReqRepRequest"}}"#;
        assert!(matches!(ReqRepRequest::decode(b), Err(Error::Rpc(_))));
        let b = br#"{"value":4,"reply_to":"r","__faust":{"ns":"@ReqRepRequest"}}"#;
        assert!(matches!(ReqRepRequest::decode(b), Err(Error::Rpc(_))));
        let b = br#"{"value":4,"correlation_id":[],"__faust":{"ns":"@ReqRepResponse"}}"#;
        assert!(matches!(ReqRepResponse::decode(b), Err(Error::Rpc(_))));
    }

    #[test]
    fn headers() {
        let h: Vec<(String, Bytes)> = request_headers("f-reply-1", "cid").into();
        assert_eq!(h[0].0, "Faust-Ag-ReplyTo");
        assert_eq!(&h[0].1[..], b"f-reply-1");
        assert_eq!(h[1].0, "Faust-Ag-CorrelationId");
        assert_eq!(
            request_from_headers(&h),
            Some(("f-reply-1".to_owned(), Some("cid".to_owned())))
        );

        let only = vec![(REPLY_TO_HEADER.to_owned(), Bytes::from_static(b"t"))];
        assert_eq!(request_from_headers(&only), Some(("t".to_owned(), None)));

        let empty_cid = vec![
            (REPLY_TO_HEADER.to_owned(), Bytes::from_static(b"t")),
            (CORRELATION_ID_HEADER.to_owned(), Bytes::new()),
        ];
        assert_eq!(
            request_from_headers(&empty_cid),
            Some(("t".to_owned(), None))
        );

        let empty = vec![(REPLY_TO_HEADER.to_owned(), Bytes::new())];
        assert_eq!(request_from_headers(&empty), None);
        let bad = vec![(REPLY_TO_HEADER.to_owned(), Bytes::from_static(b"\xff"))];
        assert_eq!(request_from_headers(&bad), None);
        let other_case = vec![("faust-ag-replyto".to_owned(), Bytes::from_static(b"t"))];
        assert_eq!(request_from_headers(&other_case), None);
        assert_eq!(request_from_headers(&[]), None);

        let twice = vec![
            (REPLY_TO_HEADER.to_owned(), Bytes::from_static(b"a")),
            (REPLY_TO_HEADER.to_owned(), Bytes::from_static(b"b")),
        ];
        assert_eq!(request_from_headers(&twice), Some(("b".to_owned(), None)));

        assert_eq!(error_from_headers(&h), None);
        let err = vec![(ERROR_HEADER.to_owned(), Bytes::from_static(b"boom"))];
        assert_eq!(error_from_headers(&err).as_deref(), Some("boom"));
    }
}
