//! The consumer handed to the runtime: the async side of a consumer thread.
//!
//! Each consumer owns one dedicated thread (see [`crate::worker`]) that
//! polls librdkafka and runs its rebalance callbacks. The two sides share a
//! small mailbox ([`Shared`]):
//!
//! - **events** (thread → runtime): `Records` batches tagged with the
//!   revocation epoch they were fetched in, `Revoked`, `Assigned` and
//!   failures, in order. Only record batches count against the capacity
//!   (`faust.buffer.batches`): when it is reached the thread stops fetching,
//!   which is the backpressure.
//! - **commands** (runtime → thread): commits and committed-offset lookups,
//!   run synchronously, one at a time, on a second thread of the consumer
//!   (the committer), so that a commit waiting for the broker never holds
//!   up fetching and forwarding records. The runtime starts a commit
//!   without waiting for it ([`Consumer::start_commit`]).
//! - **the revocation handshake**: on revoke the thread registers the
//!   revoked partitions under a new epoch, queues `Revoked` and blocks inside
//!   the callback until the runtime acknowledges by calling
//!   [`Consumer::poll`] again (or closes or drops the consumer), or until
//!   `faust.revoke.timeout.ms`. The runtime commits the revoked partitions
//!   and waits for that commit before it polls again, so the commit lands
//!   before the callback returns, in the generation that owned the
//!   partitions. Batches fetched before a revocation (still queued when
//!   it happens) lose the records of the revoked partitions when they are
//!   taken out, so nothing of a revoked partition reaches the runtime after
//!   `Revoked`.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use faust_core::transport::{CommitFuture, Consumer, ConsumerEvent};
use faust_core::{Error, Record, Result, TopicPartition};
use parking_lot::{Condvar, Mutex, MutexGuard};
use tokio::sync::{oneshot, Notify};

use crate::context::LastError;

/// What the thread hands to the runtime.
#[derive(Debug)]
pub(crate) enum Item {
    /// Records fetched during revocation epoch `epoch`.
    Records { epoch: u64, records: Vec<Record> },
    /// The partitions revoked by revocation `epoch`.
    Revoked {
        epoch: u64,
        partitions: Vec<TopicPartition>,
    },
    /// Partitions now assigned.
    Assigned(Vec<TopicPartition>),
    /// The consumer failed; the thread stops after this.
    Failed(String),
}

/// What the runtime asks the thread to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Commit these offsets (synchronously, on the committer thread).
    Commit {
        offsets: Vec<(TopicPartition, i64)>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Look up the committed offset of a partition.
    Committed {
        tp: TopicPartition,
        reply: oneshot::Sender<Result<Option<i64>>>,
    },
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) items: VecDeque<Item>,
    /// `Records` items in `items`.
    pub(crate) batches: usize,
    /// Revocations whose `Revoked` event the runtime has not taken yet:
    /// (epoch, partitions). Records of an older epoch in these partitions
    /// are dropped.
    pub(crate) revocations: Vec<(u64, HashSet<TopicPartition>)>,
    pub(crate) commands: VecDeque<Command>,
    /// Highest revocation epoch the runtime has finished handling.
    pub(crate) acked: u64,
    /// The runtime closed or dropped the consumer.
    pub(crate) closing: bool,
    /// librdkafka's consumer queue became non-empty.
    pub(crate) doorbell: bool,
    /// The thread has ended, and why.
    pub(crate) finished: Option<String>,
}

/// The mailbox between a consumer thread and its async side.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the thread: doorbell, ack, room in the queue, closing.
    pub(crate) wake_thread: Condvar,
    /// Wakes the committer thread: a command, closing.
    pub(crate) wake_committer: Condvar,
    /// Wakes the async side: a new item, or the thread ended.
    pub(crate) wake_async: Notify,
    /// The end offset of each partition, from librdkafka's last statistics.
    pub(crate) end_offsets: Mutex<Vec<(TopicPartition, i64)>>,
}

impl Shared {
    /// Lock the state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Wait on the thread's condition variable for at most `timeout`.
    pub(crate) fn wait<'a>(
        &self,
        mut guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.wake_thread.wait_for(&mut guard, timeout);
        guard
    }

    /// Wait on the committer's condition variable for at most `timeout`.
    pub(crate) fn wait_committer<'a>(
        &self,
        mut guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.wake_committer.wait_for(&mut guard, timeout);
        guard
    }

    /// Queue an event for the runtime and wake it.
    pub(crate) fn push(&self, item: Item) {
        let mut st = self.lock();
        if matches!(item, Item::Records { .. }) {
            st.batches += 1;
        }
        st.items.push_back(item);
        drop(st);
        self.wake_async.notify_one();
    }

    /// Ring the thread's doorbell (called by librdkafka's threads).
    pub(crate) fn ring(&self) {
        self.lock().doorbell = true;
        self.wake_thread.notify_all();
    }

    /// Ask the thread to stop and release any revocation wait.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.wake_thread.notify_all();
        self.wake_committer.notify_all();
    }
}

/// Drop from `records` those of partitions revoked after `epoch`.
pub(crate) fn drop_revoked(
    records: &mut Vec<Record>,
    epoch: u64,
    revocations: &[(u64, HashSet<TopicPartition>)],
) {
    for (e, revoked) in revocations {
        if *e > epoch && !records.is_empty() {
            records.retain(|r| !revoked.contains(&r.topic_partition()));
        }
    }
}

/// A Kafka consumer as the runtime sees it: a group member (`subscribe`) or
/// fixed partitions without commits (`assign`).
pub(crate) struct KafkaConsumer {
    shared: Arc<Shared>,
    /// Revocation to acknowledge at the next poll.
    ack: Option<u64>,
    /// Fires when the thread has ended (its client closed).
    done: Option<oneshot::Receiver<()>>,
    /// The group, `None` for an assigned consumer.
    group: Option<String>,
    operation_timeout: Duration,
    last_error: LastError,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        done: oneshot::Receiver<()>,
        group: Option<String>,
        operation_timeout: Duration,
        last_error: LastError,
    ) -> Self {
        Self {
            shared,
            ack: None,
            done: Some(done),
            group,
            operation_timeout,
            last_error,
        }
    }

    /// Send a command to the committer thread (failing at once if the
    /// consumer stopped); its answer comes on the receiver.
    fn send<T>(
        &self,
        what: &str,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<oneshot::Receiver<Result<T>>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            if let Some(why) = &st.finished {
                return Err(Error::Broker(format!(
                    "cannot {what}: the consumer stopped ({why})"
                )));
            }
            st.commands.push_back(make(tx));
        }
        self.shared.wake_committer.notify_all();
        Ok(rx)
    }

    /// Send a command and return its answer (within `faust.operation.timeout.ms`),
    /// as a future that does not borrow the consumer.
    fn command<T: Send + 'static>(
        &self,
        what: &'static str,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send>> {
        let sent = self.send(what, make);
        let (timeout, last_error) = (self.operation_timeout, self.last_error.clone());
        Box::pin(async move {
            match tokio::time::timeout(timeout, sent?).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(Error::Broker(format!(
                    "cannot {what}: the consumer stopped"
                ))),
                Err(_) => Err(Error::Timeout {
                    what: format!("{what}{}", last_error.suffix()),
                    after: timeout,
                }),
            }
        })
    }
}

/// A `Revoked` queued behind record batches jumps ahead of them (records
/// of its partitions fetched before it are dropped now), so a busy runtime
/// learns of a revocation without working through the whole queue first.
/// It never jumps over an `Assigned`.
fn take_revocation_early(st: &mut State) -> Option<(u64, Vec<TopicPartition>)> {
    let pos = st
        .items
        .iter()
        .position(|i| !matches!(i, Item::Records { .. }))?;
    if pos == 0 || !matches!(st.items[pos], Item::Revoked { .. }) {
        return None;
    }
    let Some(Item::Revoked { epoch, partitions }) = st.items.remove(pos) else {
        return None;
    };
    let State {
        items,
        revocations,
        batches,
        ..
    } = st;
    for item in items.iter_mut() {
        if let Item::Records { epoch: e, records } = item {
            drop_revoked(records, *e, revocations);
        }
    }
    let before = items.len();
    items.retain(|i| !matches!(i, Item::Records { records, .. } if records.is_empty()));
    *batches -= before - items.len();
    revocations.retain(|(e, _)| *e > epoch);
    Some((epoch, partitions))
}

#[async_trait]
impl Consumer for KafkaConsumer {
    fn rebalance_pending(&self) -> bool {
        self.shared
            .lock()
            .items
            .iter()
            .any(|i| matches!(i, Item::Revoked { .. } | Item::Assigned(_)))
    }

    async fn poll(&mut self) -> Result<ConsumerEvent> {
        loop {
            // Everything up to returning an event is synchronous: dropping
            // this future at the await below loses nothing.
            let notified = {
                let mut st = self.shared.lock();
                if let Some(epoch) = self.ack.take() {
                    st.acked = st.acked.max(epoch);
                    self.shared.wake_thread.notify_all();
                }
                if let Some(event) = take_revocation_early(&mut st) {
                    self.ack = Some(event.0);
                    self.shared.wake_thread.notify_all();
                    return Ok(ConsumerEvent::Revoked(event.1));
                }
                while let Some(item) = st.items.pop_front() {
                    match item {
                        Item::Records { epoch, mut records } => {
                            st.batches -= 1;
                            self.shared.wake_thread.notify_all();
                            drop_revoked(&mut records, epoch, &st.revocations);
                            if !records.is_empty() {
                                return Ok(ConsumerEvent::Records(records));
                            }
                        }
                        Item::Revoked { epoch, partitions } => {
                            // Later batches were fetched after this revocation.
                            st.revocations.retain(|(e, _)| *e > epoch);
                            self.ack = Some(epoch);
                            return Ok(ConsumerEvent::Revoked(partitions));
                        }
                        Item::Assigned(partitions) => {
                            return Ok(ConsumerEvent::Assigned(partitions))
                        }
                        Item::Failed(why) => return Err(Error::Broker(why)),
                    }
                }
                if let Some(why) = &st.finished {
                    return Err(Error::Stopped(format!("Kafka consumer ({why})")));
                }
                self.shared.wake_async.notified()
            };
            // Nothing left to hand out: a fatal client error (failed
            // authentication) ends the wait at once.
            tokio::select! {
                _ = notified => {}
                why = self.last_error.wait_fatal() => {
                    return Err(Error::Broker(format!("Kafka consumer: {why}")));
                }
            }
        }
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        match self.start_commit(offsets) {
            Some(commit) => commit.await,
            None => Ok(()),
        }
    }

    fn start_commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Option<CommitFuture> {
        if self.group.is_none() || offsets.is_empty() {
            return Some(Box::pin(std::future::ready(Ok(()))));
        }
        let offsets = offsets.to_vec();
        Some(self.command("commit offsets", |reply| Command::Commit { offsets, reply }))
    }

    async fn committed(&mut self, tp: &TopicPartition) -> Result<Option<i64>> {
        if self.group.is_none() {
            return Ok(None);
        }
        let tp = tp.clone();
        self.command("look up a committed offset", |reply| Command::Committed {
            tp,
            reply,
        })
        .await
    }

    fn end_offsets(&self) -> Vec<(TopicPartition, i64)> {
        self.shared.end_offsets.lock().clone()
    }

    async fn close(mut self: Box<Self>, timeout: Duration) -> Result<()> {
        self.shared.close();
        let Some(done) = self.done.take() else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, done).await {
            Ok(_) => Ok(()),
            Err(_) => {
                tracing::warn!(group = ?self.group, ?timeout, "Kafka consumer did not close in time; its thread finishes in the background");
                Err(Error::Timeout {
                    what: format!("closing the Kafka consumer{}", self.last_error.suffix()),
                    after: timeout,
                })
            }
        }
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // Never block here: the thread closes its client in the background.
        self.shared.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, partition: i32, offset: i64) -> Record {
        Record {
            topic: topic.into(),
            partition,
            offset,
            timestamp: 0,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    fn consumer(shared: &Arc<Shared>) -> (KafkaConsumer, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        let c = KafkaConsumer::new(
            shared.clone(),
            rx,
            Some("g".into()),
            Duration::from_millis(200),
            LastError::default(),
        );
        (c, tx)
    }

    #[tokio::test]
    async fn records_fetched_before_a_revocation_lose_the_revoked_partitions() {
        let shared = Arc::new(Shared::default());
        let (mut c, _done) = consumer(&shared);
        let t0 = TopicPartition::new("t", 0);
        shared.push(Item::Records {
            epoch: 0,
            records: vec![rec("t", 0, 0), rec("t", 1, 0), rec("t", 0, 1)],
        });
        shared.push(Item::Records {
            epoch: 0,
            records: vec![rec("t", 0, 2)],
        });
        {
            let mut st = shared.lock();
            st.revocations.push((1, [t0.clone()].into_iter().collect()));
            st.items.push_back(Item::Revoked {
                epoch: 1,
                partitions: vec![t0.clone()],
            });
        }
        shared.push(Item::Records {
            epoch: 1,
            records: vec![rec("t", 1, 1)],
        });
        shared.push(Item::Assigned(vec![t0.clone()]));
        shared.push(Item::Records {
            epoch: 1,
            records: vec![rec("t", 0, 0)],
        });
        // The revocation jumps ahead of the batches fetched before it.
        assert_eq!(
            c.poll().await.unwrap(),
            ConsumerEvent::Revoked(vec![t0.clone()])
        );
        assert_eq!(shared.lock().acked, 0, "acknowledged by the next poll only");
        assert!(shared.lock().revocations.is_empty());
        // The older batches lost the revoked partition; the second one is
        // all revoked and skipped.
        assert_eq!(
            c.poll().await.unwrap(),
            ConsumerEvent::Records(vec![rec("t", 1, 0)])
        );
        assert_eq!(shared.lock().acked, 1);
        assert_eq!(
            c.poll().await.unwrap(),
            ConsumerEvent::Records(vec![rec("t", 1, 1)])
        );
        assert_eq!(c.poll().await.unwrap(), ConsumerEvent::Assigned(vec![t0]));
        assert_eq!(
            c.poll().await.unwrap(),
            ConsumerEvent::Records(vec![rec("t", 0, 0)])
        );
        assert_eq!(shared.lock().batches, 0);
    }

    #[tokio::test]
    async fn poll_is_cancel_safe_and_reports_the_end_of_the_thread() {
        let shared = Arc::new(Shared::default());
        let (mut c, done) = consumer(&shared);
        assert!(tokio::time::timeout(Duration::from_millis(20), c.poll())
            .await
            .is_err());
        shared.push(Item::Records {
            epoch: 0,
            records: vec![rec("t", 0, 7)],
        });
        assert_eq!(
            c.poll().await.unwrap(),
            ConsumerEvent::Records(vec![rec("t", 0, 7)])
        );
        shared.push(Item::Failed("boom".into()));
        shared.lock().finished = Some("boom".into());
        let _ = done.send(());
        assert!(matches!(c.poll().await, Err(Error::Broker(m)) if m == "boom"));
        assert!(matches!(c.poll().await, Err(Error::Stopped(_))));
        let err = c
            .commit(&[(TopicPartition::new("t", 0), 1)])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
        Box::new(c).close(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test]
    async fn a_started_commit_leaves_the_consumer_free_and_fails_fast_once_stopped() {
        let shared = Arc::new(Shared::default());
        let (mut c, _done) = consumer(&shared);
        let tp = TopicPartition::new("t", 0);
        let mut commit = c.start_commit(&[(tp.clone(), 3)]).expect("started");
        let pending = tokio::time::timeout(Duration::from_millis(20), &mut commit).await;
        assert!(pending.is_err(), "waits for the committer");
        // Polls go on while the commit is pending.
        shared.push(Item::Records {
            epoch: 0,
            records: vec![rec("t", 0, 3)],
        });
        assert_eq!(
            c.poll().await.unwrap(),
            ConsumerEvent::Records(vec![rec("t", 0, 3)])
        );
        // The committer answers.
        let Some(Command::Commit { offsets, reply }) = shared.lock().commands.pop_front() else {
            panic!("no commit queued");
        };
        assert_eq!(offsets, vec![(tp.clone(), 3)]);
        let _ = reply.send(Ok(()));
        commit.await.unwrap();
        // Once the thread ended, a commit fails at once.
        shared.lock().finished = Some("closed".into());
        let err = c.start_commit(&[(tp, 4)]).expect("started").await;
        assert!(matches!(err, Err(Error::Broker(m)) if m.contains("stopped")));
    }

    #[tokio::test]
    async fn commands_time_out_and_close_is_bounded() {
        let shared = Arc::new(Shared::default());
        let (mut c, _done) = consumer(&shared);
        // Nobody serves commands: the commit times out.
        let err = c
            .commit(&[(TopicPartition::new("t", 0), 1)])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert_eq!(shared.lock().commands.len(), 1);
        // The thread never ends: close gives up after its timeout.
        let started = std::time::Instant::now();
        let err = Box::new(c)
            .close(Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(shared.lock().closing);
    }
}
