//! Timers: a function the app runs every interval while it runs (Faust's
//! `@app.timer`), optionally on the group's leader only.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::agent::supervisor::RestartBudget;
use crate::app::App;
use crate::error::{Error, Result};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type Tick = Arc<dyn Fn(App) -> BoxFuture<'static, std::result::Result<(), BoxError>> + Send + Sync>;

/// A timer: `tick` runs every `interval` while the app runs, the first
/// time one interval after the app started.
///
/// Runs never overlap: a run longer than the interval delays the next one
/// (it is not run twice to catch up). A run that fails or panics is
/// logged and spends one restart of the app's budget (`max_restarts` per
/// `restart_window`), and the timer runs again at its next tick; a timer
/// failing faster than the budget allows crashes the app. Stopping the
/// app lets a running tick finish within `stop_timeout`, then drops it.
///
/// ```
/// # use faust_core as faust;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> faust::Result<()> {
/// use std::time::Duration;
/// use faust::{App, TimerSpec};
///
/// let app = App::builder("clock").broker("memory://doc-timer").build()?;
/// app.add_timer(TimerSpec::new("report", Duration::from_secs(5), |app: App| async move {
///     tracing::info!(agents = app.agents().len(), "still here");
///     Ok::<_, faust::Error>(())
/// }))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TimerSpec {
    name: String,
    interval: Duration,
    on_leader: bool,
    tick: Tick,
}

impl TimerSpec {
    /// A timer running `tick` every `interval`. The error type is any that
    /// converts into a boxed error (`faust::Error`, `anyhow::Error`, ...).
    pub fn new<F, Fut, E>(name: impl Into<String>, interval: Duration, tick: F) -> Self
    where
        F: Fn(App) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self {
            name: name.into(),
            interval,
            on_leader: false,
            tick: Arc::new(move |app| tick(app).map(|r| r.map_err(Into::into)).boxed()),
        }
    }

    /// Run only on the group's leader: the one worker of the app holding
    /// the app's leader topic (`<app id>-__assignor-__leader`, one
    /// partition), as Faust elects it. Elsewhere the ticks are skipped, and
    /// a worker that becomes leader starts running them at its next tick.
    pub fn on_leader(mut self, on_leader: bool) -> Self {
        self.on_leader = on_leader;
        self
    }

    /// The timer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Time between two runs.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether it runs on the group's leader only.
    pub fn is_on_leader(&self) -> bool {
        self.on_leader
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::config("a timer's name must not be empty"));
        }
        if self.interval.is_zero() {
            return Err(Error::config(format!(
                "timer `{}`: the interval must be greater than zero",
                self.name
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for TimerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerSpec")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("on_leader", &self.on_leader)
            .finish_non_exhaustive()
    }
}

/// The name of the app's leader topic.
pub(crate) fn leader_topic(app_id: &str) -> String {
    format!("{app_id}-__assignor-__leader")
}

/// The running timers of an app.
pub(crate) struct Timers {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Timers {
    /// Start every timer of `app`.
    pub(crate) fn start(app: &App, timers: Vec<TimerSpec>) -> Self {
        let stop = CancellationToken::new();
        let budget = Arc::new(crate::sync::Mutex::new(RestartBudget::new(
            app.config().max_restarts,
            app.config().restart_window,
        )));
        let tasks = timers
            .into_iter()
            .map(|timer| tokio::spawn(run(app.clone(), timer, stop.clone(), budget.clone())))
            .collect();
        Self { stop, tasks }
    }

    /// Stop the timers, letting a running tick finish within `deadline`.
    pub(crate) async fn stop(self, deadline: Duration) {
        self.stop.cancel();
        for mut task in self.tasks {
            if tokio::time::timeout(deadline, &mut task).await.is_err() {
                tracing::warn!(?deadline, "a timer's tick did not finish in time; dropped");
                task.abort();
            }
        }
    }
}

async fn run(
    app: App,
    timer: TimerSpec,
    stop: CancellationToken,
    budget: Arc<crate::sync::Mutex<RestartBudget>>,
) {
    let start = tokio::time::Instant::now() + timer.interval;
    let mut ticks = tokio::time::interval_at(start, timer.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if timer.on_leader && !app.is_leader() {
            continue;
        }
        let span = tracing::info_span!("timer", timer = %timer.name);
        let ran = AssertUnwindSafe((timer.tick)(app.clone()).instrument(span.clone()))
            .catch_unwind()
            .await;
        let failure = match ran {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => err.to_string(),
            Err(panic) => format!("panicked: {}", crate::agent::panic_message(&panic)),
        };
        let _entered = span.enter();
        tracing::error!(error = %failure, "timer failed; it runs again at its next tick");
        let mut budget = budget.lock();
        if !budget.try_restart() {
            app.crash(Error::Crashed(format!(
                "timer `{}` failed more than {} times within {:?}; last: {failure}",
                timer.name,
                budget.max(),
                budget.over()
            )));
            return;
        }
    }
}
