//! The consumer of the embedded broker: fetches batches from its
//! partitions, sleeps until an append wakes it, and hands out the
//! rebalance events its [`Group`] decides.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::group::{Group, Step};
use super::log::{sleep_until_appended, Fetch};
use super::{Inner, COMMIT_INTERVAL, MAX_BATCH};
use crate::error::{Error, Result};
use crate::record::{Record, TopicPartition};
use crate::sync::atomic::AtomicBool;
use crate::sync::{Mutex, Notify};
use crate::transport::{CommitFuture, Consumer, ConsumerEvent};

/// A consumer of the embedded broker: a group member (`group` set) or an
/// assigned consumer.
pub(super) struct MemoryConsumer {
    broker: Arc<Inner>,
    id: u64,
    notify: Arc<Notify>,
    /// Set while `poll` waits for records (see `Watcher::sleeping`).
    sleeping: Arc<AtomicBool>,
    group: Option<Arc<Mutex<Group>>>,
    fetch: Vec<Fetch>,
    /// First partition of the next batch (round-robin fairness).
    cursor: usize,
    /// The `Assigned` event of an assigned consumer's first poll.
    initial: Option<Vec<TopicPartition>>,
    /// Per fetched partition: (available, taken) while building a batch.
    scratch: Vec<(usize, usize)>,
    left: bool,
}

impl MemoryConsumer {
    /// A consumer with nothing to read yet; an assigned consumer's first
    /// poll returns `initial` as its `Assigned` event.
    pub(super) fn new(
        broker: Arc<Inner>,
        id: u64,
        notify: Arc<Notify>,
        group: Option<Arc<Mutex<Group>>>,
        initial: Option<Vec<TopicPartition>>,
    ) -> Self {
        Self {
            broker,
            id,
            notify,
            sleeping: Arc::new(AtomicBool::new(false)),
            group,
            fetch: Vec::new(),
            cursor: 0,
            initial,
            scratch: Vec::new(),
            left: false,
        }
    }

    /// Start reading a partition (and being woken by its appends).
    pub(super) fn start_fetch(&mut self, f: Fetch) {
        f.partition().watch(self.id, &self.notify, &self.sleeping);
        self.fetch.push(f);
    }

    fn stop_fetch(&mut self, tps: &[TopicPartition]) {
        let id = self.id;
        self.fetch.retain(|f| {
            let keep = !tps.contains(&f.tp);
            if !keep {
                f.partition().unwatch(id);
            }
            keep
        });
    }

    /// Rebalance bookkeeping of a group member: the next event, or how long
    /// the member may wait for one (a holder's deadline).
    fn group_step(
        &mut self,
        group: &Mutex<Group>,
    ) -> Result<(Option<ConsumerEvent>, Option<Instant>)> {
        let mut g = group.lock();
        match g.step(self.id, Instant::now())? {
            Step::Idle(wait) => Ok((None, wait)),
            Step::Revoked(revoked) => {
                self.stop_fetch(&revoked);
                Ok((Some(ConsumerEvent::Revoked(revoked)), None))
            }
            Step::Assigned(acquired, fetches) => {
                drop(g);
                for f in fetches {
                    self.start_fetch(f);
                }
                Ok((Some(ConsumerEvent::Assigned(acquired)), None))
            }
        }
    }

    /// Take a batch of available records, shared fairly among the partitions.
    fn fetch_records(&mut self) -> Option<Vec<Record>> {
        let n = self.fetch.len();
        if n == 0 {
            return None;
        }
        self.scratch.clear();
        let mut total = 0usize;
        for f in &mut self.fetch {
            // Records below the log start were freed (only a group that
            // joined late or an assigned consumer starting at 0 sees this).
            f.position = f.position.max(f.partition().start());
            let available = (f.partition().end() - f.position).max(0) as usize;
            total += available;
            self.scratch.push((available, 0));
        }
        if total == 0 {
            return None;
        }
        let start = self.cursor % n;
        self.cursor = start + 1;
        if total <= MAX_BATCH {
            for s in &mut self.scratch {
                s.1 = s.0;
            }
        } else {
            // Water-filling: equal shares, leftovers to the partitions with more.
            let mut remaining = MAX_BATCH;
            while remaining > 0 {
                let hungry = self.scratch.iter().filter(|(a, t)| t < a).count();
                if hungry == 0 {
                    break;
                }
                let share = (remaining / hungry).max(1);
                for k in 0..n {
                    let (available, taken) = &mut self.scratch[(start + k) % n];
                    if *taken < *available {
                        let more = (*available - *taken).min(share).min(remaining);
                        *taken += more;
                        remaining -= more;
                        if remaining == 0 {
                            break;
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(total.min(MAX_BATCH));
        for k in 0..n {
            let i = (start + k) % n;
            let take = self.scratch[i].1;
            if take == 0 {
                continue;
            }
            let f = &mut self.fetch[i];
            let before = out.len();
            f.partition()
                .read_into(&f.topic.name, f.tp.partition, f.position, take, &mut out);
            f.position += (out.len() - before) as i64;
            if self.group.is_none() {
                f.partition().advance_reader(self.id, f.position);
            }
        }
        Some(out)
    }

    /// Leave the group and stop reading (idempotent).
    fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        let id = self.id;
        for f in self.fetch.drain(..) {
            f.partition().unwatch(id);
            if self.group.is_none() {
                f.partition().remove_reader(id);
            }
        }
        if let Some(group) = &self.group {
            group
                .lock()
                .leave(id, Instant::now(), self.broker.rebalance_timeout());
        }
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    fn commit_interval(&self) -> Option<Duration> {
        self.group.is_some().then_some(COMMIT_INTERVAL)
    }

    fn rebalance_pending(&self) -> bool {
        self.initial.is_some()
            || self
                .group
                .as_ref()
                .is_some_and(|g| g.lock().rebalance_pending(self.id))
    }

    async fn poll(&mut self) -> Result<ConsumerEvent> {
        if self.left {
            return Err(Error::Stopped("memory broker consumer".into()));
        }
        loop {
            // Everything up to returning an event is synchronous: dropping
            // this future at the await below loses nothing.
            if let Some(tps) = self.initial.take() {
                return Ok(ConsumerEvent::Assigned(tps));
            }
            let mut wait = None;
            if let Some(group) = self.group.clone() {
                let (event, deadline) = self.group_step(&group)?;
                if let Some(event) = event {
                    return Ok(event);
                }
                wait = deadline;
            }
            if let Some(records) = self.fetch_records() {
                return Ok(ConsumerEvent::Records(records));
            }
            sleep_until_appended(&self.notify, &self.sleeping, &self.fetch, wait).await;
        }
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.commit_now(offsets)
    }

    /// Commits here are immediate: the outcome is ready at once.
    fn start_commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Option<CommitFuture> {
        Some(Box::pin(std::future::ready(self.commit_now(offsets))))
    }

    fn end_offsets(&self) -> Vec<(TopicPartition, i64)> {
        self.fetch
            .iter()
            .map(|f| (f.tp.clone(), f.partition().end()))
            .collect()
    }

    async fn committed(&mut self, tp: &TopicPartition) -> Result<Option<i64>> {
        Ok(self.group.as_ref().and_then(|g| g.lock().committed(tp)))
    }

    async fn close(mut self: Box<Self>, _timeout: Duration) -> Result<()> {
        self.leave();
        Ok(())
    }
}

impl MemoryConsumer {
    /// Commit `offsets` for the group (synchronous: nothing waits).
    fn commit_now(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        group.lock().commit(self.id, !self.left, offsets)
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        self.leave();
    }
}
