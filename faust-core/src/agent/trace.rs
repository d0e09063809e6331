//! Tracing of events: each event's W3C trace context (a child of its
//! record's `traceparent`, computed only when an output or the function
//! needs it), its `tracing` span (entered while the actor's function runs
//! with the event current), and the context written on the records that
//! are produced meanwhile.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::span::EnteredSpan;
use tracing::Span;

use crate::record::Headers;
use crate::runtime::acks::Message;
use crate::trace_context::{has_traceparent, EventTrace, TraceContext};

use super::actor::ActorCtx;
use super::held::Target;

/// The target of the events' spans: `RUST_LOG=info,faust::event=debug`
/// shows them.
pub const EVENT_TARGET: &str = "faust::event";

/// The span of one event (disabled unless `faust::event` is enabled at
/// DEBUG), and its trace context when the span is recorded.
pub(super) fn event_span(agent: &str, msg: &Message) -> (Span, Option<Box<EventTrace>>) {
    let span = tracing::debug_span!(
        target: EVENT_TARGET,
        "event",
        agent = %agent,
        topic = %msg.topic(),
        partition = msg.partition(),
        offset = msg.offset(),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    if span.is_disabled() {
        return (span, None);
    }
    let trace = span_trace(&span, msg.headers());
    span.record(
        "trace_id",
        tracing::field::display(trace.context.trace_id()),
    );
    span.record("span_id", tracing::field::display(trace.context.span_id()));
    (span, Some(Box::new(trace)))
}

/// The trace context of an event whose span is recorded.
#[cfg(not(feature = "opentelemetry"))]
fn span_trace(_span: &Span, headers: &Headers) -> EventTrace {
    EventTrace::of_record(headers)
}

/// The trace context of an event whose span is recorded: with an
/// OpenTelemetry layer, the span's own ids, its parent set from the
/// record's `traceparent`.
#[cfg(feature = "opentelemetry")]
fn span_trace(span: &Span, headers: &Headers) -> EventTrace {
    let remote = TraceContext::from_headers(headers);
    match super::otel::span_context(span, remote.as_ref()) {
        Some(context) => EventTrace::from_context(context),
        None => EventTrace::from_context(match remote {
            Some(remote) => remote.child(),
            None => TraceContext::new_root(),
        }),
    }
}

thread_local! {
    /// The actor being polled on this thread, and its current event's
    /// span, entered for the poll.
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
}

struct Running {
    actor: Arc<ActorCtx>,
    entered: Option<EnteredSpan>,
}

/// An actor's future: on each poll, the actor is the running one (for
/// [`trace_context`] and the sends made from it) and the span of its
/// current event is entered.
pub(super) struct WithinActor<F> {
    actor: Option<Arc<ActorCtx>>,
    inner: F,
}

impl<F> WithinActor<F> {
    pub(super) fn new(actor: Arc<ActorCtx>, inner: F) -> Self {
        Self {
            actor: Some(actor),
            inner,
        }
    }
}

/// Puts the actor back into its future when the poll ends (or unwinds),
/// which exits the entered span.
struct Restore<'a> {
    slot: &'a mut Option<Arc<ActorCtx>>,
    previous: Option<Running>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        if let Ok(Some(mine)) = RUNNING.try_with(|r| r.replace(previous)) {
            *self.slot = Some(mine.actor);
            drop(mine.entered);
        }
    }
}

impl<F: Future + Unpin> Future for WithinActor<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let Some(actor) = this.actor.take() else {
            // Only after a panic in an earlier poll.
            return Pin::new(&mut this.inner).poll(cx);
        };
        let entered = actor.event_span().map(Span::entered);
        let previous = RUNNING.with(|r| r.replace(Some(Running { actor, entered })));
        let polled = {
            let _restore = Restore {
                slot: &mut this.actor,
                previous,
            };
            Pin::new(&mut this.inner).poll(cx)
        };
        if polled.is_pending() {
            // The actor waits: its finished events need not wait for more.
            if let Some(actor) = &this.actor {
                actor.close_chain();
            }
        }
        polled
    }
}

/// Whether an actor is being polled on this thread (the caller runs
/// inside an agent's processing).
pub(crate) fn in_actor() -> bool {
    RUNNING.try_with(|r| r.borrow().is_some()).unwrap_or(false)
}

/// Whether `actor` is the one being polled on this thread.
fn is_running(running: &Running, actor: &ActorCtx) -> bool {
    std::ptr::eq(Arc::as_ptr(&running.actor), actor)
}

/// The actor's event is done: exit its span if it is entered.
pub(super) fn leave_event(actor: &ActorCtx) {
    let left = RUNNING.with(|r| match r.borrow_mut().as_mut() {
        Some(running) if is_running(running, actor) => running.entered.take(),
        _ => None,
    });
    drop(left);
}

/// The actor's new event is current: enter its span for the rest of the
/// poll (later polls enter it through [`WithinActor`]).
pub(super) fn enter_event(actor: &ActorCtx, span: &Span) {
    let stale = RUNNING.with(|r| match r.borrow_mut().as_mut() {
        Some(running) if is_running(running, actor) => {
            running.entered.replace(span.clone().entered())
        }
        // Not in the actor's own task (its stream was handed to another
        // task): nothing to enter.
        _ => None,
    });
    drop(stale);
}

/// The actor being polled on this thread, if any.
fn running_actor() -> Option<Arc<ActorCtx>> {
    RUNNING
        .try_with(|r| r.borrow().as_ref().map(|r| r.actor.clone()))
        .ok()
        .flatten()
}

/// The trace context of the event the running agent is processing: inside
/// an agent's function (and what it awaits), while an event is current;
/// `None` elsewhere, and while a batch is held (each of its events has its
/// own).
///
/// The context is the event's span: its trace id is that of the record's
/// `traceparent` (or a new one if the record has none), its parent span id
/// the record's span id. Every record the event produces carries it as
/// its `traceparent`, so its readers are its children.
///
/// ```
/// # use faust_core as faust;
/// async fn handle(order: String) -> faust::Result<String> {
///     if let Some(cx) = faust::trace_context() {
///         tracing::info!(trace_id = %cx.trace_id(), "pricing {order}");
///     }
///     Ok(order)
/// }
/// ```
pub fn trace_context() -> Option<TraceContext> {
    let actor = running_actor()?;
    actor.trace_of(Target::Current).map(|t| t.context)
}

/// Add the trace context to a record produced now from outside the
/// event flow (`send`, `ask`, `map`, `join`, `App::send`), unless it has
/// a `traceparent` already: the current event's if an actor sends while
/// it has one; else, with the `opentelemetry` feature, the caller's
/// current span's; else a new trace if `start` (requests) and the events'
/// spans are recorded (`faust::event` at DEBUG), none for a plain send or
/// when nothing records the trace (a join of a million values would
/// otherwise carry a million headers for nobody).
pub(crate) fn inject_for_send(headers: &mut Headers, start: bool) {
    if has_traceparent(headers) {
        return;
    }
    if let Some(actor) = running_actor() {
        match actor.output_trace_of(Target::Current) {
            Some(Some(trace)) => return trace.inject(headers),
            // An untraced event's sends carry nothing, like its outputs.
            Some(None) => return,
            None => {}
        }
    }
    #[cfg(feature = "opentelemetry")]
    if let Some(context) = super::otel::current_context() {
        context.inject(headers);
        return;
    }
    // A new trace only if something records it: the events' spans.
    if start && tracing::enabled!(target: EVENT_TARGET, tracing::Level::DEBUG) {
        TraceContext::new_root().inject(headers);
    }
}
