//! Feature `opentelemetry`: the events' spans as OpenTelemetry spans, by
//! the `tracing-opentelemetry` layer. An event's span is parented to its
//! record's `traceparent`, and its OpenTelemetry ids are the event's trace
//! context, so the records it produces name the exported span as their
//! parent.

use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceId as OtelTraceId, TraceState,
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::trace_context::{SpanId, TraceContext, TraceId};

/// The context of an event's span `span`, first parented to `remote` (the
/// record's context) if there is one; `None` if no OpenTelemetry layer
/// records the span.
pub(super) fn span_context(span: &Span, remote: Option<&TraceContext>) -> Option<TraceContext> {
    if let Some(remote) = remote {
        let flags = if remote.is_sampled() {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let state = remote
            .trace_state()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let parent = SpanContext::new(
            OtelTraceId::from_bytes(remote.trace_id().to_bytes()),
            opentelemetry::trace::SpanId::from_bytes(remote.span_id().to_bytes()),
            flags,
            true,
            state,
        );
        // Fails only without the layer, which `span.context()` tells too.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    let own = of_span_context(span.context().span().span_context())?;
    Some(match remote {
        // The ids of the exported span, the rest of the record's context.
        Some(remote) => remote.child_with_id(own.span_id()),
        None => own,
    })
}

/// The context of the caller's current span (sends and asks from outside
/// an agent), if an OpenTelemetry layer records it.
pub(super) fn current_context() -> Option<TraceContext> {
    of_span_context(Span::current().context().span().span_context())
}

fn of_span_context(sc: &SpanContext) -> Option<TraceContext> {
    if !sc.is_valid() {
        return None;
    }
    let trace_id = TraceId::from_bytes(sc.trace_id().to_bytes())?;
    let span_id = SpanId::from_bytes(sc.span_id().to_bytes())?;
    let context = TraceContext::new(trace_id, span_id, sc.is_sampled());
    let state = sc.trace_state().header();
    Some(if state.is_empty() {
        context
    } else {
        context.with_trace_state(state)
    })
}
