//! The web endpoint: what a worker tells over HTTP (Faust's web server,
//! on axum). Off unless asked: `worker --web-port 6066`, or [`serve`].
//!
//! | path | answer |
//! |---|---|
//! | `/metrics` | every metric in the Prometheus text format (OpenMetrics if the scraper asks for it) |
//! | `/health` | `200` while the process serves requests |
//! | `/ready` | `200` when the app is ready (started, partitions assigned, none stalled), else `503`; the body says why ([`Health`](faust_core::Health)) |
//! | `/agents` | the `agents --json` listing, each agent with its counters |
//! | `/tracebacks` | where every actor is suspended (`human_tracebacks`) |
//!
//! ```no_run
//! # async fn demo(app: faust::App) -> faust::Result<()> {
//! let web = faust::web::serve(app, ([127, 0, 0, 1], 6066).into()).await?;
//! println!("metrics on http://{}/metrics", web.local_addr());
//! web.stop().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use faust_core::metrics::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use faust_core::{App, Error, Result};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Faust's default web port.
pub const DEFAULT_PORT: u16 = 6066;

/// How long [`WebServer::stop`] waits for requests being answered.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// The endpoint's routes for `app`, to serve yourself or to merge into an
/// axum app of your own.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/agents", get(agents))
        .route("/tracebacks", get(tracebacks))
        .with_state(app)
}

/// A running web endpoint ([`serve`]).
#[derive(Debug)]
pub struct WebServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Serve `app`'s endpoint on `addr` (port 0: any free port) until
/// [`WebServer::stop`]. An address that cannot be bound is an
/// [`Error::Config`] naming it.
pub async fn serve(app: App, addr: SocketAddr) -> Result<WebServer> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::config(format!("web endpoint: cannot listen on {addr}: {e}")))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let routes = router(app);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, routes)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "web endpoint failed");
        }
    });
    tracing::info!(%addr, "web endpoint listening");
    Ok(WebServer {
        addr,
        stop: Some(stop),
        task,
    })
}

impl WebServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop listening, and let requests being answered finish (for up to
    /// 5 s).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(STOP_DEADLINE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn index() -> &'static str {
    "faust for Rust: /metrics /health /ready /agents /tracebacks\n"
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if openmetrics {
        (app.metrics().encode_openmetrics(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (app.metrics().encode(), PROMETHEUS_CONTENT_TYPE)
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn health(State(app): State<App>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "alive",
        "app": app.id(),
        // Never waits for a start or a stop in progress.
        "running": app.is_started(),
    }))
}

async fn ready(State(app): State<App>) -> Response {
    let health = app.health().await;
    let status = if health.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

async fn agents(State(app): State<App>) -> Json<Vec<serde_json::Value>> {
    let rows = app
        .agents()
        .all()
        .iter()
        .filter(|a| !a.is_remote())
        .map(|a| {
            let mut row = crate::listing::agent_row(a);
            let s = a.stats();
            row["stats"] = serde_json::json!({
                "events_received": s.events_received(),
                "events_processed": s.events_processed(),
                "events_failed": s.events_failed(),
                "events_dead_lettered": s.events_dead_lettered(),
                "values_produced": s.values_out(),
                "errors": s.errors(),
                "crashes": s.crashes(),
                "restarts": s.restarts(),
                "actors": a.actor_count(),
                "queue_depth": a.queue_depth(),
                "asks": s.asks(),
                "mean_ask_seconds": s.mean_ask_latency().map(|d| d.as_secs_f64()),
            });
            row
        })
        .collect();
    Json(rows)
}

async fn tracebacks(State(app): State<App>) -> String {
    app.agents().human_tracebacks()
}
