//! Feature `opentelemetry`: the events' spans exported over OTLP/HTTP.
//!
//! [`faust::run()`](crate::run) and [`Cli`](crate::Cli) install
//! [`otlp_layer`] next to their log output when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set, and flush it with [`shutdown`] when the command ends. An app
//! with a subscriber of its own adds the layer itself.
//!
//! The standard variables apply: `OTEL_EXPORTER_OTLP_PROTOCOL`
//! (`http/protobuf`, the default, or `http/json`),
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_SERVICE_NAME` (default: the executable's name),
//! `OTEL_RESOURCE_ATTRIBUTES`, and the `OTEL_BSP_*` settings of the
//! batch exporter.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// The provider [`otlp_layer`] made, flushed by [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

const ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];
const PROTOCOLS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
];

fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// A layer exporting spans over OTLP/HTTP, or `None` when no OTLP
/// endpoint is set (or the exporter cannot be built: the error is
/// printed on stderr and the app runs without it).
///
/// The layer records the spans `directives` enable (an `EnvFilter` string
/// such as `info`) plus every event's span ([`faust::EVENT_TARGET`](crate::EVENT_TARGET)
/// at DEBUG), whatever the log output shows. Install it once per process.
pub fn otlp_layer<S>(directives: &str) -> Option<impl Layer<S>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if !ENDPOINTS.iter().any(|v| is_set(v)) {
        return None;
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder();
    let exporter = if PROTOCOLS.iter().any(|v| is_set(v)) {
        exporter.build()
    } else {
        // The specification's default, over the crate's (JSON).
        exporter
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
    };
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("faust: no OpenTelemetry export: {e}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !is_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(crate::cli::executable_name());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("faust");
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    if PROVIDER.set(provider).is_err() {
        eprintln!("faust: the OpenTelemetry layer is installed twice; the second exports nothing");
        return None;
    }
    let filter = EnvFilter::try_new(format!("{directives},{}=debug", crate::EVENT_TARGET))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{}=debug", crate::EVENT_TARGET)));
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(filter),
    )
}

/// Export the spans still buffered and stop the exporter (a no-op
/// without [`otlp_layer`]). Spans ended later are not exported.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("faust: OpenTelemetry export at shutdown: {e}");
        }
    }
}
