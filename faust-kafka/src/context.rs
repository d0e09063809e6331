//! librdkafka client contexts: logs and errors go to `tracing` (repeated
//! warnings rate-limited), and the errors every client of a transport
//! reports are kept in one place to explain later failures (an unreachable
//! broker shows up as "Failed to resolve" or "connection refused" there,
//! and as a bare transport failure or a timeout elsewhere).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The same warning from the same client is logged at most once per window.
const LOG_WINDOW: Duration = Duration::from_secs(10);

/// The errors the clients of one transport (producer, admin client, every
/// consumer) reported, shared by all of them and by whoever explains
/// failures. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct LastError(Arc<ErrorState>);

#[derive(Debug, Default)]
struct ErrorState {
    errors: Mutex<Errors>,
    /// Rung once, when a fatal error is first recorded.
    fatal_set: tokio::sync::Notify,
    logs: Mutex<RateLimit>,
    /// Run (once) when the producer reports a fatal error.
    on_producer_fatal: Hook,
    /// Set when the transport is dropped.
    closed: Mutex<bool>,
    closed_cv: Condvar,
}

/// What to run when the producer reports a fatal error.
pub(crate) type FatalHook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Hook(Mutex<Option<FatalHook>>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

impl Hook {
    fn take(&self) -> Option<FatalHook> {
        self.0.lock().take()
    }
}

#[derive(Debug, Default)]
struct Errors {
    /// The last error, whatever it was.
    last: Option<String>,
    /// The last error that says why (not "all brokers are down").
    cause: Option<String>,
    /// The first error that waiting will not cure: failed authentication,
    /// a broker certificate that does not verify.
    fatal: Option<String>,
}

impl LastError {
    /// Record an error (a failed poll, a rebalance error).
    pub(crate) fn set(&self, error: String) {
        let mut errors = self.lock();
        errors.cause = Some(error.clone());
        errors.last = Some(error);
    }

    fn lock(&self) -> MutexGuard<'_, Errors> {
        self.0.errors.lock()
    }

    /// Record an error a client reported through librdkafka's error
    /// callback; a fatal one wakes [`wait_fatal`](Self::wait_fatal), and if
    /// the producer reported it, runs the hook of
    /// [`on_producer_fatal`](Self::on_producer_fatal).
    pub(crate) fn record(&self, client: &str, error: &KafkaError, reason: &str) {
        let text = format!("{reason} ({error})");
        let fatal = is_fatal(error.rdkafka_error_code(), reason);
        let mut errors = self.lock();
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown)
            || errors.cause.is_none()
        {
            errors.cause = Some(text.clone());
        }
        errors.last = Some(text.clone());
        if fatal && errors.fatal.is_none() {
            errors.fatal = Some(text);
            drop(errors);
            self.0.fatal_set.notify_waiters();
        } else {
            drop(errors);
        }
        if fatal && client == "producer" {
            if let Some(hook) = self.0.on_producer_fatal.take() {
                hook();
            }
        }
    }

    /// Run `hook` (once, on the reporting thread) when the producer reports
    /// a fatal error. Dropped unrun by [`close`](Self::close).
    pub(crate) fn on_producer_fatal(&self, hook: FatalHook) {
        *self.0.on_producer_fatal.0.lock() = Some(hook);
    }

    /// The transport is gone: drop the hook, wake
    /// [`wait_closed`](Self::wait_closed).
    pub(crate) fn close(&self) {
        drop(self.0.on_producer_fatal.take());
        *self.0.closed.lock() = true;
        self.0.closed_cv.notify_all();
    }

    /// Wait until [`close`](Self::close), at most `timeout`; `true` if closed.
    pub(crate) fn wait_closed(&self, timeout: Duration) -> bool {
        let mut closed = self.0.closed.lock();
        self.0
            .closed_cv
            .wait_while_for(&mut closed, |closed| !*closed, timeout);
        *closed
    }

    /// The best explanation: the fatal error, or the last one that says
    /// why, or the last one.
    pub(crate) fn get(&self) -> Option<String> {
        let errors = self.lock();
        errors
            .fatal
            .clone()
            .or_else(|| errors.cause.clone())
            .or_else(|| errors.last.clone())
    }

    /// `" (last client error: ...)"`, or nothing.
    pub(crate) fn suffix(&self) -> String {
        match self.get() {
            Some(e) => format!(" (last client error: {e})"),
            None => String::new(),
        }
    }

    /// The fatal error, if one was recorded.
    pub(crate) fn fatal(&self) -> Option<String> {
        self.lock().fatal.clone()
    }

    /// Completes with the fatal error once one is recorded (at once if one
    /// was). Cancel-safe.
    pub(crate) async fn wait_fatal(&self) -> String {
        loop {
            let set = self.0.fatal_set.notified();
            tokio::pin!(set);
            set.as_mut().enable();
            if let Some(fatal) = self.fatal() {
                return fatal;
            }
            set.await;
        }
    }

    /// Forward one librdkafka log line to `tracing`, warnings and errors
    /// rate-limited.
    pub(crate) fn forward_log(
        &self,
        client: &str,
        level: RDKafkaLogLevel,
        fac: &str,
        message: &str,
    ) {
        // Warnings about properties that do not apply to this kind of client
        // (a consumer property given to every client) are expected.
        if fac == "CONFWARN" {
            tracing::debug!(target: "librdkafka", client, fac, "{message}");
            return;
        }
        let limited = |message: &str| {
            self.0
                .logs
                .lock()
                .check(&format!("{client} {fac} {message}"), Instant::now())
                .map(|suppressed| with_suppressed(message, suppressed))
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                if let Some(message) = limited(message) {
                    tracing::error!(target: "librdkafka", client, fac, "{message}")
                }
            }
            RDKafkaLogLevel::Warning => {
                if let Some(message) = limited(message) {
                    tracing::warn!(target: "librdkafka", client, fac, "{message}")
                }
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", client, fac, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", client, fac, "{message}")
            }
        }
    }

    /// What a client's error callback does: record the error, and log it
    /// (rate-limited).
    pub(crate) fn client_error(&self, client: &str, error: &KafkaError, reason: &str) {
        self.record(client, error, reason);
        let logged = self
            .0
            .logs
            .lock()
            .check(&format!("{client} error {error} {reason}"), Instant::now());
        if let Some(suppressed) = logged {
            let reason = with_suppressed(reason, suppressed);
            tracing::warn!(target: "librdkafka", client, %error, "{reason}");
        }
    }
}

/// Whether waiting cannot cure this error: failed authentication, or a
/// broker certificate that does not verify.
fn is_fatal(code: Option<RDKafkaErrorCode>, reason: &str) -> bool {
    code == Some(RDKafkaErrorCode::Authentication) || reason.contains("certificate verify failed")
}

fn with_suppressed(message: &str, suppressed: u64) -> String {
    if suppressed == 0 {
        message.to_string()
    } else {
        format!("{message} ({suppressed} similar lines suppressed)")
    }
}

/// Which log lines to let through: the first of a kind always, then at most
/// one per [`LOG_WINDOW`], with the count of those suppressed meanwhile.
/// Lines of a kind differ only in their numbers and in librdkafka's own
/// ", N identical error(s) suppressed".
#[derive(Debug)]
struct RateLimit {
    window: Duration,
    /// Kind → when it was last logged, and how many were suppressed since.
    seen: HashMap<String, (Instant, u64)>,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            window: LOG_WINDOW,
            seen: HashMap::new(),
        }
    }
}

impl RateLimit {
    /// `Some(suppressed)` if a line of this kind is to be logged now.
    fn check(&mut self, line: &str, now: Instant) -> Option<u64> {
        let mut kind = String::with_capacity(line.len());
        for c in line.chars() {
            if !c.is_ascii_digit() {
                kind.push(c);
            } else if !kind.ends_with('#') {
                kind.push('#');
            }
        }
        let kind = kind.replace(", # identical error(s) suppressed", "");
        if self.seen.len() >= 256 {
            let window = self.window;
            self.seen
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < window);
        }
        match self.seen.get_mut(&kind) {
            Some((at, suppressed)) if now.saturating_duration_since(*at) < self.window => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                *at = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                self.seen.insert(kind, (now, 0));
                Some(0)
            }
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
        self.last_error
            .forward_log(self.name, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.last_error.client_error(self.name, &error, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_lines_are_logged_once_per_window_with_a_count() {
        let mut limit = RateLimit::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let line = |n: u32| {
            format!("producer FAIL Failed to resolve 'x:9092' (after {n}ms in state CONNECT)")
        };
        assert_eq!(limit.check(&line(0), at(0)), Some(0), "the first is logged");
        // Six a second for three seconds: suppressed, whatever their numbers.
        for i in 1..18 {
            assert_eq!(limit.check(&line(i), at(u64::from(i) * 166)), None);
        }
        // librdkafka's own count of repeats does not make another kind.
        assert_eq!(
            limit.check(
                "producer FAIL Failed to resolve 'x:9092' (after 0ms in state CONNECT, 4 identical error(s) suppressed)",
                at(2990)
            ),
            None
        );
        // Another kind of line is not held back by the first.
        assert_eq!(
            limit.check("producer FAIL Connection refused", at(3000)),
            Some(0)
        );
        // After the window: logged again, with the count of suppressed ones.
        assert_eq!(limit.check(&line(99), at(10_000)), Some(18));
        assert_eq!(limit.check(&line(5), at(10_100)), None);
        assert_eq!(limit.check(&line(5), at(25_000)), Some(1));
    }

    #[test]
    fn fatal_errors_are_kept_and_all_brokers_down_does_not_hide_the_cause() {
        let errors = LastError::default();
        let clone = errors.clone();
        clone.record(
            "admin",
            &KafkaError::Global(RDKafkaErrorCode::Resolve),
            "Failed to resolve 'x:9092'",
        );
        errors.record(
            "admin",
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert!(
            errors.suffix().contains("Failed to resolve 'x:9092'"),
            "{}",
            errors.suffix()
        );
        assert_eq!(errors.fatal(), None);
        clone.record(
            "admin",
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: Authentication failed",
        );
        errors.record(
            "admin",
            &KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "Connection refused",
        );
        let fatal = errors.fatal().unwrap();
        assert!(fatal.contains("SASL authentication error"), "{fatal}");
        assert!(errors.suffix().contains("SASL authentication error"));
        assert!(is_fatal(
            Some(RDKafkaErrorCode::BrokerTransportFailure),
            "ssl://h:1/bootstrap: error:0A000086:SSL routines::certificate verify failed"
        ));
        assert!(!is_fatal(
            Some(RDKafkaErrorCode::Resolve),
            "Failed to resolve"
        ));
    }

    #[tokio::test]
    async fn waiting_for_a_fatal_error_ends_when_one_is_recorded() {
        let errors = LastError::default();
        let waiter = tokio::spawn({
            let errors = errors.clone();
            async move { errors.wait_fatal().await }
        });
        tokio::task::yield_now().await;
        errors.record(
            "admin",
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "bad password",
        );
        let fatal = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(fatal.contains("bad password"), "{fatal}");
        // Once set, at once.
        assert!(errors.wait_fatal().await.contains("bad password"));
    }

    #[test]
    fn the_producer_hook_runs_once_on_a_fatal_producer_error() {
        let errors = LastError::default();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = runs.clone();
        errors.on_producer_fatal(Box::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        errors.record(
            "producer",
            &KafkaError::Global(RDKafkaErrorCode::Resolve),
            "x",
        );
        errors.record("admin", &auth, "bad password");
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0);
        errors.record("producer", &auth, "bad password");
        errors.record("producer", &auth, "bad password");
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!errors.wait_closed(Duration::from_millis(1)));
        errors.close();
        assert!(errors.wait_closed(Duration::from_secs(5)));
    }
}
