//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the
//! `traceparent` and `tracestate` headers that carry a trace from one record
//! to the records it causes, across agents and processes.
//!
//! faust reads them from every record an agent processes and writes them on
//! every record the event produces (replies, sink records, `send`, `ask`,
//! `map` and `join` made while it is current); see the guide's "Tracing"
//! section. [`trace_context`](crate::trace_context()) gives the current
//! event's context inside an agent.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::record::Headers;

/// The header carrying the trace id, the parent span id and the flags.
pub const TRACEPARENT: &str = "traceparent";

/// The header carrying vendor-specific trace data, passed on unchanged.
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` carried on (the length every implementation
/// must propagate, by the specification); a longer one is dropped.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// The `sampled` flag of `trace-flags`.
const SAMPLED: u8 = 0x01;

/// A 16-byte trace id, shown as 32 lowercase hex digits. Never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

/// An 8-byte span id, shown as 16 lowercase hex digits. Never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

impl TraceId {
    /// The id of these bytes (big-endian, as written), `None` if all zero.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        Self::from_u128(u128::from_be_bytes(bytes))
    }

    /// The id as a number, `None` for zero.
    pub fn from_u128(id: u128) -> Option<Self> {
        (id != 0).then_some(Self(id))
    }

    /// A random id.
    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::from_u128(fastrand::u128(..)) {
                return id;
            }
        }
    }

    /// The id's bytes, big-endian (as written).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl SpanId {
    /// The id of these bytes (big-endian, as written), `None` if all zero.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        Self::from_u64(u64::from_be_bytes(bytes))
    }

    /// The id as a number, `None` for zero.
    pub fn from_u64(id: u64) -> Option<Self> {
        (id != 0).then_some(Self(id))
    }

    /// A random id.
    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::from_u64(fastrand::u64(..)) {
                return id;
            }
        }
    }

    /// The id's bytes, big-endian (as written).
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

impl FromStr for TraceId {
    type Err = InvalidTraceContext;

    /// 32 lowercase hex digits, not all zero.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        lower_hex(s.as_bytes(), 32)
            .and_then(|_| u128::from_str_radix(s, 16).ok())
            .and_then(Self::from_u128)
            .ok_or(InvalidTraceContext)
    }
}

impl FromStr for SpanId {
    type Err = InvalidTraceContext;

    /// 16 lowercase hex digits, not all zero.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        lower_hex(s.as_bytes(), 16)
            .and_then(|_| u64::from_str_radix(s, 16).ok())
            .and_then(Self::from_u64)
            .ok_or(InvalidTraceContext)
    }
}

/// A `traceparent` (or an id) that does not follow the specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid W3C traceparent")]
pub struct InvalidTraceContext;

/// `Some` if `s` is exactly `len` lowercase hex digits (uppercase is
/// invalid in `traceparent`).
fn lower_hex(s: &[u8], len: usize) -> Option<()> {
    (s.len() == len && s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(())
}

/// The trace context of one span: its trace, its own id, the id of its
/// parent if known, the `sampled` flag and the `tracestate` to pass on.
///
/// Parsed from a `traceparent` header, the context is the remote span
/// (its span id is the header's `parent-id`); [`child`](Self::child) makes
/// the context of a span under it. The header it writes
/// ([`traceparent`](Self::traceparent)) names this span as the parent of
/// whatever reads it.
///
/// ```
/// use faust_core::trace_context::TraceContext;
///
/// let remote = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// let event = remote.child();
/// assert_eq!(event.trace_id(), remote.trace_id());
/// assert_eq!(event.parent_span_id(), Some(remote.span_id()));
/// assert!(event.is_sampled());
/// assert_eq!(&event.traceparent()[..35], "00-4bf92f3577b34da6a3ce929d0e0e4736");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    flags: u8,
    trace_state: Option<Bytes>,
}

impl TraceContext {
    /// A context with these ids and no parent.
    pub fn new(trace_id: TraceId, span_id: SpanId, sampled: bool) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id: None,
            flags: if sampled { SAMPLED } else { 0 },
            trace_state: None,
        }
    }

    /// The first span of a new trace: random ids, sampled.
    pub fn new_root() -> Self {
        Self::new(TraceId::random(), SpanId::random(), true)
    }

    /// A span under this one: the same trace, flags and `tracestate`, a new
    /// random span id, this span as its parent.
    pub fn child(&self) -> Self {
        self.child_with_id(SpanId::random())
    }

    /// A span under this one with the span id `span_id`.
    pub fn child_with_id(&self, span_id: SpanId) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id,
            parent_span_id: Some(self.span_id),
            flags: self.flags,
            trace_state: self.trace_state.clone(),
        }
    }

    /// Parse a `traceparent` value, by the specification: version `00` is
    /// exactly `00-<trace-id>-<parent-id>-<flags>`, lowercase hex; a later
    /// version is read by those four fields (anything after them must
    /// follow a `-`); version `ff`, an all-zero trace id or parent id, or
    /// any other deviation is invalid (`None`). Flags other than `sampled`
    /// are dropped.
    pub fn parse(traceparent: impl AsRef<[u8]>) -> Option<Self> {
        let s = traceparent.as_ref();
        if s.len() < 55 || !s[..55].is_ascii() {
            return None;
        }
        let (version, rest) = s.split_at(2);
        lower_hex(version, 2)?;
        match version {
            b"ff" => return None,
            b"00" if s.len() != 55 => return None,
            _ if s.len() > 55 && s[55] != b'-' => return None,
            _ => {}
        }
        if rest[0] != b'-' || rest[33] != b'-' || rest[50] != b'-' {
            return None;
        }
        let text = std::str::from_utf8(&rest[..53]).ok()?;
        let trace_id: TraceId = text[1..33].parse().ok()?;
        let span_id: SpanId = text[34..50].parse().ok()?;
        lower_hex(&rest[51..53], 2)?;
        let flags = u8::from_str_radix(&text[51..53], 16).ok()?;
        Some(Self::new(trace_id, span_id, flags & SAMPLED != 0))
    }

    /// The context of a record's headers: the first `traceparent` if it is
    /// valid (see [`parse`](Self::parse)), with the `tracestate` headers
    /// joined by commas, kept only if at most [`MAX_TRACESTATE_LEN`] bytes
    /// of printable ASCII. `None` without a valid `traceparent` (its
    /// `tracestate` is then ignored too, as the specification asks).
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        let (_, value) = headers.iter().find(|(k, _)| k == TRACEPARENT)?;
        let mut cx = Self::parse(value)?;
        cx.trace_state = trace_state_of(headers);
        Some(cx)
    }

    /// This context with `tracestate` (dropped if longer than
    /// [`MAX_TRACESTATE_LEN`] or not printable ASCII; empty means none).
    pub fn with_trace_state(mut self, trace_state: impl Into<Bytes>) -> Self {
        let state: Bytes = trace_state.into();
        self.trace_state = valid_trace_state(&state).then_some(state);
        self
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This span's id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The parent span's id, when this context was made with
    /// [`child`](Self::child) (for an event: the span id of the record's
    /// `traceparent`).
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }

    /// Whether the trace is sampled (recorded) upstream.
    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The `tracestate` passed on, if any.
    pub fn trace_state(&self) -> Option<&str> {
        // Checked printable ASCII when set.
        self.trace_state
            .as_deref()
            .and_then(|s| std::str::from_utf8(s).ok())
    }

    /// The `traceparent` naming this span as the parent (version `00`).
    pub fn traceparent(&self) -> String {
        self.to_string()
    }

    /// [`traceparent`](Self::traceparent), written on the stack (records
    /// get it per event: formatting was measurable there).
    pub(crate) fn traceparent_bytes(&self) -> [u8; 55] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        for (i, b) in out[3..35].iter_mut().enumerate() {
            *b = HEX[((self.trace_id.0 >> (124 - 4 * i)) & 0xf) as usize];
        }
        for (i, b) in out[36..52].iter_mut().enumerate() {
            *b = HEX[((self.span_id.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        out[53] = HEX[usize::from(self.flags >> 4)];
        out[54] = HEX[usize::from(self.flags & 0xf)];
        out
    }

    /// The headers carrying this context: `traceparent`, and `tracestate`
    /// if there is one.
    pub fn headers(&self) -> Headers {
        let mut headers = Vec::with_capacity(2);
        self.inject(&mut headers);
        headers
    }

    /// Add this context's headers to `headers`, unless they have a
    /// `traceparent` already (a context set by hand wins).
    pub fn inject(&self, headers: &mut Headers) {
        if has_traceparent(headers) {
            return;
        }
        headers.push((
            TRACEPARENT.to_string(),
            Bytes::copy_from_slice(&self.traceparent_bytes()),
        ));
        if let Some(state) = &self.trace_state {
            headers.push((TRACESTATE.to_string(), state.clone()));
        }
    }

    /// The `tracestate` as stored (checked when set).
    pub(crate) fn trace_state_bytes(&self) -> Option<&Bytes> {
        self.trace_state.as_ref()
    }
}

/// An event's trace context, with the `traceparent` of the records it
/// produces formatted once.
#[derive(Clone)]
pub(crate) struct EventTrace {
    pub(crate) context: TraceContext,
    traceparent: [u8; 55],
}

impl EventTrace {
    pub(crate) fn from_context(context: TraceContext) -> Self {
        let traceparent = context.traceparent_bytes();
        Self {
            context,
            traceparent,
        }
    }

    /// The context of an event read from a record with these headers: a
    /// child of its `traceparent`, or a new trace if it has none (or an
    /// invalid one).
    pub(crate) fn of_record(headers: &Headers) -> Self {
        Self::from_context(match TraceContext::from_headers(headers) {
            Some(remote) => remote.child(),
            None => TraceContext::new_root(),
        })
    }

    /// [`of_record`](Self::of_record) for a record that came with a
    /// `traceparent` (valid or not); `None` for one that has none: nothing
    /// traces it.
    pub(crate) fn of_traced_record(headers: &Headers) -> Option<Self> {
        has_traceparent(headers).then(|| Self::of_record(headers))
    }

    /// Add `traceparent` (and `tracestate`) to a record the event
    /// produces, unless it has a `traceparent` already.
    pub(crate) fn inject(&self, headers: &mut Headers) {
        if has_traceparent(headers) {
            return;
        }
        headers.push((
            TRACEPARENT.to_string(),
            Bytes::copy_from_slice(&self.traceparent),
        ));
        if let Some(state) = self.context.trace_state_bytes() {
            headers.push((TRACESTATE.to_string(), state.clone()));
        }
    }
}

/// Whether `headers` have a `traceparent`.
pub(crate) fn has_traceparent(headers: &Headers) -> bool {
    headers.iter().any(|(k, _)| k == TRACEPARENT)
}

/// The `tracestate` of `headers`: every `tracestate` header joined by
/// commas (one header, the usual case, is shared as it is).
fn trace_state_of(headers: &Headers) -> Option<Bytes> {
    let mut states = headers
        .iter()
        .filter(|(k, _)| k == TRACESTATE)
        .map(|(_, v)| v);
    let first = states.next()?;
    let state = match states.next() {
        None => first.clone(),
        Some(second) => {
            let mut joined = first.to_vec();
            for more in std::iter::once(second).chain(states) {
                joined.push(b',');
                joined.extend_from_slice(more);
            }
            Bytes::from(joined)
        }
    };
    valid_trace_state(&state).then_some(state)
}

/// Non-empty, at most [`MAX_TRACESTATE_LEN`] bytes, printable ASCII (and
/// the spaces and tabs the list allows).
fn valid_trace_state(state: &[u8]) -> bool {
    !state.is_empty()
        && state.len() <= MAX_TRACESTATE_LEN
        && state
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

impl fmt::Display for TraceContext {
    /// The `traceparent`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.traceparent_bytes();
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TraceContext");
        d.field("trace_id", &format_args!("{}", self.trace_id))
            .field("span_id", &format_args!("{}", self.span_id));
        if let Some(parent) = self.parent_span_id {
            d.field("parent_span_id", &format_args!("{parent}"));
        }
        d.field("sampled", &self.is_sampled());
        if let Some(state) = self.trace_state() {
            d.field("trace_state", &state);
        }
        d.finish()
    }
}

impl FromStr for TraceContext {
    type Err = InvalidTraceContext;

    /// [`TraceContext::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(InvalidTraceContext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Bytes::from(v.to_string())))
            .collect()
    }

    #[test]
    fn version_00_round_trips() {
        let cx = TraceContext::parse(VALID).unwrap();
        assert_eq!(
            cx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(cx.is_sampled());
        assert_eq!(cx.parent_span_id(), None);
        assert_eq!(cx.traceparent(), VALID);
        assert_eq!(&cx.traceparent_bytes()[..], VALID.as_bytes());
        let root = TraceContext::new_root();
        assert_eq!(&root.traceparent_bytes()[..], root.traceparent().as_bytes());
        let unsampled = TraceContext::parse(VALID.replace("-01", "-00")).unwrap();
        assert!(!unsampled.is_sampled());
        assert!(unsampled.traceparent().ends_with("-00"));
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            // uppercase hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff, and a version that is not hex
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // version 00 is exactly 55 characters
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // wrong separators, signs, non-ASCII
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for b in bad {
            assert_eq!(TraceContext::parse(b), None, "{b:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-comes-next";
        let cx = TraceContext::parse(later).unwrap();
        assert_eq!(
            cx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(cx.is_sampled());
        // Written back as version 00, unknown flags dropped.
        assert_eq!(cx.traceparent(), VALID);
        assert!(TraceContext::parse(&later[..55]).is_some());
        assert!(TraceContext::parse(format!("{}x", &later[..55])).is_none());
    }

    #[test]
    fn a_child_keeps_the_trace_and_names_its_parent() {
        let parent = TraceContext::parse(VALID)
            .unwrap()
            .with_trace_state("congo=t61rcWkgMzE");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.parent_span_id(), Some(parent.span_id()));
        assert_eq!(child.trace_state(), Some("congo=t61rcWkgMzE"));
        let root = TraceContext::new_root();
        assert!(root.is_sampled());
        assert_ne!(root.trace_id(), TraceContext::new_root().trace_id());
    }

    #[test]
    fn headers_in_and_out() {
        let h = headers(&[
            ("other", "x"),
            (TRACEPARENT, VALID),
            (TRACESTATE, "rojo=00f067aa0ba902b7"),
            (TRACESTATE, "congo=t61rcWkgMzE"),
        ]);
        let cx = TraceContext::from_headers(&h).unwrap();
        assert_eq!(
            cx.trace_state(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        let out = cx.headers();
        assert_eq!(out[0].0, TRACEPARENT);
        assert_eq!(&out[0].1[..], VALID.as_bytes());
        assert_eq!(&out[1].1[..], b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

        // A traceparent already there wins.
        let mut mine = headers(&[(TRACEPARENT, "set by hand")]);
        cx.inject(&mut mine);
        assert_eq!(mine.len(), 1);

        // No valid traceparent: the tracestate is ignored too.
        let h = headers(&[(TRACEPARENT, "junk"), (TRACESTATE, "a=b")]);
        assert_eq!(TraceContext::from_headers(&h), None);
        assert_eq!(TraceContext::from_headers(&Vec::new()), None);
    }

    #[test]
    fn tracestate_is_bounded() {
        let long = format!("a={}", "x".repeat(MAX_TRACESTATE_LEN));
        let h = headers(&[(TRACEPARENT, VALID), (TRACESTATE, &long)]);
        assert_eq!(TraceContext::from_headers(&h).unwrap().trace_state(), None);
        let cx = TraceContext::parse(VALID).unwrap();
        assert_eq!(cx.clone().with_trace_state("bad\nline").trace_state(), None);
        assert_eq!(cx.with_trace_state("").trace_state(), None);
    }

    #[test]
    fn ids_parse_strictly() {
        assert!("4bf92f3577b34da6a3ce929d0e0e4736"
            .parse::<TraceId>()
            .is_ok());
        assert!("4BF92F3577B34DA6A3CE929D0E0E4736"
            .parse::<TraceId>()
            .is_err());
        assert!("0000000000000000".parse::<SpanId>().is_err());
        let id = SpanId::random();
        assert_eq!(SpanId::from_bytes(id.to_bytes()), Some(id));
        assert_eq!(id.to_string().parse::<SpanId>(), Ok(id));
        assert_eq!(TraceId::from_bytes([0; 16]), None);
    }
}
