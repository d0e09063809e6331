//! The answering side of request/reply: where a request wants its reply
//! (from its `ReqRepRequest` envelope or from its headers) and the
//! `ReqRepResponse` record that answers it.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::record::{Headers, ProducerRecord};
use crate::rpc::wire::{self, ReqRepRequest, ReqRepResponse};
use crate::trace_context::EventTrace;

/// Where a request wants its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReplyAddr {
    pub(crate) reply_to: String,
    pub(crate) correlation_id: String,
}

/// An incoming record as a request: its value (still to decode) and its
/// reply address, if it is a request.
pub(crate) enum Request<'a> {
    /// A `ReqRepRequest` envelope: the JSON value inside, whatever the
    /// agent's codec (Faust's format), and the address it names.
    Envelope(serde_json::Value, ReplyAddr),
    /// A plain value, with the reply address of its headers if any.
    Plain(&'a [u8], Option<ReplyAddr>),
    /// An envelope that does not decode; the headers' address, if any, gets
    /// the error.
    Malformed(Error, Option<ReplyAddr>),
}

/// Read the record with this value and these headers as a request.
pub(crate) fn read_request<'a>(raw: &'a [u8], headers: &Headers) -> Request<'a> {
    if wire::looks_like_request(raw) {
        match ReqRepRequest::decode(raw) {
            Ok(Some(req)) => {
                let addr = ReplyAddr {
                    reply_to: req.reply_to,
                    correlation_id: req.correlation_id,
                };
                return Request::Envelope(req.value, addr);
            }
            Ok(None) => {}
            Err(e) => return Request::Malformed(e, reply_address(headers)),
        }
    }
    Request::Plain(raw, reply_address(headers))
}

/// The reply address of a request in headers mode, by Faust's rule (see
/// [`wire::request_from_headers`]); a request without a correlation id is
/// answered with an empty one.
pub(crate) fn reply_address(headers: &Headers) -> Option<ReplyAddr> {
    let (reply_to, correlation_id) = wire::request_from_headers(headers)?;
    Some(ReplyAddr {
        reply_to,
        correlation_id: correlation_id.unwrap_or_default(),
    })
}

/// The record answering a request: a `ReqRepResponse` to its reply topic,
/// carrying the value, or the error message in [`wire::ERROR_HEADER`], and
/// the answering event's trace context.
pub(crate) fn reply_record(
    addr: &ReplyAddr,
    key: Option<&Bytes>,
    value: std::result::Result<serde_json::Value, String>,
    trace: Option<&EventTrace>,
) -> ProducerRecord {
    let key = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .map(|k| serde_json::Value::String(k.to_string()))
        .unwrap_or(serde_json::Value::Null);
    let mut headers = Vec::new();
    if let Some(trace) = trace {
        trace.inject(&mut headers);
    }
    let value = match value {
        Ok(v) => v,
        Err(message) => {
            headers.push((wire::ERROR_HEADER.to_string(), Bytes::from(message)));
            serde_json::Value::Null
        }
    };
    let response = ReqRepResponse {
        key,
        value,
        correlation_id: addr.correlation_id.clone(),
    };
    ProducerRecord {
        topic: addr.reply_to.as_str().into(),
        partition: None,
        key: None,
        value: Some(response.encode().into()),
        headers,
        timestamp: None,
    }
}

/// The message an error reply carries (the asker adds the agent name).
pub(crate) fn error_message(err: &Error) -> String {
    match err {
        Error::Agent { message, .. } | Error::Panic { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The reply value of `value`, as JSON.
pub(crate) fn reply_value<R: serde::Serialize>(value: &R) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(Error::json_encode)
}
