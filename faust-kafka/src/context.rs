//! librdkafka client contexts: logs and errors go to `tracing`, and the last
//! client error is kept to explain later failures (an unreachable broker
//! shows up as "connection refused" here, and as a timeout elsewhere).

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

/// Forward one librdkafka log line to `tracing`.
pub(crate) fn forward_log(client: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    // Warnings about properties that do not apply to this kind of client
    // (a consumer property given to every client) are expected.
    if fac == "CONFWARN" {
        tracing::debug!(target: "librdkafka", client, fac, "{message}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", client, fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", client, fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", client, fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", client, fac, "{message}"),
    }
}

/// The last error a client reported, shared with whoever explains failures.
#[derive(Clone, Debug, Default)]
pub(crate) struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    pub(crate) fn set(&self, error: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `" (last client error: ...)"`, or nothing.
    pub(crate) fn suffix(&self) -> String {
        match self.get() {
            Some(e) => format!(" (last client error: {e})"),
            None => String::new(),
        }
    }
}

/// Context of the producer and the admin client.
#[derive(Clone, Debug)]
pub(crate) struct ClientCtx {
    pub(crate) name: &'static str,
    pub(crate) last_error: LastError,
}

impl ClientCtx {
    pub(crate) fn new(name: &'static str, last_error: LastError) -> Self {
        Self { name, last_error }
    }
}

impl ClientContext for ClientCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(self.name, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", client = self.name, %error, "{reason}");
        self.last_error.set(format!("{error}: {reason}"));
    }
}
