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
    let mut all: Vec<&'static TimerDescriptor> = inventory::iter::<TimerDescriptor>().collect();
    all.sort_by(|a, b| {
        a.name
            .cmp(b.name)
            .then(a.file.cmp(b.file))
            .then(a.line.cmp(&b.line))
    });
    for pair in all.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(Error::config(format!(
                "two timers are named `{}` (declared at {}:{} and at {}:{}; set `name = \"...\"` \
                 on one of them)",
                pair[0].name, pair[0].file, pair[0].line, pair[1].file, pair[1].line
            )));
        }
    }
    Ok(all)
}

/// Every registered descriptor, sorted by name. Two agents with one name
/// are an error naming both places.
pub fn descriptors() -> Result<Vec<&'static AgentDescriptor>> {
    let mut all: Vec<&'static AgentDescriptor> = inventory::iter::<AgentDescriptor>().collect();
    all.sort_by(|a, b| {
        a.name
            .cmp(b.name)
            .then(a.file.cmp(b.file))
            .then(a.line.cmp(&b.line))
    });
    for pair in all.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(Error::DuplicateAgent(format!(
                "{} (declared at {}:{} and at {}:{}; set `name = \"...\"` on one of them)",
                pair[0].name, pair[0].file, pair[0].line, pair[1].file, pair[1].line
            )));
        }
    }
    Ok(all)
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
