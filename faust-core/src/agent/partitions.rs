//! Partitions and rebalances: with isolated partitions, one actor per
//! assigned partition, started on assignment and stopped on revocation.

use crate::error::Result;
use crate::record::TopicPartition;
use crate::runtime::queue::{AgentQueue, Queue};

use super::{Agent, QueueTx, Slot};

impl Agent {
    /// Partitions with a running isolated actor.
    pub fn active_partitions(&self) -> Vec<i32> {
        let st = self.state();
        let mut ps: Vec<i32> = st
            .actors
            .values()
            .filter_map(|h| match h.slot {
                Slot::Partition(p) => Some(p),
                Slot::Index(_) => None,
            })
            .collect();
        ps.sort_unstable();
        ps
    }

    /// Partitions were assigned to this app; routes to the isolated or
    /// shared variant. The app calls it on every rebalance; an error for
    /// an agent its app runs.
    pub async fn on_partitions_assigned(&self, assigned: &[TopicPartition]) -> Result<()> {
        self.not_run_by_app("on_partitions_assigned")?;
        self.assign(assigned).await
    }

    /// Partitions were revoked; routes to the isolated or shared variant.
    /// The app calls it on every rebalance; an error for an agent its app
    /// runs.
    pub async fn on_partitions_revoked(&self, revoked: &[TopicPartition]) -> Result<()> {
        self.not_run_by_app("on_partitions_revoked")?;
        self.revoke(revoked).await
    }

    /// Start one actor per newly assigned partition (isolated agents). An
    /// error for an agent its app runs.
    pub async fn on_isolated_partitions_assigned(&self, assigned: &[TopicPartition]) -> Result<()> {
        self.not_run_by_app("on_isolated_partitions_assigned")?;
        self.assign_isolated(assigned).await
    }

    /// Stop the actors of revoked partitions (isolated agents). An error for
    /// an agent its app runs.
    pub async fn on_isolated_partitions_revoked(&self, revoked: &[TopicPartition]) -> Result<()> {
        self.not_run_by_app("on_isolated_partitions_revoked")?;
        self.revoke_isolated(revoked).await
    }

    /// Partitions were assigned: routes to the isolated or shared case.
    pub(crate) async fn assign(&self, assigned: &[TopicPartition]) -> Result<()> {
        if self.isolated_partitions() {
            self.assign_isolated(assigned).await
        } else {
            self.on_shared_partitions_assigned(assigned).await
        }
    }

    /// Partitions were revoked: routes to the isolated or shared case.
    pub(crate) async fn revoke(&self, revoked: &[TopicPartition]) -> Result<()> {
        if self.isolated_partitions() {
            self.revoke_isolated(revoked).await
        } else {
            self.on_shared_partitions_revoked(revoked).await
        }
    }

    /// Start one actor per newly assigned partition, in partition order.
    async fn assign_isolated(&self, assigned: &[TopicPartition]) -> Result<()> {
        let capacity = self.context().config.stream_buffer_maxsize;
        let mut parts: Vec<i32> = assigned
            .iter()
            .filter(|tp| self.reads(&tp.topic))
            .map(|tp| tp.partition)
            .collect();
        parts.sort_unstable();
        for p in parts {
            let new = {
                let mut st = self.state();
                if !st.started || st.isolated.contains_key(&p) {
                    false
                } else {
                    st.isolated
                        .insert(p, QueueTx(AgentQueue::new(capacity, false)));
                    true
                }
            };
            if new {
                tracing::debug!(agent = %self.name(), partition = p, "isolated partition assigned");
                self.spawn_actor(Slot::Partition(p));
            }
        }
        Ok(())
    }

    /// Stop (for good) the actors of revoked partitions. They are not
    /// restarted: no zombie actors (Python Faust leaves them running).
    async fn revoke_isolated(&self, revoked: &[TopicPartition]) -> Result<()> {
        let actors = {
            let mut st = self.state();
            let parts: Vec<i32> = revoked
                .iter()
                .filter(|tp| self.reads(&tp.topic))
                .map(|tp| tp.partition)
                .collect();
            for p in &parts {
                st.isolated.remove(p);
            }
            let ids: Vec<u64> = st
                .actors
                .iter()
                .filter(|(_, h)| matches!(h.slot, Slot::Partition(p) if parts.contains(&p)))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| st.actors.remove(&id))
                .collect::<Vec<_>>()
        };
        let timeout = self.context().config.stop_timeout;
        self.stop_actors(actors, timeout).await;
        Ok(())
    }

    /// Hook for shared (non-isolated) agents; nothing to do: the shared
    /// queue receives every partition of the topic.
    pub async fn on_shared_partitions_assigned(&self, _assigned: &[TopicPartition]) -> Result<()> {
        Ok(())
    }

    /// Hook for shared agents; buffered events of revoked partitions are
    /// dropped by the stream (never processed after revocation).
    pub async fn on_shared_partitions_revoked(&self, _revoked: &[TopicPartition]) -> Result<()> {
        Ok(())
    }

    /// The queue that receives this agent's messages of `partition`, if
    /// the agent is running (and, isolated, has the partition).
    pub(crate) fn queue(&self, partition: i32) -> Option<Queue> {
        self.state()
            .queue(self.isolated_partitions().then_some(partition))
    }
}
