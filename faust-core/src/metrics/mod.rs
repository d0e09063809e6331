//! Metrics: the app's counters and histograms, exported in the Prometheus
//! text format (and OpenMetrics) by [`Metrics::encode`].
//!
//! Built on `prometheus-client` (the Prometheus project's Rust client):
//! each app has a registry of its own, so several apps in one process (or
//! in one test) never mix their numbers, and no global recorder is
//! installed behind the user's back. The runtime's numbers live in plain
//! atomics where they are counted and are read only when scraped.

pub(crate) mod app;
pub(crate) mod histogram;

use std::fmt;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::registry::{Metric, Registry};

use crate::sync::Mutex;

pub use prometheus_client;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;
/// The `Content-Type` of [`Metrics::encode_openmetrics`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An app's metrics registry: the runtime's `faust_*` metrics and any the
/// user registers. Cheap to clone (a shared handle).
///
/// ```
/// # use faust_core as faust;
/// use faust::metrics::prometheus_client::metrics::counter::Counter;
/// let app = faust::App::builder("doc-metrics").broker("memory://doc-metrics").build()?;
/// let orders: Counter = Counter::default();
/// app.metrics().register("shop_orders", "Orders taken", orders.clone());
/// orders.inc();
/// let text = app.metrics().encode();
/// assert!(text.contains("shop_orders_total 1"));
/// assert!(text.contains("faust_app_rebalances_total"));
/// # Ok::<(), faust::Error>(())
/// ```
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl Metrics {
    pub(crate) fn new(collector: impl Collector) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        Self {
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// Register a metric of your own (any `prometheus-client` metric),
    /// exported with the app's.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().register(name, help, metric);
    }

    /// Register a collector of your own, called on every scrape.
    pub fn register_collector(&self, collector: impl Collector) {
        self.registry.lock().register_collector(Box::new(collector));
    }

    /// Every metric now, in the Prometheus text format (version 0.0.4,
    /// [`PROMETHEUS_CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, nor can our collectors.
        let _ = prometheus_text::encode(&mut out, &self.registry.lock());
        out
    }

    /// Every metric now, in the OpenMetrics text format
    /// ([`OPENMETRICS_CONTENT_TYPE`]).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        let _ = openmetrics_text::encode(&mut out, &self.registry.lock());
        out
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The clock durations are measured with: the CPU's time-stamp counter
/// where it is reliable (a read costs about half of the system clock's).
pub(crate) fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}
