//! The group coordinator of the embedded broker: membership, range
//! assignment, eager rebalances with their deadline, generation fencing
//! and committed offsets. The consumer only calls its methods.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::log::{Fetch, Topic};
use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::sync::Notify;
use crate::transport::{OffsetReset, TopicPattern};

/// Who holds a partition of a group, and until when it may keep it if a
/// rebalance gave it to someone else.
struct Holder {
    member: u64,
    deadline: Option<Instant>,
}

/// What a member reads: these topics, and those whose names match.
pub(super) struct Subscription {
    pub(super) topics: Vec<Arc<Topic>>,
    pub(super) patterns: Vec<TopicPattern>,
}

/// A consumer in the group.
struct Member {
    topics: Vec<Arc<Topic>>,
    /// Further topics it reads: those whose names match, created or not yet.
    patterns: Vec<TopicPattern>,
    notify: Arc<Notify>,
    offset_reset: OffsetReset,
    /// Assignment decided by the last rebalance.
    target: BTreeSet<TopicPartition>,
    /// Partitions this member holds (announced or about to be announced as
    /// assigned, not yet released).
    held: BTreeSet<TopicPartition>,
    /// Announced as revoked, released at the member's next poll.
    revoking: Vec<TopicPartition>,
    /// Taken away at the rebalance deadline, not yet announced as revoked.
    forced: Vec<TopicPartition>,
    /// Taken away at the rebalance deadline: commits for them fail.
    fenced: HashSet<TopicPartition>,
    /// Something may have changed for this member since its last poll.
    pending: bool,
}

/// A consumer group: its members, who holds which partition, and its
/// committed offsets.
pub(super) struct Group {
    /// Reader id of the group in partition logs (from the consumer id counter).
    id: u64,
    name: String,
    /// By member id, which is also the join order.
    members: BTreeMap<u64, Member>,
    holders: HashMap<TopicPartition, Holder>,
    committed: HashMap<TopicPartition, i64>,
    /// Earliest holder deadline (may be stale, never late).
    next_deadline: Option<Instant>,
}

impl Group {
    /// An empty group; `id` is its reader id in partition logs.
    pub(super) fn new(id: u64, name: &str) -> Self {
        Self {
            id,
            name: name.to_string(),
            members: BTreeMap::new(),
            holders: HashMap::new(),
            committed: HashMap::new(),
            next_deadline: None,
        }
    }

    /// Range assignment per topic over the subscribed members in id order;
    /// members whose assignment changes are woken.
    fn rebalance(&mut self, now: Instant, timeout: Duration) {
        let mut subscribers: BTreeMap<Arc<str>, (usize, Vec<u64>)> = BTreeMap::new();
        for (id, m) in &self.members {
            for t in &m.topics {
                subscribers
                    .entry(t.name.clone())
                    .or_insert_with(|| (t.partitions.len(), Vec::new()))
                    .1
                    .push(*id);
            }
        }
        let mut targets: HashMap<u64, BTreeSet<TopicPartition>> = HashMap::new();
        for (topic, (partitions, ids)) in subscribers {
            let per = partitions / ids.len();
            let extra = partitions % ids.len();
            let mut next = 0;
            for (i, id) in ids.iter().enumerate() {
                let n = per + usize::from(i < extra);
                let target = targets.entry(*id).or_default();
                for p in next..next + n {
                    target.insert(TopicPartition::new(topic.clone(), p as i32));
                }
                next += n;
            }
        }
        for (id, m) in self.members.iter_mut() {
            let target = targets.remove(id).unwrap_or_default();
            if target != m.target {
                m.target = target;
                m.pending = true;
                m.notify.notify_one();
            }
        }
        for (tp, h) in self.holders.iter_mut() {
            let keeps = self
                .members
                .get(&h.member)
                .is_some_and(|m| m.target.contains(tp));
            if keeps {
                h.deadline = None;
            } else if h.deadline.is_none() {
                h.deadline = Some(now + timeout);
            }
        }
        self.update_next_deadline();
        tracing::debug!(
            group = %self.name,
            members = self.members.len(),
            "memory broker: group rebalanced"
        );
    }

    /// Recompute the earliest holder deadline.
    fn update_next_deadline(&mut self) {
        self.next_deadline = self.holders.values().filter_map(|h| h.deadline).min();
    }

    /// Free a partition and wake the member it is assigned to.
    fn release(&mut self, tp: &TopicPartition) {
        self.holders.remove(tp);
        for m in self.members.values_mut() {
            if m.target.contains(tp) {
                m.pending = true;
                m.notify.notify_one();
            }
        }
    }

    /// Take away the partitions whose holders missed the rebalance deadline.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<(TopicPartition, u64)> = self
            .holders
            .iter()
            .filter(|(_, h)| h.deadline.is_some_and(|d| d <= now))
            .map(|(tp, h)| (tp.clone(), h.member))
            .collect();
        for (tp, member) in expired {
            tracing::warn!(
                group = %self.name,
                partition = %tp,
                member,
                "memory broker: rebalance deadline passed before the member released the partition; \
                 handing it to its new owner"
            );
            if let Some(m) = self.members.get_mut(&member) {
                m.held.remove(&tp);
                if let Some(i) = m.revoking.iter().position(|t| *t == tp) {
                    m.revoking.remove(i);
                } else {
                    m.forced.push(tp.clone());
                }
                m.fenced.insert(tp.clone());
                m.pending = true;
                m.notify.notify_one();
            }
            self.release(&tp);
        }
        self.update_next_deadline();
    }

    /// Add member `id`, reading `topics`, and rebalance. The group starts
    /// needing its topics' records from its committed offsets.
    pub(super) fn join(
        &mut self,
        id: u64,
        subscription: Subscription,
        notify: Arc<Notify>,
        offset_reset: OffsetReset,
        now: Instant,
        timeout: Duration,
    ) {
        let Subscription { topics, patterns } = subscription;
        for topic in &topics {
            self.start_reading(topic);
        }
        self.members.insert(
            id,
            Member {
                topics,
                patterns,
                notify,
                offset_reset,
                target: BTreeSet::new(),
                held: BTreeSet::new(),
                revoking: Vec::new(),
                forced: Vec::new(),
                fenced: HashSet::new(),
                pending: true,
            },
        );
        self.rebalance(now, timeout);
    }

    /// The group needs `topic`'s records from its committed offsets on.
    fn start_reading(&self, topic: &Topic) {
        for (p, partition) in topic.partitions.iter().enumerate() {
            let tp = TopicPartition::new(topic.name.clone(), p as i32);
            partition.add_reader(self.id, self.committed.get(&tp).copied().unwrap_or(0));
        }
    }

    /// A topic was created: members whose patterns match it read it from
    /// now on, after a rebalance.
    pub(super) fn topic_created(&mut self, topic: &Arc<Topic>, now: Instant, timeout: Duration) {
        let mut added = false;
        for m in self.members.values_mut() {
            if m.patterns.iter().any(|p| p.matches(&topic.name))
                && m.topics.iter().all(|t| t.name != topic.name)
            {
                m.topics.push(topic.clone());
                added = true;
            }
        }
        if added {
            self.start_reading(topic);
            tracing::debug!(group = %self.name, topic = %topic.name, "memory broker: a created topic matches a pattern");
            self.rebalance(now, timeout);
        }
    }

    /// Remove member `id` (if still there), free its partitions at once and
    /// rebalance.
    pub(super) fn leave(&mut self, id: u64, now: Instant, timeout: Duration) {
        if let Some(m) = self.members.remove(&id) {
            self.rebalance(now, timeout);
            for tp in &m.held {
                if self.holders.get(tp).is_some_and(|h| h.member == id) {
                    self.release(tp);
                }
            }
        }
        tracing::debug!(group = %self.name, member = id, "memory broker: member left");
    }

    /// Whether member `id` has a rebalance event waiting.
    pub(super) fn rebalance_pending(&self, id: u64) -> bool {
        self.members
            .get(&id)
            .is_some_and(|m| m.pending || !m.revoking.is_empty())
    }

    /// The rebalance bookkeeping of member `id` at its poll: release what
    /// it confirmed revoked, expire missed deadlines, then its next event.
    pub(super) fn step(&mut self, id: u64, now: Instant) -> Result<Step> {
        let gone = || Error::Stopped(format!("memory broker consumer {id} (it left its group)"));

        // 1. A poll after `Revoked` releases the revoked partitions.
        let confirmed = std::mem::take(&mut self.members.get_mut(&id).ok_or_else(gone)?.revoking);
        for tp in &confirmed {
            if let Some(m) = self.members.get_mut(&id) {
                m.held.remove(tp);
            }
            if self.holders.get(tp).is_some_and(|h| h.member == id) {
                self.release(tp);
            }
        }

        // 2. Holders that missed the rebalance deadline lose their partitions.
        if self.next_deadline.is_some_and(|d| d <= now) {
            self.expire(now);
        }

        let m = self.members.get_mut(&id).ok_or_else(gone)?;
        if !m.pending {
            return Ok(Step::Idle(None));
        }

        // 3. Partitions this member loses.
        let lost: Vec<TopicPartition> = m
            .held
            .iter()
            .filter(|tp| !m.target.contains(*tp))
            .cloned()
            .collect();
        if !lost.is_empty() || !m.forced.is_empty() {
            let mut revoked = lost.clone();
            revoked.append(&mut m.forced);
            revoked.sort();
            revoked.dedup();
            m.revoking = lost;
            return Ok(Step::Revoked(revoked));
        }

        // 4. Partitions this member gains, once their previous holders released them.
        let mut acquired = Vec::new();
        let mut wait: Option<Instant> = None;
        for tp in &m.target {
            if m.held.contains(tp) {
                continue;
            }
            match self.holders.get(tp) {
                Some(h) => {
                    if let Some(d) = h.deadline {
                        wait = Some(wait.map_or(d, |w| w.min(d)));
                    }
                }
                None => acquired.push(tp.clone()),
            }
        }
        let mut fetches = Vec::with_capacity(acquired.len());
        for tp in &acquired {
            let Some(topic) = m.topics.iter().find(|t| t.name == tp.topic).cloned() else {
                continue;
            };
            let Some(partition) = topic.partition(tp.partition) else {
                continue;
            };
            let (start, end) = (partition.start(), partition.end());
            let position = match self.committed.get(tp) {
                Some(&o) if (start..=end).contains(&o) => o,
                _ => match m.offset_reset {
                    OffsetReset::Earliest => start,
                    OffsetReset::Latest => end,
                },
            };
            self.holders.insert(
                tp.clone(),
                Holder {
                    member: id,
                    deadline: None,
                },
            );
            m.held.insert(tp.clone());
            m.fenced.remove(tp);
            fetches.push(Fetch {
                tp: tp.clone(),
                topic,
                position,
            });
        }
        m.pending = m.held.len() != m.target.len();
        if acquired.is_empty() {
            Ok(Step::Idle(wait))
        } else {
            Ok(Step::Assigned(acquired, fetches))
        }
    }

    /// Commit `offsets` for member `id`. An offset is rejected if another
    /// member holds the partition, if the member was fenced from it at a
    /// rebalance deadline, or if the member is not `active` (left).
    pub(super) fn commit(
        &mut self,
        id: u64,
        active: bool,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let fenced = self.members.get(&id).map(|m| &m.fenced);
        let mut rejected = Vec::new();
        for (tp, offset) in offsets {
            let allowed = match self.holders.get(tp) {
                Some(h) => h.member == id,
                None => !fenced.is_some_and(|f| f.contains(tp)),
            };
            if allowed && active {
                self.committed.insert(tp.clone(), *offset);
                let partition = self
                    .members
                    .get(&id)
                    .and_then(|m| m.topics.iter().find(|t| t.name == tp.topic))
                    .and_then(|t| t.partition(tp.partition));
                if let Some(partition) = partition {
                    partition.advance_reader(self.id, *offset);
                }
            } else {
                rejected.push(tp.to_string());
            }
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(Error::Broker(format!(
                "commit rejected for {} of group `{}`: reassigned to another member after a rebalance",
                rejected.join(", "),
                self.name
            )))
        }
    }

    /// The group's committed offset of a partition.
    pub(super) fn committed(&self, tp: &TopicPartition) -> Option<i64> {
        self.committed.get(tp).copied()
    }
}

/// What a member's poll is told by [`Group::step`].
pub(super) enum Step {
    /// No event; nothing to wait for but appends, or until this deadline
    /// (a previous holder's) at the latest.
    Idle(Option<Instant>),
    /// Announce these partitions as revoked, after no longer reading them.
    Revoked(Vec<TopicPartition>),
    /// Announce these partitions as assigned, and read them from these
    /// positions.
    Assigned(Vec<TopicPartition>, Vec<Fetch>),
}
