//! The Rust side of the interop tests with Python Faust (`tests/interop/`,
//! run by `scripts/suites/20-interop.sh`).
//!
//! ```text
//! interop serve    run the Rust agents the Python client calls; prints READY
//!                  once they answer, stops on SIGTERM/Ctrl-C
//! interop client   call the agents of the Python worker (tests/interop/py_worker.py)
//!                  and the Rust agents of `serve`; exit code 1 if a check fails
//! ```
//!
//! Environment: `INTEROP_BROKER` (default `kafka://127.0.0.1:9092`) and
//! `INTEROP_PREFIX` (prefix of every topic, app id and reply topic, unique per
//! test run; default `interop-manual-`).
//!
//! It also shows Rust structs that *are* Faust `Record`s:
//! `#[derive(faust::Record)]` on [`Add`], [`Total`] and [`Point`].

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use faust::{AgentSpec, App, Error, SendOptions, Stream};
use futures::StreamExt as _;
use serde_json::{json, Value};

// ---- Faust records ----------------------------------------------------------

/// `class Add(faust.Record, namespace="interop.Add")` in tests/interop/common.py:
/// on the wire `{"a":2,"b":3,"__faust":{"ns":"interop.Add"}}`.
#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "interop.Add")]
struct Add {
    a: i64,
    b: i64,
}

/// `class Total(faust.Record, namespace="interop.Total")`.
#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "interop.Total")]
struct Total {
    total: i64,
}

/// `class Point(faust.Record, namespace="interop.Point")`.
#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "interop.Point")]
struct Point {
    x: i64,
    y: i64,
}

/// `class Line(faust.Record, namespace="interop.Line")`: records nested in a
/// record, each with its own `__faust` marker.
#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "interop.Line")]
struct Line {
    start: Point,
    end: Point,
}

fn point(x: i64, y: i64) -> Point {
    Point { x, y }
}

/// The `shapes` agent: several record types on one topic, told apart by
/// their namespace. `Add` -> `Total`; `Line` -> its vector as a `Point`;
/// `Point` -> the `Line` from the origin to it (nested records out).
fn shapes(value: Value) -> Result<Value, String> {
    use faust::Record as _;
    let reply = match faust::model::namespace_of(&value) {
        Some(Add::NAMESPACE) => {
            let r: Add = serde_json::from_value(value).map_err(err)?;
            serde_json::to_value(Total { total: r.a + r.b })
        }
        Some(Line::NAMESPACE) => {
            let l: Line = serde_json::from_value(value).map_err(err)?;
            serde_json::to_value(point(l.end.x - l.start.x, l.end.y - l.start.y))
        }
        Some(Point::NAMESPACE) => {
            let p: Point = serde_json::from_value(value).map_err(err)?;
            serde_json::to_value(Line {
                start: point(0, 0),
                end: p,
            })
        }
        other => return Err(format!("not a shape record: namespace {other:?}")),
    };
    reply.map_err(err)
}

// ---- settings -----------------------------------------------------------------

struct Settings {
    broker: String,
    prefix: String,
}

impl Settings {
    fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        Self {
            broker: var("INTEROP_BROKER", "kafka://127.0.0.1:9092"),
            prefix: var("INTEROP_PREFIX", "interop-manual-"),
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn app(&self, role: &str, ask_timeout: Duration) -> faust::Result<App> {
        faust::app_builder(self.topic(role))
            .broker(self.broker.clone())
            .reply_to_prefix(self.topic("reply-"))
            .topic_partitions(4)
            .ask_timeout(ask_timeout)
            .build()
    }
}

// ---- serve: Rust agents for the Python client -------------------------------------

static COLLECTED: std::sync::Mutex<Vec<Value>> = std::sync::Mutex::new(Vec::new());
/// How many `Add` records the `adds` agent read, and the sum of their fields.
static ADDS_SEEN: std::sync::Mutex<(i64, i64)> = std::sync::Mutex::new((0, 0));

async fn serve(s: &Settings) -> anyhow::Result<()> {
    let app = s.app("rs", Duration::from_secs(60))?;
    let t = |name: &str| s.topic(&format!("rs-{name}"));
    // Every failed event (decode error, handler error) is reported here, with
    // the message's coordinates in the decode error.
    let report = |agent: &faust::Agent, err: &Error| {
        println!("ON_ERROR agent={} error={err}", agent.name());
    };
    let specs = [
        AgentSpec::handler("double", |x: i64| async move { Ok::<_, Error>(x * 2) })
            .topic(t("double")),
        AgentSpec::handler("shout", |s: String| async move {
            Ok::<_, Error>(s.to_uppercase())
        })
        .topic(t("shout")),
        AgentSpec::handler("total", |xs: Vec<i64>| async move {
            Ok::<_, Error>(xs.iter().sum::<i64>())
        })
        .topic(t("total")),
        AgentSpec::handler("keys", |o: serde_json::Map<String, Value>| async move {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            Ok::<_, Error>(json!({ "keys": keys, "count": o.len() }))
        })
        .topic(t("keys")),
        AgentSpec::handler("add", |r: Add| async move {
            Ok::<_, Error>(Total { total: r.a + r.b })
        })
        .topic(t("add")),
        AgentSpec::handler("shapes", |v: Value| async move { shapes(v) }).topic(t("shapes")),
        AgentSpec::handler("fail", |x: i64| async move {
            if x < 0 {
                Err(format!("negative input: {x}"))
            } else {
                Ok(x)
            }
        })
        .topic(t("fail")),
        AgentSpec::consumer("collect", |mut values: Stream<Value>| async move {
            while let Some(v) = values.next().await {
                COLLECTED.lock().unwrap().push(v);
            }
            Ok::<_, Error>(())
        })
        .topic(t("collect")),
        AgentSpec::handler("seen", |_: Value| async move {
            Ok::<_, Error>(COLLECTED.lock().unwrap().clone())
        })
        .topic(t("seen")),
        // Fed by a Faust app through a topic it declared with value_type=Add.
        AgentSpec::consumer("adds", |mut adds: Stream<Add>| async move {
            while let Some(add) = adds.next().await {
                let mut seen = ADDS_SEEN.lock().unwrap();
                seen.0 += 1;
                seen.1 += add.a + add.b;
            }
            Ok::<_, Error>(())
        })
        .topic(t("adds")),
        AgentSpec::handler("adds_seen", |_: Value| async move {
            let (count, sum) = *ADDS_SEEN.lock().unwrap();
            Ok::<_, Error>(vec![count, sum])
        })
        .topic(t("adds_seen")),
        // The trace context of the event: the caller's trace, if its
        // request carried a traceparent.
        AgentSpec::handler("trace", |_: Value| async move {
            let cx = faust::trace_context().expect("inside an agent");
            Ok::<_, Error>(json!({
                "trace_id": cx.trace_id().to_string(),
                "parent_span_id": cx.parent_span_id().map(|p| p.to_string()),
            }))
        })
        .topic(t("trace")),
    ];
    for spec in specs {
        app.add_agent(spec.on_error(report))?;
    }
    let t0 = Instant::now();
    app.start().await?;
    // Ready once a request makes the round trip through Kafka.
    let two: i64 = app.agent("double")?.ask(&1).await?;
    anyhow::ensure!(two == 2, "self-check: double(1) = {two}");
    println!("READY after {:.1} s", t0.elapsed().as_secs_f64());
    app.run().await?; // until SIGTERM / Ctrl-C
    println!("STOPPED");
    Ok(())
}

// ---- client: call the Python worker's agents --------------------------------------

const MODES: [(&str, bool); 2] = [("headers", true), ("envelope", false)];

/// A W3C traceparent, as a traced producer writes it.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Declare an agent that runs elsewhere (in Python, or in `serve`): this
/// app only sends it requests. `use_reply_headers` of this declaration picks
/// the request mode.
fn remote(name: &str, mode: &str, topic: String, headers: bool) -> AgentSpec {
    AgentSpec::remote(format!("{name}_{mode}"))
        .topic(topic)
        .use_reply_headers(headers)
}

/// Named checks with timings; every check is bounded by a deadline.
struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    async fn run(&mut self, name: &str, check: impl Future<Output = Result<(), String>>) {
        self.count += 1;
        let t0 = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(40), check)
            .await
            .unwrap_or_else(|_| Err("no result within 40 s".into()));
        let ms = t0.elapsed().as_millis();
        match result {
            Ok(()) => println!("[rs-client] ok   {name} ({ms} ms)"),
            Err(e) => {
                println!("[rs-client] FAIL {name} ({ms} ms): {e}");
                self.failures.push(name.to_string());
            }
        }
    }
}

fn expect<T: PartialEq + fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

fn err<E: fmt::Display>(e: E) -> String {
    e.to_string()
}

async fn client(s: &Settings) -> anyhow::Result<bool> {
    let app = s.app("rsclient", Duration::from_secs(20))?;
    for (mode, headers) in MODES {
        for name in ["triple", "echo", "scale", "evens", "seen", "trace", "otel"] {
            app.add_agent(remote(name, mode, s.topic(&format!("py-{name}")), headers))?;
        }
        for name in ["double", "fail"] {
            app.add_agent(remote(name, mode, s.topic(&format!("rs-{name}")), headers))?;
        }
    }
    let mut c = Checks {
        failures: Vec::new(),
        count: 0,
    };

    for (mode, _) in MODES {
        let a = |name: &str| {
            app.agent(&format!("{name}_{mode}"))
                .expect("declared above")
        };
        let (triple, echo, scale, evens) = (a("triple"), a("echo"), a("scale"), a("evens"));

        c.run(
            &format!("{mode}: a W3C traceparent reaches the Python agent as sent"),
            async {
                let opts = SendOptions::default().header("traceparent", TRACEPARENT);
                let got: Option<String> = a("trace").ask_with(&1, opts).await.map_err(err)?;
                expect(got.as_deref(), Some(TRACEPARENT))
            },
        )
        .await;
        c.run(
            &format!("{mode}: Faust's OpenTelemetry sensor puts the Python event in our trace"),
            async {
                let opts = SendOptions::default().header("traceparent", TRACEPARENT);
                let got: Value = a("otel").ask_with(&1, opts).await.map_err(err)?;
                let ids: Vec<&str> = TRACEPARENT.split('-').collect();
                expect(
                    (got["trace_id"].as_str(), got["parent_span_id"].as_str()),
                    (Some(ids[1]), Some(ids[2])),
                )
            },
        )
        .await;

        c.run(&format!("{mode}: ask triple(7) == 21"), async {
            expect(triple.ask::<_, i64>(&7).await.map_err(err)?, 21)
        })
        .await;
        c.run(
            &format!("{mode}: join triple over 1..=4 (input order)"),
            async {
                let got: Vec<i64> = triple.join(1..=4).await.map_err(err)?;
                expect(got, vec![3, 6, 9, 12])
            },
        )
        .await;
        c.run(&format!("{mode}: map triple over 0..10"), async {
            let mut got: Vec<i64> = triple
                .map::<_, i64, _>(0..10)
                .map(|r| r.map_err(err))
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
            got.sort_unstable();
            expect(got, (0..10).map(|i| i * 3).collect())
        })
        .await;
        for (value, py_type) in [
            (json!("héllo"), "str"),
            (json!(7), "int"),
            (json!(2.5), "float"),
            (json!(true), "bool"),
            (json!(null), "NoneType"),
            (json!([1, "a", null]), "list"),
            (json!({"k": [1, 2], "n": {"m": "x"}}), "dict"),
        ] {
            c.run(
                &format!("{mode}: ask echo({value}) arrives as a Python {py_type}"),
                async {
                    let got: Value = echo.ask(&value).await.map_err(err)?;
                    expect(got, json!({"type": py_type, "value": value}))
                },
            )
            .await;
        }
        c.run(
            &format!("{mode}: ask scale(Point struct) -> Point record"),
            async {
                let got: Point = scale.ask(&point(1, -2)).await.map_err(err)?;
                expect(got, point(2, -4))
            },
        )
        .await;
        c.run(&format!("{mode}: join scale over 3 Point structs"), async {
            let got: Vec<Point> = scale
                .join((0..3).map(|i| point(i, i + 1)))
                .await
                .map_err(err)?;
            expect(got, (0..3).map(|i| point(2 * i, 2 * i + 2)).collect())
        })
        .await;

        // Mismatches: clear errors on the asking side, never a hang.
        c.run(
            &format!("{mode}: reply of the wrong type is a decode error"),
            async {
                // Python happily computes "abc" * 3.
                match triple.ask::<_, i64>(&"abc").await {
                    Err(Error::DecodeValue { reason, .. }) if reason.contains("reply of agent") => {
                        Ok(())
                    }
                    other => Err(format!("want a reply decode error, got {other:?}")),
                }
            },
        )
        .await;
        c.run(
            &format!("{mode}: no reply from Python -> timeout, no hang"),
            async {
                let t0 = Instant::now();
                let opts = SendOptions::default().timeout(Duration::from_secs(2));
                match evens.ask_with::<_, i64>(&3, opts).await {
                    Err(Error::Timeout { .. }) if t0.elapsed() < Duration::from_secs(4) => Ok(()),
                    other => Err(format!(
                        "want a 2 s timeout, got {other:?} after {:?}",
                        t0.elapsed()
                    )),
                }
            },
        )
        .await;
        c.run(
            &format!("{mode}: Rust agent error -> Error::Remote"),
            async {
                match a("fail").ask::<_, i64>(&-1).await {
                    Err(Error::Remote { message, .. })
                        if message.contains("negative input: -1") =>
                    {
                        Ok(())
                    }
                    other => Err(format!("want Error::Remote, got {other:?}")),
                }
            },
        )
        .await;
        c.run(
            &format!("{mode}: undecodable request to Rust -> Error::Remote"),
            async {
                let opts = SendOptions::default().timeout(Duration::from_secs(5));
                match a("double").ask_with::<_, i64>(&"x", opts).await {
                    Err(Error::Remote { message, .. })
                        if message.contains("cannot decode message") =>
                    {
                        Ok(())
                    }
                    other => Err(format!(
                        "want Error::Remote naming the decode error, got {other:?}"
                    )),
                }
            },
        )
        .await;
    }

    // A join whose one request is never answered ends at the ask timeout.
    let short = s.app("rsclient-short", Duration::from_secs(3))?;
    let evens = short.add_agent(remote("evens", "short", s.topic("py-evens"), true))?;
    c.run(
        "join with a missing reply -> timeout at ask_timeout",
        async {
            let t0 = Instant::now();
            match evens.join::<_, i64, _>([2, 3, 4]).await {
                Err(Error::Timeout { what, .. }) if t0.elapsed() < Duration::from_secs(5) => {
                    if what.contains("2 of 3") {
                        Ok(())
                    } else {
                        Err(format!("timeout should count the replies: {what}"))
                    }
                }
                other => Err(format!(
                    "want a 3 s timeout, got {other:?} after {:?}",
                    t0.elapsed()
                )),
            }
        },
    )
    .await;

    // Plain values (no reply address) from app.send, consumed by a Python agent.
    let sent = [
        json!(42),
        json!("plain text"),
        json!({"from": "rust", "list": [1, 2]}),
    ];
    c.run("app.send plain JSON -> consumed by a Python agent", async {
        let inbox = s.topic("py-inbox");
        for v in &sent {
            app.send(&inbox, v).await.map_err(err)?;
        }
        let seen = app.agent("seen_headers").map_err(err)?;
        let mut want: Vec<String> = sent.iter().map(Value::to_string).collect();
        want.sort();
        loop {
            let got: Vec<Value> = seen.ask(&()).await.map_err(err)?;
            let mut got: Vec<String> = got.iter().map(Value::to_string).collect();
            got.sort();
            if got == want {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    println!(
        "[rs-client] {}/{} checks passed",
        c.count - c.failures.len(),
        c.count
    );
    Ok(c.failures.is_empty())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::from_env();
    match std::env::args().nth(1).as_deref() {
        Some("serve") => serve(&settings).await,
        Some("client") => {
            if client(&settings).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        _ => {
            eprintln!("usage: interop serve|client  (see examples/interop.rs)");
            std::process::exit(2)
        }
    }
}
