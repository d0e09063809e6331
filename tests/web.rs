//! The web endpoint through the public API, scraped by a real HTTP client:
//! metrics after a known workload (parsed as Prometheus text), readiness
//! flipping while an agent is stuck on an event, and the worker's
//! `--web-port`/`--web-bind` (off by default, loopback unless told).

#![cfg(feature = "web")]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use faust::{AgentSpec, App, Error};
use tokio::sync::Notify;

mod common;
use common::within;

const SUITE: &str = "web";

/// One sample of a scrape: metric name and labels, sorted.
type Sample = (String, Vec<(String, String)>);

/// Parse the Prometheus text format (version 0.0.4): every sample, and
/// the `# TYPE` of every family. Panics on a line that is not valid.
fn parse(text: &str) -> (HashMap<Sample, f64>, HashMap<String, String>) {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') {
            assert!(line.starts_with("# HELP "), "unknown comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels: Vec<(String, String)> = body
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").expect("label");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                labels.sort();
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {name}"
        );
        samples.insert((name, labels), value);
    }
    (samples, types)
}

fn get(samples: &HashMap<Sample, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    *samples
        .get(&(name.to_string(), labels.clone()))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// Sum of a metric over every label set.
fn sum(samples: &HashMap<Sample, f64>, name: &str) -> f64 {
    samples
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

/// An app on an embedded broker of its own, with these settings.
fn app(id: &str, build: impl FnOnce(faust::AppBuilder) -> faust::AppBuilder) -> App {
    let broker = format!("memory://{SUITE}-{id}-{}", std::process::id());
    build(App::builder(id).broker(broker)).build().unwrap()
}

async fn scrape(base: &str) -> (HashMap<Sample, f64>, HashMap<String, String>) {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&response.text().await.unwrap())
}

/// Poll `check` until it holds (a scrape has no event to wait on), failing
/// after 10 s.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn metrics_scraped_over_http_count_a_known_workload() {
    let app = app("counted", |b| b.dead_letter_topic("counted-dlq"));
    let agent = app
        .add_agent(
            AgentSpec::handler("double", |x: i64| async move {
                if x < 0 {
                    return Err(Error::user(format!("negative: {x}")));
                }
                Ok::<_, Error>(x * 2)
            })
            .topic("numbers"),
        )
        .unwrap();
    app.start().await.unwrap();
    let (web, base) = serve(&app).await;
    for x in 1..=10i64 {
        let y: i64 = within("ask", agent.ask(&x)).await.unwrap();
        assert_eq!(y, 2 * x);
    }
    for x in 1..=5i64 {
        let failed = within("ask", agent.ask::<_, i64>(&-x)).await;
        assert!(matches!(failed, Err(Error::Remote { .. })), "{failed:?}");
    }
    // Each ask was answered, so its event is done; the commit follows on
    // the commit cadence.
    until("every offset committed", || async {
        sum(&scrape(&base).await.0, "faust_partition_committed_offset") == 15.0
    })
    .await;
    let (m, types) = scrape(&base).await;
    let double = [("agent", "double")];
    assert_eq!(get(&m, "faust_agent_events_received_total", &double), 15.0);
    assert_eq!(get(&m, "faust_agent_events_processed_total", &double), 10.0);
    assert_eq!(get(&m, "faust_agent_events_failed_total", &double), 5.0);
    assert_eq!(
        get(&m, "faust_agent_events_dead_lettered_total", &double),
        5.0
    );
    assert_eq!(get(&m, "faust_agent_values_produced_total", &double), 10.0);
    assert_eq!(get(&m, "faust_agent_errors_total", &double), 5.0);
    assert_eq!(get(&m, "faust_agent_crashes_total", &double), 0.0);
    assert_eq!(get(&m, "faust_agent_actors", &double), 1.0);
    assert_eq!(get(&m, "faust_agent_queue_depth", &double), 0.0);
    // Asked one at a time, each event was waited for, so each was timed.
    assert_eq!(
        get(&m, "faust_agent_event_processing_seconds_count", &double),
        15.0
    );
    let inf = [("agent", "double"), ("le", "+Inf")];
    assert_eq!(
        get(&m, "faust_agent_event_processing_seconds_bucket", &inf),
        15.0
    );
    assert_eq!(types["faust_agent_event_processing_seconds"], "histogram");
    assert_eq!(types["faust_agent_events_received_total"], "counter");
    assert_eq!(get(&m, "faust_app_asks_sent_total", &[]), 15.0);
    assert_eq!(get(&m, "faust_app_asks_answered_total", &[]), 15.0);
    assert_eq!(get(&m, "faust_app_asks_timed_out_total", &[]), 0.0);
    assert_eq!(get(&m, "faust_app_ask_duration_seconds_count", &[]), 15.0);
    assert!(get(&m, "faust_app_ask_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(get(&m, "faust_app_replies_received_total", &[]), 15.0);
    assert!(get(&m, "faust_app_commits_total", &[]) >= 1.0);
    assert!(get(&m, "faust_app_rebalances_total", &[]) >= 1.0);
    let partitions = get(&m, "faust_app_assigned_partitions", &[]);
    assert!(partitions >= 8.0, "{partitions}");
    // Every record of the topic is committed: no lag anywhere.
    assert_eq!(sum(&m, "faust_partition_end_offset"), 15.0);
    assert_eq!(sum(&m, "faust_partition_lag"), 0.0);
    assert_eq!(sum(&m, "faust_partition_stalled"), 0.0);
    assert_eq!(sum(&m, "faust_partition_oldest_in_flight_age_seconds"), 0.0);

    // The same numbers as OpenMetrics, for a scraper that asks for it.
    let open = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(open.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let body = open.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("faust_agent_events_processed_total{agent=\"double\"} 10"));

    // The agents listing with their counters.
    let agents: serde_json::Value = reqwest::get(format!("{base}/agents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(agents[0]["name"], "@double");
    assert_eq!(agents[0]["topic"], "numbers");
    assert_eq!(agents[0]["stats"]["events_processed"], 10);
    assert_eq!(agents[0]["stats"]["events_dead_lettered"], 5);
    assert_eq!(status(&base, "/health").await, 200);
    let tracebacks = reqwest::get(format!("{base}/tracebacks"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(tracebacks.contains("double"), "{tracebacks}");
    web.stop().await;
    app.stop().await.unwrap();
}

/// The user's own metrics are served next to the runtime's.
#[tokio::test]
async fn metrics_registered_by_the_user_are_served_with_the_apps() {
    use faust::metrics::prometheus_client::metrics::counter::Counter;
    let app = app("own", |b| b);
    let orders: Counter = Counter::default();
    app.metrics()
        .register("shop_orders", "Orders taken", orders.clone());
    orders.inc_by(3);
    let (web, base) = serve(&app).await;
    let (m, _) = scrape(&base).await;
    assert_eq!(get(&m, "shop_orders_total", &[]), 3.0);
    web.stop().await;
}

/// The status code of a GET of `path`.
async fn status(base: &str, path: &str) -> u16 {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Serve `app`'s endpoint on a free loopback port; its base URL.
async fn serve(app: &App) -> (faust::web::WebServer, String) {
    let web = faust::web::serve(app.clone(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let base = format!("http://{}", web.local_addr());
    (web, base)
}

async fn ready(base: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{base}/ready")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Log lines written while it is installed on this thread (the tests run
/// on a current-thread runtime: every task of the app logs here).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn readiness_flips_while_an_agent_is_stuck_on_an_event() {
    let logs = Logs::default();
    let _logging = logs.install();
    let app = app("stuck", |b| b.stall_timeout(Duration::from_millis(300)));
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let agent = app
        .add_agent(
            AgentSpec::handler("stuck", move |x: String| {
                let gate = gate.clone();
                async move {
                    if x == "block" {
                        gate.notified().await;
                    }
                    Ok::<_, Error>(x)
                }
            })
            .topic("work")
            .partitions(1),
        )
        .unwrap();
    let (web, base) = serve(&app).await;
    // Not started yet: alive, not ready.
    assert_eq!(status(&base, "/health").await, 200);
    let (status, body) = ready(&base).await;
    assert_eq!(status, 503);
    assert_eq!(body["problems"][0], "the app is not running");

    app.start().await.unwrap();
    until("ready once started and assigned", || async {
        ready(&base).await.0 == 200
    })
    .await;
    agent.send(&"first").await.unwrap();
    agent.send(&"block").await.unwrap();
    agent.send(&"after").await.unwrap();
    until("not ready while the event is stuck", || async {
        ready(&base).await.0 == 503
    })
    .await;
    let (_, body) = ready(&base).await;
    assert_eq!(body["ready"], false);
    let stall = &body["stalls"][0];
    assert_eq!(stall["topic"], "work");
    assert_eq!(stall["partition"], 0);
    assert_eq!(stall["offset"], 1, "{body}");
    assert_eq!(stall["in_flight"], true);
    assert_eq!(stall["holder"], "Agent*: stuck");
    let problem = body["problems"][0].as_str().unwrap();
    assert!(
        problem.starts_with("partition work[0] stalled for"),
        "{problem}"
    );
    let (m, _) = scrape(&base).await;
    let work = [("partition", "0"), ("topic", "work")];
    assert_eq!(get(&m, "faust_partition_stalled", &work), 1.0);
    assert!(get(&m, "faust_partition_oldest_in_flight_age_seconds", &work) >= 0.3);
    // The warning names the agent, the actor, the partition and the offset,
    // and says where the actor is suspended (logged at the watch's next
    // look, which may follow the answer of `/ready`).
    until("the stall warning", || async {
        logs.text().contains("COMMIT OFFSET NOT ADVANCING")
    })
    .await;
    let text = logs.text();
    let at = text
        .find("COMMIT OFFSET NOT ADVANCING")
        .unwrap_or_else(|| panic!("no stall warning in {text}"));
    // The warning up to the next log line (its traceback spans lines).
    let warning = &text[text[..at].rfind('\n').map_or(0, |i| i + 1)..];
    let warning = &warning[..warning.find("\n20").unwrap_or(warning.len())];
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("agent=stuck"), "{warning}");
    assert!(warning.contains("actor=Agent*: stuck"), "{warning}");
    assert!(warning.contains("partition=work[0]"), "{warning}");
    assert!(warning.contains("offset=1"), "{warning}");
    assert!(warning.contains("traceback="), "{warning}");

    release.notify_one();
    until("ready again once the event is done", || async {
        ready(&base).await.0 == 200
    })
    .await;
    let (m, _) = scrape(&base).await;
    assert_eq!(get(&m, "faust_partition_stalled", &work), 0.0);
    until("the watch says the partition moves again", || async {
        logs.text().contains("partition makes progress again")
    })
    .await;
    until("every event processed", || async {
        agent.stats().events_processed() == 3
    })
    .await;
    web.stop().await;
    app.stop().await.unwrap();
}

/// The worker of the `quickstart` example with `args`, until its banner
/// names the web endpoint (or, without one, the app started); returns the
/// endpoint's address if any, and the child to stop.
fn start_worker(args: &[&str]) -> (Option<String>, Worker, String) {
    use std::io::{BufRead, BufReader};
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/quickstart");
    assert!(bin.exists(), "build the example first: {}", bin.display());
    let mut child = Command::new(bin)
        .arg("worker")
        .args(args)
        .env_remove("FAUST_BROKER")
        .env_remove("FAUST_WEB_PORT")
        .env_remove("FAUST_WEB_BIND")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut web = None;
    let mut seen = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if let Some(url) = line.strip_prefix("web:") {
            web = Some(url.trim().trim_end_matches('/').to_string());
        }
        if line.contains("app started") {
            break;
        }
    }
    // Keep reading its log, or its writes would fail.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    (web, Worker { child, rest }, seen)
}

/// A running worker and the reader of the rest of its log.
struct Worker {
    child: std::process::Child,
    rest: std::thread::JoinHandle<Vec<String>>,
}

/// Stop the worker as an orchestrator does; it must stop gracefully.
fn sigterm(mut worker: Worker) {
    let status = Command::new("kill")
        .args(["-TERM", &worker.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = worker.child.wait().unwrap();
    let rest = worker.rest.join().unwrap();
    assert!(exit.success(), "{exit:?} {rest:?}");
}

#[tokio::test]
async fn the_worker_serves_the_endpoint_on_loopback_only_when_asked() {
    let (web, child, banner) = tokio::task::spawn_blocking(|| start_worker(&[]))
        .await
        .unwrap();
    assert_eq!(web, None, "{banner}");
    sigterm(child);

    let (web, child, banner) = tokio::task::spawn_blocking(|| start_worker(&["--web-port", "0"]))
        .await
        .unwrap();
    let base = web.unwrap_or_else(|| panic!("no web line: {banner}"));
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!(status(&base, "/health").await, 200);
    let (m, _) = scrape(&base).await;
    assert!(m
        .keys()
        .any(|(n, _)| n == "faust_agent_events_received_total"));
    until("the worker is ready", || async {
        ready(&base).await.0 == 200
    })
    .await;
    sigterm(child);

    let (web, child, banner) =
        tokio::task::spawn_blocking(|| start_worker(&["--web-port", "0", "--web-bind", "0.0.0.0"]))
            .await
            .unwrap();
    let base = web.unwrap_or_else(|| panic!("no web line: {banner}"));
    assert!(base.starts_with("http://0.0.0.0:"), "{base}");
    sigterm(child);
}

/// A start that waits for a broker holds the app's state: the endpoint
/// answers anyway (alive, not ready) instead of waiting with it.
#[tokio::test]
async fn the_endpoint_answers_while_the_app_is_still_starting() {
    // Nothing listens on port 1: creating the agent's topic waits for the
    // broker deadline.
    let app = faust::app_builder("web-starting")
        .broker("kafka://127.0.0.1:1")
        .broker_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    app.add_agent(
        AgentSpec::handler("idle", |x: i64| async move { Ok::<_, Error>(x) }).topic("idle-in"),
    )
    .unwrap();
    let starting = tokio::spawn({
        let app = app.clone();
        async move { app.start().await }
    });
    let (web, base) = serve(&app).await;
    until("the start is under way", || async {
        ready(&base).await.1["problems"][0] == "the app is starting or stopping"
    })
    .await;
    let health: serde_json::Value = within("/health", reqwest::get(format!("{base}/health")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "alive");
    assert_eq!(health["running"], false);
    assert_eq!(within("/ready", ready(&base)).await.0, 503);
    starting.abort();
    web.stop().await;
}
