//! Supervisor strategies: what happens to an agent's actors when one crashes.
//!
//! An actor *crashes* when the agent function returns an error or panics.
//! A function that returns `Ok(())` has *finished* and is never restarted.
//! Restarts are rate-limited by a [`RestartBudget`] (Faust: 100 per second);
//! exceeding it crashes the app with [`Error::MaxRestartsExceeded`](crate::Error).
//!
//! The five strategies of Faust are [`SupervisorStrategy`]; a strategy of
//! one's own implements [`SupervisorStrategyT`] and [`decides`](SupervisorStrategyT::on_crash)
//! per crash, knowing the agent, the actor and the error.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

use super::Agent;

/// A supervisor strategy: what to do when one of an agent's actors crashed
/// (Faust's `SupervisorStrategyT`). Set one per agent with
/// [`AgentSpec::supervisor`](crate::AgentSpec::supervisor) or for every
/// agent with [`AppBuilder::agent_supervisor`](crate::AppBuilder::agent_supervisor).
///
/// ```
/// # use faust_core as faust;
/// use faust::supervisor::{Crash, Decision, SupervisorStrategyT};
///
/// /// Restart after errors, but crash the app on a panic.
/// #[derive(Debug)]
/// struct PanicsAreFatal;
///
/// impl SupervisorStrategyT for PanicsAreFatal {
///     fn name(&self) -> &str {
///         "panics_are_fatal"
///     }
///     fn on_crash(&self, crash: &Crash<'_>) -> Decision {
///         match crash.error {
///             faust::Error::Panic { .. } => Decision::CrashApp,
///             _ => Decision::RestartOne,
///         }
///     }
/// }
///
/// let spec = faust::AgentSpec::consumer("careful", |mut s: faust::Stream<i64>| async move {
///     while s.next().await.is_some() {}
///     Ok::<_, faust::Error>(())
/// })
/// .supervisor(PanicsAreFatal);
/// # drop(spec);
/// ```
pub trait SupervisorStrategyT: Send + Sync + fmt::Debug + 'static {
    /// The strategy's name, shown in the agent's info and logs.
    fn name(&self) -> &str;

    /// What to do about this crash. Restarts spend the app's restart
    /// budget whatever strategy asks for them.
    fn on_crash(&self, crash: &Crash<'_>) -> Decision;
}

/// One crashed actor, as a [`SupervisorStrategyT`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Crash<'a> {
    /// The agent.
    pub agent: &'a Agent,
    /// The crashed actor's label (`Agent*: name #1`).
    pub actor: &'a str,
    /// Why it crashed: the function's error, or [`Error::Panic`].
    pub error: &'a Error,
    /// Restarts of this agent so far.
    pub restarts: u64,
}

/// A strategy shared with the code that made it (to look at its state).
impl<T: SupervisorStrategyT> SupervisorStrategyT for Arc<T> {
    fn name(&self) -> &str {
        T::name(self)
    }

    fn on_crash(&self, crash: &Crash<'_>) -> Decision {
        T::on_crash(self, crash)
    }
}

/// A shared strategy, as agents and the app's settings hold it.
pub(crate) type Strategy = Arc<dyn SupervisorStrategyT>;

impl SupervisorStrategyT for SupervisorStrategy {
    fn name(&self) -> &str {
        SupervisorStrategy::name(*self)
    }

    fn on_crash(&self, _crash: &Crash<'_>) -> Decision {
        self.decide()
    }
}

/// How an agent's supervisor reacts to a crashed actor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SupervisorStrategy {
    /// Restart only the crashed actor (the default).
    #[default]
    OneForOne,
    /// Stop every actor of the agent, then restart them all.
    OneForAll,
    /// Do not restart the crashed actor; the others keep running.
    ForfeitOneForOne,
    /// Stop every actor of the agent and restart none.
    ForfeitOneForAll,
    /// Crash the whole app: [`App::run`](crate::App::run) returns the error.
    Crashing,
}

impl SupervisorStrategy {
    /// Every strategy with its configuration name; `#[agent(supervisor = ...)]`
    /// accepts these names.
    pub const ALL: [(&'static str, SupervisorStrategy); 5] = [
        ("one_for_one", SupervisorStrategy::OneForOne),
        ("one_for_all", SupervisorStrategy::OneForAll),
        ("forfeit_one_for_one", SupervisorStrategy::ForfeitOneForOne),
        ("forfeit_one_for_all", SupervisorStrategy::ForfeitOneForAll),
        ("crashing", SupervisorStrategy::Crashing),
    ];

    /// The configuration name, e.g. `one_for_one`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("one_for_one")
    }

    /// What to do after an actor crashed.
    pub fn decide(self) -> Decision {
        match self {
            SupervisorStrategy::OneForOne => Decision::RestartOne,
            SupervisorStrategy::OneForAll => Decision::RestartAll,
            SupervisorStrategy::ForfeitOneForOne => Decision::ForfeitOne,
            SupervisorStrategy::ForfeitOneForAll => Decision::ForfeitAll,
            SupervisorStrategy::Crashing => Decision::CrashApp,
        }
    }
}

impl FromStr for SupervisorStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, st)| *st)
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown supervisor strategy `{s}`; expected one of: {}",
                    Self::ALL.map(|(n, _)| n).join(", ")
                ))
            })
    }
}

/// What the supervisor does about a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restart the crashed actor.
    RestartOne,
    /// Stop every actor of the agent, then restart them all.
    RestartAll,
    /// Do not restart the crashed actor.
    ForfeitOne,
    /// Stop every actor of the agent and restart none.
    ForfeitAll,
    /// Crash the app.
    CrashApp,
}

/// A sliding-window limit on restarts: at most `max` restarts within `over`.
#[derive(Clone, Debug)]
pub struct RestartBudget {
    max: u32,
    over: Duration,
    recent: VecDeque<Instant>,
}

impl Default for RestartBudget {
    /// Faust's budget: 100 restarts per second.
    fn default() -> Self {
        Self::new(100, Duration::from_secs(1))
    }
}

impl RestartBudget {
    /// At most `max` restarts within any window of length `over`.
    pub fn new(max: u32, over: Duration) -> Self {
        Self {
            max,
            over,
            recent: VecDeque::new(),
        }
    }

    /// Restarts allowed per window.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The window length.
    pub fn over(&self) -> Duration {
        self.over
    }

    /// Spend one restart now; false when the budget is exhausted.
    pub fn try_restart(&mut self) -> bool {
        let now = Instant::now();
        while let Some(&t) = self.recent.front() {
            if now.duration_since(t) >= self.over {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u32 >= self.max {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn budget_allows_max_per_window_then_refills() {
        let mut b = RestartBudget::new(3, Duration::from_secs(1));
        assert!(b.try_restart() && b.try_restart() && b.try_restart());
        assert!(!b.try_restart());
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(b.try_restart());
    }

    #[test]
    fn strategies_parse_by_name() {
        for (name, s) in SupervisorStrategy::ALL {
            assert_eq!(name.parse::<SupervisorStrategy>().unwrap(), s);
            assert_eq!(s.name(), name);
        }
        let err = "one4one"
            .parse::<SupervisorStrategy>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("one_for_all"), "{err}");
    }
}
