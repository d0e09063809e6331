//! Registration of agents declared with `#[agent]` and timers declared with
//! `#[timer]`: each submits one [`AgentDescriptor`] or [`TimerDescriptor`]
//! through `inventory`; [`descriptors`] and [`timer_descriptors`] collect
//! them and [`Registry`] adds them to an app.

use crate::agent::AgentSpec;
use crate::app::App;
use crate::error::{Error, Result};
use crate::timer::TimerSpec;

/// A compile-time description of an agent, submitted by the `#[agent]` macro.
#[derive(Debug)]
pub struct AgentDescriptor {
    /// Agent name.
    pub name: &'static str,
    /// Source file of the declaration.
    pub file: &'static str,
    /// Line of the declaration.
    pub line: u32,
    /// Builds the agent's spec.
    pub build: fn() -> AgentSpec,
}

inventory::collect!(AgentDescriptor);

/// A compile-time description of a timer, submitted by the `#[timer]` macro.
#[derive(Debug)]
pub struct TimerDescriptor {
    /// Timer name.
    pub name: &'static str,
    /// Source file of the declaration.
    pub file: &'static str,
    /// Line of the declaration.
    pub line: u32,
    /// Builds the timer's spec.
    pub build: fn() -> TimerSpec,
}

inventory::collect!(TimerDescriptor);

/// Every registered timer, sorted by name. Two timers with one name are an
/// error naming both places.
pub fn timer_descriptors() -> Result<Vec<&'static TimerDescriptor>> {
    sorted_once(
        inventory::iter::<TimerDescriptor>()
            .map(|d| (d, d.name, d.file, d.line))
            .collect(),
        |name, places| {
            Error::config(format!(
                "two timers are named `{name}` (declared at {places}; set `name = \"...\"` on \
                 one of them)"
            ))
        },
    )
}

/// Every registered descriptor, sorted by name. Two agents with one name
/// are an error naming both places.
pub fn descriptors() -> Result<Vec<&'static AgentDescriptor>> {
    sorted_once(
        inventory::iter::<AgentDescriptor>()
            .map(|d| (d, d.name, d.file, d.line))
            .collect(),
        |name, places| {
            Error::DuplicateAgent(format!(
                "{name} (declared at {places}; set `name = \"...\"` on one of them)"
            ))
        },
    )
}

/// Declarations sorted by name (then place); two with one name are the
/// error `duplicate` makes of the name and both places.
fn sorted_once<T>(
    mut all: Vec<(T, &'static str, &'static str, u32)>,
    duplicate: impl Fn(&str, String) -> Error,
) -> Result<Vec<T>> {
    all.sort_by(|a, b| a.1.cmp(b.1).then(a.2.cmp(b.2)).then(a.3.cmp(&b.3)));
    for pair in all.windows(2) {
        if pair[0].1 == pair[1].1 {
            let places = format!(
                "{}:{} and at {}:{}",
                pair[0].2, pair[0].3, pair[1].2, pair[1].3
            );
            return Err(duplicate(pair[0].1, places));
        }
    }
    Ok(all.into_iter().map(|(d, ..)| d).collect())
}

/// The registered agents and timers.
#[derive(Debug)]
pub struct Registry {
    descriptors: Vec<&'static AgentDescriptor>,
    timers: Vec<&'static TimerDescriptor>,
}

impl Registry {
    /// Collect every registered agent and timer. Errors on duplicate names.
    pub fn collect() -> Result<Self> {
        Ok(Self {
            descriptors: descriptors()?,
            timers: timer_descriptors()?,
        })
    }

    /// Agent descriptors sorted by name.
    pub fn descriptors(&self) -> &[&'static AgentDescriptor] {
        &self.descriptors
    }

    /// Timer descriptors sorted by name.
    pub fn timers(&self) -> &[&'static TimerDescriptor] {
        &self.timers
    }

    /// Add every registered agent and timer to `app`.
    pub fn add_all(&self, app: &App) -> Result<()> {
        for d in &self.descriptors {
            app.add_agent((d.build)())?;
        }
        for d in &self.timers {
            app.add_timer((d.build)())?;
        }
        Ok(())
    }
}
