//! Partitions and rebalances: with isolated partitions, one actor per
//! assigned partition, started on assignment and stopped on revocation.

use crate::error::Result;
use crate::record::TopicPartition;
use crate::runtime::acks::Message;
use crate::runtime::queue::{AgentQueue, Queue};

use super::{Agent, QueueTx, Slot};

impl Agent {
    /// The topic partitions with a running isolated actor, in order
    /// (Faust's `actor.active_partitions`, for the whole agent).
    pub fn active_partitions(&self) -> Vec<TopicPartition> {
        let st = self.state();
        let mut tps: Vec<TopicPartition> = st
            .actors
            .values()
            .filter_map(|h| match &h.slot {
                Slot::Partition(tp) => Some(tp.clone()),
                Slot::Index(_) => None,
            })
            .collect();
        tps.sort_unstable();
        tps
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

    /// Start one actor per newly assigned partition of a topic it reads, in
    /// topic and partition order.
    async fn assign_isolated(&self, assigned: &[TopicPartition]) -> Result<()> {
        let capacity = self.context().config.stream_buffer_maxsize;
        let mut tps: Vec<TopicPartition> = assigned
            .iter()
            .filter(|tp| self.reads(&tp.topic))
            .cloned()
            .collect();
        tps.sort_unstable();
        for tp in tps {
            let new = {
                let mut st = self.state();
                if !st.started || st.isolated.contains_key(&tp) {
                    false
                } else {
                    st.isolated
                        .insert(tp.clone(), QueueTx(AgentQueue::new(capacity, false)));
                    true
                }
            };
            if new {
                tracing::debug!(agent = %self.name(), partition = %tp, "isolated partition assigned");
                let _ = self.spawn_actor(Slot::Partition(tp));
            }
        }
        Ok(())
    }

    /// Stop (for good) the actors of revoked partitions. They are not
    /// restarted: no zombie actors (Python Faust leaves them running).
    async fn revoke_isolated(&self, revoked: &[TopicPartition]) -> Result<()> {
        let actors = {
            let mut st = self.state();
            let tps: Vec<&TopicPartition> =
                revoked.iter().filter(|tp| self.reads(&tp.topic)).collect();
            for tp in &tps {
                st.isolated.remove(*tp);
            }
            let ids: Vec<u64> = st
                .actors
                .iter()
                .filter(|(_, h)| matches!(&h.slot, Slot::Partition(tp) if tps.contains(&tp)))
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

    /// The queue that receives this agent's copy of `msg`, if the agent is
    /// running (and, isolated, has its partition).
    pub(crate) fn queue(&self, msg: &Message) -> Option<Queue> {
        if self.isolated_partitions() {
            self.state().queue(Some(&msg.topic_partition()))
        } else {
            self.state().queue(None)
        }
    }
}
