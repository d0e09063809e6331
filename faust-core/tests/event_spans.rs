//! The span of each event: what agent code logs while an event is current
//! carries the event's agent, topic, partition, offset and trace ids.
//!
//! The only test of its binary: it installs a subscriber for its thread,
//! and tests running meanwhile on other threads without one would race
//! with it over tracing's cached interest in the span.

mod common;

use common::{app, within};
use faust_core::trace_context::{TraceContext, TRACEPARENT};
use faust_core::{AgentSpec, Error, SendOptions, Stream};
use tokio::sync::mpsc;

const KNOWN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn known() -> TraceContext {
    TraceContext::parse(KNOWN).unwrap()
}

mod capture {
    //! A layer keeping, for each log line, its fields and the fields of
    //! the spans it is in.

    use std::collections::BTreeMap;
    use std::fmt;

    use tokio::sync::mpsc;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::layer::Context;
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::Layer;

    pub(crate) type Fields = BTreeMap<String, String>;

    /// One log line: its fields (`message` included) and its spans', the
    /// innermost first, each with its name.
    #[derive(Debug)]
    pub(crate) struct Line {
        pub(crate) fields: Fields,
        pub(crate) spans: Vec<(String, Fields)>,
    }

    pub(crate) struct Capture(pub(crate) mpsc::UnboundedSender<Line>);

    struct Visitor<'a>(&'a mut Fields);

    impl Visit for Visitor<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.to_string());
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = Fields::new();
            attrs.record(&mut Visitor(&mut fields));
            ctx.span(id).unwrap().extensions_mut().insert(fields);
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            let span = ctx.span(id).unwrap();
            let mut ext = span.extensions_mut();
            values.record(&mut Visitor(ext.get_mut::<Fields>().unwrap()));
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let mut fields = Fields::new();
            event.record(&mut Visitor(&mut fields));
            let spans = ctx
                .event_scope(event)
                .into_iter()
                .flatten()
                .map(|span| {
                    let fields = span
                        .extensions()
                        .get::<Fields>()
                        .cloned()
                        .unwrap_or_default();
                    (span.name().to_string(), fields)
                })
                .collect();
            let _ = self.0.send(Line { fields, spans });
        }
    }
}

/// Log lines, read as they come and kept for the next look.
struct Lines {
    rx: mpsc::UnboundedReceiver<capture::Line>,
    kept: Vec<capture::Line>,
}

impl Lines {
    /// The first `n` lines logged with `message` `what`.
    async fn with_message(&mut self, what: &str, n: usize) -> Vec<capture::Line> {
        let is = |l: &capture::Line| l.fields.get("message").map(String::as_str) == Some(what);
        within(10, &format!("{n} lines `{what}`"), async {
            while self.kept.iter().filter(|l| is(l)).count() < n {
                let line = self.rx.recv().await.expect("subscriber gone");
                self.kept.push(line);
            }
        })
        .await;
        let (mut found, rest): (Vec<_>, Vec<_>) = self.kept.drain(..).partition(is);
        self.kept = rest;
        found.truncate(n);
        found
    }
}

// A current-thread runtime: every actor runs on this thread, under the
// test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn agent_code_runs_in_the_span_of_its_event() {
    use tracing_subscriber::layer::SubscriberExt;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut lines = Lines {
        rx,
        kept: Vec::new(),
    };
    let subscriber = tracing_subscriber::registry()
        .with(capture::Capture(tx))
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _default = tracing::subscriber::set_default(subscriber);

    let app = app("trace-spans").topic_partitions(1).build().unwrap();
    let consumer = app
        .add_agent(
            AgentSpec::consumer("spans", |mut s: Stream<i64>| async move {
                while let Some(v) = s.next().await {
                    let cx = faust_core::trace_context().unwrap();
                    tracing::info!(v, seen = %cx.span_id(), "consumed");
                    // Still within it after an await that waits.
                    tokio::task::yield_now().await;
                    tracing::info!(v, "after a wait");
                }
                Ok::<_, Error>(())
            })
            .topic("spans-in"),
        )
        .unwrap();
    let handler = app
        .add_agent(
            AgentSpec::handler("handled", |v: i64| async move {
                let cx = faust_core::trace_context().unwrap();
                tracing::info!(v, seen = %cx.span_id(), "handled");
                Ok::<_, Error>(v)
            })
            .topic("handled-in"),
        )
        .unwrap();
    app.start().await.unwrap();
    consumer
        .send_with(&0, SendOptions::default().header(TRACEPARENT, KNOWN))
        .await
        .unwrap();
    consumer.send(&1).await.unwrap();
    consumer.send(&2).await.unwrap();

    let consumed = lines.with_message("consumed", 3).await;
    for (offset, line) in consumed.iter().enumerate() {
        let (name, span) = line
            .spans
            .first()
            .unwrap_or_else(|| panic!("no span: {consumed:?}"));
        assert_eq!(name, "event", "{line:?}");
        assert_eq!(span["agent"], "spans");
        assert_eq!(span["topic"], "spans-in");
        assert_eq!(span["partition"], "0");
        assert_eq!(
            span["offset"],
            offset.to_string(),
            "the span of its own event"
        );
        assert_eq!(
            span["span_id"], line.fields["seen"],
            "the span's id is the context's"
        );
        assert_eq!(
            line.spans.len(),
            1,
            "not nested in the previous event's span"
        );
    }
    assert_eq!(
        consumed[0].spans[0].1["trace_id"],
        known().trace_id().to_string()
    );
    assert_ne!(
        consumed[1].spans[0].1["trace_id"],
        known().trace_id().to_string()
    );
    let after = lines.with_message("after a wait", 3).await;
    for (offset, line) in after.iter().enumerate() {
        assert_eq!(line.spans[0].1["offset"], offset.to_string(), "{line:?}");
    }

    let _: i64 = handler.ask(&9).await.unwrap();
    let handled = &lines.with_message("handled", 1).await[0];
    let (name, span) = &handled.spans[0];
    assert_eq!(
        (name.as_str(), span["agent"].as_str()),
        ("event", "handled")
    );
    assert_eq!(span["span_id"], handled.fields["seen"]);
    app.stop().await.unwrap();
}
