//! Supervisor strategies: what happens to an agent's actors when one crashes.
//!
//! An actor *crashes* when the agent function returns an error or panics.
//! A function that returns `Ok(())` has *finished* and is never restarted.
//! Restarts are rate-limited by a [`RestartBudget`] (Faust: 100 per second);
//! exceeding it crashes the app with [`Error::MaxRestartsExceeded`](crate::Error).

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

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
    pub(crate) fn decide(self) -> Decision {
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
pub(crate) enum Decision {
    RestartOne,
    RestartAll,
    ForfeitOne,
    ForfeitAll,
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
