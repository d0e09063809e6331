//! The agent manager: every agent of an app, started together and routed
//! partitions on rebalance.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::sync::RwLock;
use crate::transport::TopicPattern;

use super::Agent;

/// Header of [`AgentManager::human_tracebacks`].
pub const TRACEBACK_HEADER: &str =
    "=======================================\n TRACEBACK OF ALL RUNNING AGENT ACTORS\n=======================================\n";

/// The agents of an app, in registration order (Faust's `AgentManager`).
#[derive(Debug)]
pub struct AgentManager {
    agents: RwLock<Vec<Agent>>,
    by_topic: RwLock<HashMap<String, Arc<Vec<Agent>>>>,
    started: watch::Sender<bool>,
}

impl Default for AgentManager {
    fn default() -> Self {
        Self {
            agents: RwLock::new(Vec::new()),
            by_topic: RwLock::new(HashMap::new()),
            started: watch::Sender::new(false),
        }
    }
}

impl AgentManager {
    pub(crate) fn add(&self, agent: Agent) -> Result<()> {
        let mut agents = self.agents.write();
        if agents.iter().any(|a| a.name() == agent.name()) {
            return Err(Error::DuplicateAgent(agent.name().to_string()));
        }
        agents.push(agent);
        drop(agents);
        self.update_topic_index();
        Ok(())
    }

    /// Every agent, in registration order.
    pub fn all(&self) -> Vec<Agent> {
        self.agents.read().clone()
    }

    /// The agent with this name.
    pub fn get(&self, name: &str) -> Result<Agent> {
        let agents = self.agents.read();
        let name = name.strip_prefix('@').unwrap_or(name);
        agents
            .iter()
            .find(|a| a.name() == name)
            .cloned()
            .ok_or_else(|| Error::unknown_agent(name, agents.iter().map(Agent::name)))
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.agents.read().len()
    }

    /// Whether there are no agents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rebuild the topic → agents index.
    pub fn update_topic_index(&self) {
        let mut index: HashMap<String, Vec<Agent>> = HashMap::new();
        let agents: Vec<Agent> = self.all().into_iter().filter(|a| !a.is_remote()).collect();
        for agent in &agents {
            for topic in agent.get_topic_names() {
                index.entry(topic).or_default().push(agent.clone());
            }
        }
        // A named topic that another agent's pattern matches goes to both.
        for (topic, readers) in index.iter_mut() {
            for agent in &agents {
                if !readers.contains(agent) && agent.reads(topic) {
                    readers.push(agent.clone());
                }
            }
        }
        *self.by_topic.write() = index.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
    }

    /// Agents subscribed to a topic, by name or by pattern (a topic first
    /// seen through a pattern is looked up once, then indexed).
    pub fn by_topic(&self, topic: &str) -> Option<Arc<Vec<Agent>>> {
        if let Some(agents) = self.by_topic.read().get(topic) {
            return (!agents.is_empty()).then(|| agents.clone());
        }
        let matching: Arc<Vec<Agent>> = Arc::new(
            self.all()
                .into_iter()
                .filter(|a| !a.is_remote() && a.reads(topic))
                .collect(),
        );
        // Indexed even when empty: the conductor asks once per run of
        // records, and a topic nobody reads is not matched again.
        self.by_topic
            .write()
            .insert(topic.to_string(), matching.clone());
        (!matching.is_empty()).then_some(matching)
    }

    /// Every topic pattern some agent consumes.
    pub(crate) fn patterns(&self) -> Vec<TopicPattern> {
        let mut out: Vec<TopicPattern> = Vec::new();
        for agent in self.all().iter().filter(|a| !a.is_remote()) {
            for p in agent.patterns() {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// Every topic some agent consumes, sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .by_topic
            .read()
            .iter()
            .filter(|(_, agents)| !agents.is_empty())
            .map(|(topic, _)| topic.clone())
            .collect();
        t.sort();
        t
    }

    /// Start every agent, in registration order, without starting the app
    /// (see [`Agent::on_start`]); [`App::start`](crate::App::start) starts
    /// its agents itself.
    pub async fn start(&self) -> Result<()> {
        self.start_agents(false).await
    }

    /// Start every agent; `by_app`: for the running app.
    pub(crate) async fn start_agents(&self, by_app: bool) -> Result<()> {
        self.update_topic_index();
        for agent in self.all() {
            agent.start(by_app).await?;
        }
        self.started.send_replace(true);
        Ok(())
    }

    /// An error if the app runs the agents: `hook` is the app's to call.
    fn not_run_by_app(&self, hook: &str) -> Result<()> {
        self.all()
            .iter()
            .try_for_each(|agent| agent.not_run_by_app(hook))
    }

    /// Wait until [`start`](Self::start) has started every agent.
    /// Returns at once for an app without agents (a client).
    pub async fn wait_until_agents_started(&self) {
        if self.all().iter().all(|a| a.is_remote()) {
            return;
        }
        let mut rx = self.started.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Stop every agent (each finishes its current event first, up to the
    /// app's stop timeout). Every agent is stopped even if one fails. An
    /// error, stopping nothing, if the app runs them
    /// ([`App::stop`](crate::App::stop) stops them).
    pub async fn stop(&self) -> Result<()> {
        self.not_run_by_app("stop")?;
        self.stop_agents().await
    }

    /// Stop every agent (see [`stop`](Self::stop)).
    pub(crate) async fn stop_agents(&self) -> Result<()> {
        self.cancel();
        let mut first_err = None;
        for agent in self.all() {
            if let Err(e) = agent.stop().await {
                first_err.get_or_insert(e);
            }
        }
        self.started.send_replace(false);
        first_err.map_or(Ok(()), Err)
    }

    /// Ask every agent's actors to stop after their current event.
    pub fn cancel(&self) {
        for agent in self.all() {
            agent.cancel();
        }
    }

    /// Reset every agent so the app can start again.
    pub fn service_reset(&self) {
        for agent in self.all() {
            agent.service_reset();
        }
        self.started.send_replace(false);
    }

    /// Route a rebalance: first every agent's revoked partitions, then
    /// every agent's newly assigned ones; each agent gets only partitions
    /// of its own topics, and agents with none are not called. The app's
    /// conductor calls it on every rebalance; an error, routing nothing, if
    /// the app runs the agents.
    pub async fn on_rebalance(
        &self,
        revoked: &[TopicPartition],
        newly_assigned: &[TopicPartition],
    ) -> Result<()> {
        self.not_run_by_app("on_rebalance")?;
        self.rebalance(revoked, newly_assigned).await
    }

    /// Route a rebalance (see [`on_rebalance`](Self::on_rebalance)).
    pub(crate) async fn rebalance(
        &self,
        revoked: &[TopicPartition],
        newly_assigned: &[TopicPartition],
    ) -> Result<()> {
        for (agent, tps) in self.group_by_agent(revoked) {
            agent.revoke(&tps).await?;
        }
        for (agent, tps) in self.group_by_agent(newly_assigned) {
            agent.assign(&tps).await?;
        }
        Ok(())
    }

    fn group_by_agent(&self, tps: &[TopicPartition]) -> Vec<(Agent, Vec<TopicPartition>)> {
        let mut out: Vec<(Agent, Vec<TopicPartition>)> = Vec::new();
        for tp in tps {
            let Some(agents) = self.by_topic(&tp.topic) else {
                continue;
            };
            for agent in agents.iter() {
                match out.iter_mut().find(|(a, _)| a == agent) {
                    Some((_, v)) => v.push(tp.clone()),
                    None => out.push((agent.clone(), vec![tp.clone()])),
                }
            }
        }
        out
    }

    /// Each agent's actor tracebacks, by agent name.
    pub fn actor_tracebacks(&self) -> HashMap<String, Vec<String>> {
        self.all()
            .into_iter()
            .map(|a| (a.name().to_string(), a.actor_tracebacks()))
            .collect()
    }

    /// A readable report of where every actor is suspended.
    pub fn human_tracebacks(&self) -> String {
        let mut out = String::from(TRACEBACK_HEADER);
        for agent in self.all() {
            let _ = write!(
                out,
                "\n* {} ----->\n============================================================\n",
                agent.name()
            );
            for tb in agent.actor_tracebacks() {
                let _ = writeln!(out, "{}\n", tb.trim_end());
            }
        }
        out.push_str("\n-eof tracebacks-\n");
        out
    }
}

/// The object-safe manager interface (Faust's `AgentManagerT`).
#[async_trait]
pub trait AgentManagerT: Send + Sync {
    /// Wait until every agent is started.
    async fn wait_until_agents_started(&self);
    /// Route a rebalance to the agents.
    async fn on_rebalance(
        &self,
        revoked: &[TopicPartition],
        newly_assigned: &[TopicPartition],
    ) -> Result<()>;
    /// Tracebacks by agent name.
    fn actor_tracebacks(&self) -> HashMap<String, Vec<String>>;
    /// A readable traceback report.
    fn human_tracebacks(&self) -> String;
}

#[async_trait]
impl AgentManagerT for AgentManager {
    async fn wait_until_agents_started(&self) {
        AgentManager::wait_until_agents_started(self).await
    }
    async fn on_rebalance(
        &self,
        revoked: &[TopicPartition],
        newly_assigned: &[TopicPartition],
    ) -> Result<()> {
        AgentManager::on_rebalance(self, revoked, newly_assigned).await
    }
    fn actor_tracebacks(&self) -> HashMap<String, Vec<String>> {
        AgentManager::actor_tracebacks(self)
    }
    fn human_tracebacks(&self) -> String {
        AgentManager::human_tracebacks(self)
    }
}
