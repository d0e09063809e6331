//! W3C trace context through agents on the embedded broker: read from the
//! records an agent processes, written on every record an event produces
//! (sinks, replies, sends and asks from inside the agent), with the span
//! ids checked against what the agents saw through `trace_context()`.

mod common;

use std::time::Duration;

use common::{app, within};
use faust_core::trace_context::{SpanId, TraceContext, TraceId, TRACEPARENT, TRACESTATE};
use faust_core::transport::ConsumerEvent;
use faust_core::{
    record, AgentSpec, App, Error, Record, SendOptions, Sink, Stream, TopicPartition, Yield,
};
use tokio::sync::mpsc;

const KNOWN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn known() -> TraceContext {
    TraceContext::parse(KNOWN).unwrap()
}

/// The records of partition 0 of `topic`, the first `n`.
async fn records(app: &App, topic: &str, n: usize) -> Vec<Record> {
    let mut c = app
        .transport()
        .assign(vec![TopicPartition::new(topic, 0)])
        .await
        .unwrap();
    let mut out = Vec::new();
    within(10, &format!("{n} records of {topic}"), async {
        while out.len() < n {
            if let ConsumerEvent::Records(r) = c.poll().await.unwrap() {
                out.extend(r);
            }
        }
    })
    .await;
    out.truncate(n);
    out
}

/// The trace context a record carries.
fn carried(record: &Record) -> TraceContext {
    TraceContext::from_headers(&record.headers)
        .unwrap_or_else(|| panic!("no valid traceparent on {record:?}"))
}

/// What an agent saw: its name, the value and the event's trace context.
type Seen = (&'static str, i64, TraceContext);

async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    within(10, "an agent to see an event", rx.recv())
        .await
        .expect("agents gone")
}

/// An agent that reports each event's context and sinks the value to
/// the topic `out`.
fn reporting_sink(name: &'static str, out: &str, tx: mpsc::UnboundedSender<Seen>) -> AgentSpec {
    AgentSpec::yielding(name, move |mut s: Stream<i64>, y: Yield<i64>| {
        let tx = tx.clone();
        async move {
            while let Some(v) = s.next().await {
                let cx = faust_core::trace_context().expect("an event is current");
                tx.send((name, v, cx)).unwrap();
                y.send(v).await?;
            }
            Ok::<_, Error>(())
        }
    })
    .topic(format!("{name}-in"))
    .sink(Sink::<i64>::topic(out.to_string()))
}

#[tokio::test]
async fn a_sink_record_continues_the_trace_of_its_event() {
    let app = app("trace-sink").topic_partitions(1).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(reporting_sink("sinking", "sunk", tx))
        .unwrap();
    app.start().await.unwrap();
    let opts = SendOptions::default()
        .header(TRACEPARENT, KNOWN)
        .header(TRACESTATE, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    agent.send_with(&1, opts).await.unwrap();

    let (_, _, event) = next_seen(&mut rx).await;
    assert_eq!(event.trace_id(), known().trace_id(), "the record's trace");
    assert_eq!(
        event.parent_span_id(),
        Some(known().span_id()),
        "a child of the record's span"
    );
    assert_ne!(event.span_id(), known().span_id(), "a span of its own");
    assert!(event.is_sampled());

    let sunk = &records(&app, "sunk", 1).await[0];
    let out = carried(sunk);
    assert_eq!(out.trace_id(), known().trace_id());
    assert_eq!(
        out.span_id(),
        event.span_id(),
        "the sink record's parent is the event's span"
    );
    assert_eq!(
        record::header(&sunk.headers, TRACESTATE).map(|v| &v[..]),
        Some(&b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"[..]),
        "tracestate passed on unchanged"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_ask_carries_one_trace_to_the_reply() {
    let app = app("trace-ask").topic_partitions(1).build().unwrap();
    let echo = app
        .add_agent(
            AgentSpec::handler("echo", |_: i64| async {
                let cx = faust_core::trace_context().unwrap();
                Ok::<_, Error>((cx.to_string(), cx.parent_span_id().map(|p| p.to_string())))
            })
            .topic("echo-in"),
        )
        .unwrap();
    app.start().await.unwrap();
    // The caller's trace, as its tracing would set it.
    let opts = SendOptions::default().header(TRACEPARENT, KNOWN);
    let (seen, parent): (String, Option<String>) = echo.ask_with(&7, opts).await.unwrap();
    let event = TraceContext::parse(&seen).unwrap();

    let request = carried(&records(&app, "echo-in", 1).await[0]);
    assert_eq!(request.trace_id(), known().trace_id());
    assert_eq!(
        event.trace_id(),
        known().trace_id(),
        "the event is in the trace"
    );
    assert_eq!(parent, Some(request.span_id().to_string()));
    let reply_to = app.config().reply_to.clone();
    let reply = carried(&records(&app, &reply_to, 1).await[0]);
    assert_eq!(
        reply.trace_id(),
        request.trace_id(),
        "one trace id from request to reply"
    );
    assert_eq!(
        reply.span_id(),
        event.span_id(),
        "the reply's parent is the event's span"
    );

    // From outside any agent, with nothing recording traces: the request
    // carries no traceparent (no header for a trace nobody records); the
    // agent's trace_context() starts one, and its reply carries it.
    let (again, _): (String, Option<String>) = echo.ask(&8).await.unwrap();
    let fresh = TraceContext::parse(&again).unwrap();
    assert_ne!(fresh.trace_id(), event.trace_id());
    assert_eq!(fresh.parent_span_id(), None);
    let request = &records(&app, "echo-in", 2).await[1];
    assert_eq!(record::header(&request.headers, TRACEPARENT), None);
    let reply = carried(&records(&app, &reply_to, 2).await[1]);
    assert_eq!(reply.trace_id(), fresh.trace_id());
    app.stop().await.unwrap();
}

/// An event nobody traces (no traceparent, no recorded span, no
/// `trace_context()` call) produces records without one.
#[tokio::test]
async fn an_untraced_event_adds_no_header() {
    let app = app("trace-none").topic_partitions(1).build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::handler("plain", |x: i64| async move { Ok::<_, Error>(x + 1) })
                .topic("plain-in")
                .sink(Sink::<i64>::topic("plain-out")),
        )
        .unwrap();
    app.start().await.unwrap();
    let answer: i64 = agent.ask(&1).await.unwrap();
    assert_eq!(answer, 2);
    let out = records(&app, "plain-out", 1).await;
    assert_eq!(record::header(&out[0].headers, TRACEPARENT), None);
    let reply_to = app.config().reply_to.clone();
    let reply = &records(&app, &reply_to, 1).await[0];
    assert_eq!(record::header(&reply.headers, TRACEPARENT), None);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_chain_of_agents_keeps_one_trace() {
    let app = app("trace-chain").topic_partitions(1).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    // last <- (agent sink) middle <- (ask, then send) first
    let last_tx = tx.clone();
    app.add_agent(
        AgentSpec::consumer("last", move |mut s: Stream<i64>| {
            let tx = last_tx.clone();
            async move {
                while let Some(v) = s.next().await {
                    tx.send(("last", v, faust_core::trace_context().unwrap()))
                        .unwrap();
                }
                Ok::<_, Error>(())
            }
        })
        .topic("last-in"),
    )
    .unwrap();
    let middle_tx = tx.clone();
    let middle = app
        .add_agent(
            AgentSpec::handler("middle", move |v: i64| {
                let tx = middle_tx.clone();
                async move {
                    tx.send(("middle", v, faust_core::trace_context().unwrap()))
                        .unwrap();
                    Ok::<_, Error>(v + 1)
                }
            })
            .topic("middle-in")
            .sink(Sink::<i64>::agent("last")),
        )
        .unwrap();
    let first_tx = tx.clone();
    let first = app
        .add_agent(
            AgentSpec::handler("first", move |v: i64| {
                let (tx, middle) = (first_tx.clone(), middle.clone());
                async move {
                    tx.send(("first", v, faust_core::trace_context().unwrap()))
                        .unwrap();
                    let answer: i64 = middle.ask(&v).await?;
                    middle.cast(&(answer * 100)).await?;
                    Ok::<_, Error>(answer)
                }
            })
            .topic("first-in"),
        )
        .unwrap();
    app.start().await.unwrap();
    first
        .send_with(&1, SendOptions::default().header(TRACEPARENT, KNOWN))
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(next_seen(&mut rx).await);
    }
    seen.sort_by_key(|(_, v, _)| *v);
    let names: Vec<_> = seen.iter().map(|(n, v, _)| (*n, *v)).collect();
    // first(1) asks middle(1), whose reply 2 goes to last; first casts 200
    // to middle, whose 201 goes to last.
    assert_eq!(
        names,
        [
            ("first", 1),
            ("middle", 1),
            ("last", 2),
            ("middle", 200),
            ("last", 201)
        ]
    );
    let span = |i: usize| seen[i].2.span_id();
    for (name, v, cx) in &seen {
        assert_eq!(
            cx.trace_id(),
            known().trace_id(),
            "{name}({v}) is in the trace"
        );
    }
    assert_eq!(seen[0].2.parent_span_id(), Some(known().span_id()));
    assert_eq!(
        seen[1].2.parent_span_id(),
        Some(span(0)),
        "the ask from first's event"
    );
    assert_eq!(
        seen[2].2.parent_span_id(),
        Some(span(1)),
        "the sink of middle's event"
    );
    assert_eq!(
        seen[3].2.parent_span_id(),
        Some(span(0)),
        "the cast from first's event"
    );
    assert_eq!(seen[4].2.parent_span_id(), Some(span(3)));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_traceparent_is_ignored() {
    let app = app("trace-invalid").topic_partitions(1).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(reporting_sink("fresh", "fresh-out", tx))
        .unwrap();
    app.start().await.unwrap();
    let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    let opts = SendOptions::default()
        .header(TRACEPARENT, upper)
        .header(TRACESTATE, "congo=t61rcWkgMzE");
    agent.send_with(&1, opts).await.unwrap();
    // And a record without any: a new trace too.
    agent.send(&2).await.unwrap();

    let (_, _, first) = next_seen(&mut rx).await;
    let (_, _, second) = next_seen(&mut rx).await;
    for event in [&first, &second] {
        assert_eq!(event.parent_span_id(), None, "a new trace, not a child");
        assert_ne!(event.trace_id(), known().trace_id());
        assert_eq!(
            event.trace_state(),
            None,
            "tracestate dropped with its traceparent"
        );
    }
    assert_ne!(first.trace_id(), second.trace_id());
    let out = records(&app, "fresh-out", 2).await;
    assert_eq!(carried(&out[0]).trace_id(), first.trace_id());
    assert_eq!(carried(&out[0]).span_id(), first.span_id());
    assert_eq!(record::header(&out[0].headers, TRACESTATE), None);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_traceparent_set_by_the_user_wins() {
    let app = app("trace-user").topic_partitions(1).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let target = app
        .add_agent(reporting_sink("target", "target-out", tx))
        .unwrap();
    let forwarder = app
        .add_agent(
            AgentSpec::handler("forwarder", move |v: i64| {
                let target = target.clone();
                async move {
                    let mine = SendOptions::default().header(TRACEPARENT, KNOWN);
                    target.send_with(&v, mine).await?;
                    Ok::<_, Error>(())
                }
            })
            .topic("forwarder-in"),
        )
        .unwrap();
    app.start().await.unwrap();
    forwarder.send(&5).await.unwrap();
    let (_, v, event) = next_seen(&mut rx).await;
    assert_eq!(v, 5);
    assert_eq!(
        event.trace_id(),
        known().trace_id(),
        "the user's traceparent, not the event's"
    );
    assert_eq!(event.parent_span_id(), Some(known().span_id()));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_request_is_answered_within_its_trace() {
    let app = app("trace-error").topic_partitions(1).build().unwrap();
    let failing = app
        .add_agent(
            AgentSpec::handler("failing", |_: i64| async {
                Err::<i64, _>(Error::config("no"))
            })
            .topic("failing-in"),
        )
        .unwrap();
    app.start().await.unwrap();
    let opts = SendOptions::default()
        .header(TRACEPARENT, KNOWN)
        .timeout(Duration::from_secs(10));
    let err = failing.ask_with::<_, i64>(&1, opts).await.unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err}");
    let reply_to = app.config().reply_to.clone();
    let reply = carried(&records(&app, &reply_to, 1).await[0]);
    assert_eq!(reply.trace_id(), known().trace_id());
    assert_ne!(
        reply.span_id(),
        known().span_id(),
        "the failed event's span"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_send_from_outside_an_agent_adds_nothing() {
    let app = app("trace-outside").topic_partitions(1).build().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(reporting_sink("plain", "plain-out", tx))
        .unwrap();
    app.start().await.unwrap();
    agent.send(&1).await.unwrap();
    let sent = &records(&app, "plain-in", 1).await[0];
    assert_eq!(record::header(&sent.headers, TRACEPARENT), None);
    assert_eq!(
        faust_core::trace_context(),
        None,
        "no event outside an agent"
    );
    // Ids as the API builds them.
    let cx = TraceContext::new(
        TraceId::from_u128(1).unwrap(),
        SpanId::from_u64(2).unwrap(),
        false,
    );
    assert_eq!(
        cx.traceparent(),
        "00-00000000000000000000000000000001-0000000000000002-00"
    );
    app.stop().await.unwrap();
}
