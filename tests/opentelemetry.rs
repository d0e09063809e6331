//! Feature `opentelemetry`: the events' spans exported over OTLP/HTTP (to
//! a collector this test runs), parented to the records' `traceparent`,
//! with the ids the produced records carry.

use std::time::Duration;

use faust::trace_context::{TraceContext, TRACEPARENT};
use faust::{App, Error, SendOptions, Sink, Stream, TopicPartition, Yield};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

const KNOWN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Read one HTTP/1.1 request (headers, then `Content-Length` bytes of
/// body) and answer 200; `None` when the connection closes first.
async fn one_request(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("the exporter sends a Content-Length");
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    conn.write_all(answer.as_bytes()).await.ok()?;
    Some(buf[head_end..head_end + length].to_vec())
}

/// An OTLP/HTTP collector on a free port: every span it receives.
async fn collector() -> (String, mpsc::UnboundedReceiver<Json>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(body) = one_request(&mut conn).await {
                    let request: Json = serde_json::from_slice(&body).unwrap();
                    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
                        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                            for span in scope["spans"].as_array().into_iter().flatten() {
                                let _ = tx.send(span.clone());
                            }
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

fn field<'a>(span: &'a Json, name: &str) -> &'a str {
    span[name].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_spans_are_exported_with_the_ids_records_carry() {
    let (url, mut spans) = collector().await;
    // The only test of this binary: the environment is its own.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &url);
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
    std::env::set_var("OTEL_SERVICE_NAME", "faust-otel-test");
    let layer = faust::telemetry::otlp_layer("info").expect("an endpoint is set");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();

    let app = App::builder("otel")
        .broker(format!("memory://otel-{}", std::process::id()))
        .topic_partitions(1)
        .build()
        .unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel::<TraceContext>();
    let agent = app
        .add_agent(
            faust::AgentSpec::yielding("traced", move |mut s: Stream<i64>, out: Yield<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(v) = s.next().await {
                        tx.send(faust::trace_context().unwrap()).unwrap();
                        out.send(v).await?;
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic("traced-in")
            .sink(Sink::<i64>::topic("traced-out")),
        )
        .unwrap();
    app.start().await.unwrap();

    // A record with a traceparent: the event's span is its child.
    agent
        .send_with(&1, SendOptions::default().header(TRACEPARENT, KNOWN))
        .await
        .unwrap();
    let event = within("the event", seen.recv()).await.unwrap();
    let known = TraceContext::parse(KNOWN).unwrap();
    assert_eq!(event.trace_id(), known.trace_id());
    assert_eq!(event.parent_span_id(), Some(known.span_id()));

    // A send within a span of the caller's: the request carries it.
    let client = tracing::info_span!("client");
    let send = async {
        agent.send(&2).await.unwrap();
    }
    .instrument(client.clone());
    send.await;
    let child = within("the second event", seen.recv()).await.unwrap();

    let mut out = app
        .transport()
        .assign(vec![TopicPartition::new("traced-out", 0)])
        .await
        .unwrap();
    let mut sunk = Vec::new();
    within("the sink records", async {
        while sunk.len() < 2 {
            if let faust::transport::ConsumerEvent::Records(r) = out.poll().await.unwrap() {
                sunk.extend(r);
            }
        }
    })
    .await;
    let carried = |i: usize| TraceContext::from_headers(&sunk[i].headers).unwrap();
    assert_eq!(
        carried(0).span_id(),
        event.span_id(),
        "the record names the event's span"
    );
    assert_eq!(carried(1).span_id(), child.span_id());

    drop(client);
    app.stop().await.unwrap();
    tokio::task::spawn_blocking(faust::telemetry::shutdown)
        .await
        .unwrap();

    let mut exported = Vec::new();
    while let Ok(span) = spans.try_recv() {
        exported.push(span);
    }
    let find = |id: &str| {
        exported
            .iter()
            .find(|s| field(s, "spanId") == id)
            .unwrap_or_else(|| panic!("span {id} not exported: {exported:#?}"))
    };
    let first = find(&event.span_id().to_string());
    assert_eq!(field(first, "name"), "event");
    assert_eq!(field(first, "traceId"), known.trace_id().to_string());
    assert_eq!(field(first, "parentSpanId"), known.span_id().to_string());
    let second = find(&child.span_id().to_string());
    let client = exported
        .iter()
        .find(|s| field(s, "name") == "client")
        .expect("the client span is exported");
    assert_eq!(
        field(second, "traceId"),
        field(client, "traceId"),
        "one trace from the caller"
    );
    assert_eq!(field(second, "parentSpanId"), field(client, "spanId"));
    assert_eq!(child.trace_id().to_string(), field(client, "traceId"));
}
