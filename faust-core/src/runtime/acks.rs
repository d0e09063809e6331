//! Messages delivered to agents and the commit rule: a partition's offset is
//! committed only when every earlier offset of that partition is acked.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::record::{Headers, Record, TopicPartition};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{Mutex, MutexGuard, Notify};

/// One consumed record, shared by every agent that receives it.
///
/// This is Faust's `Message`: the raw key, value and headers with the Kafka
/// coordinates. The offset is acked when every agent that got the message
/// has finished with it.
#[derive(Debug)]
pub struct Message {
    record: Record,
    acks: Arc<PartitionAcks>,
    /// Agents still working on it.
    refs: AtomicUsize,
    /// Every agent is done: its partition's committer may pass it.
    done: AtomicBool,
}

impl Message {
    pub(crate) fn new(record: Record, acks: Arc<PartitionAcks>, refs: usize) -> Self {
        Self {
            record,
            acks,
            refs: AtomicUsize::new(refs),
            done: AtomicBool::new(false),
        }
    }

    /// A message of topic `t`, partition 0, at `offset`, with nothing else set.
    #[cfg(test)]
    pub(crate) fn for_test(offset: i64, acks: Arc<PartitionAcks>, refs: usize) -> Self {
        Self::new(
            Record {
                topic: "t".into(),
                partition: 0,
                offset,
                timestamp: 0,
                key: None,
                value: None,
                headers: vec![],
            },
            acks,
            refs,
        )
    }

    /// The record as read from the transport.
    pub fn record(&self) -> &Record {
        &self.record
    }
    /// Topic name.
    pub fn topic(&self) -> &str {
        &self.record.topic
    }
    /// Partition number.
    pub fn partition(&self) -> i32 {
        self.record.partition
    }
    /// Offset in the partition.
    pub fn offset(&self) -> i64 {
        self.record.offset
    }
    /// Timestamp in milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp
    }
    /// Raw key.
    pub fn key(&self) -> Option<&Bytes> {
        self.record.key.as_ref()
    }
    /// Raw value.
    pub fn value(&self) -> Option<&Bytes> {
        self.record.value.as_ref()
    }
    /// Headers.
    pub fn headers(&self) -> &Headers {
        &self.record.headers
    }
    /// Topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        self.record.topic_partition()
    }
}

/// A shared handle to a consumed [`Message`] (it derefs to it); cheap to
/// clone.
///
/// The messages of one polled batch share one allocation: a handle keeps
/// its whole batch (every record of one poll of the transport) in memory, so
/// keep the values you need rather than the handles.
#[derive(Clone)]
pub struct MessageRef {
    batch: Arc<[Message]>,
    index: usize,
}

impl MessageRef {
    /// A handle to message `index` of `batch`.
    pub(crate) fn new(batch: Arc<[Message]>, index: usize) -> MessageRef {
        debug_assert!(index < batch.len());
        MessageRef { batch, index }
    }

    /// A handle to a message of its own.
    #[cfg(test)]
    pub(crate) fn single(message: Message) -> MessageRef {
        MessageRef {
            batch: Arc::from(vec![message]),
            index: 0,
        }
    }
}

impl std::ops::Deref for MessageRef {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.batch[self.index]
    }
}

impl std::fmt::Debug for MessageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// Ack bookkeeping of one assigned partition.
///
/// The conductor registers the offsets it hands out, one run of a polled
/// batch at a time; an agent finishing a message only sets the message's
/// `done` flag (no lock). Whoever computes the commit (the conductor) walks
/// the registered runs from the oldest while their flags are set.
#[derive(Debug)]
pub(crate) struct PartitionAcks {
    state: Mutex<AckState>,
    /// Messages being processed, plus [`REVOKING`] once the partition is
    /// being revoked: one word, so an actor starting and a revocation
    /// cannot both miss the other.
    in_flight: AtomicUsize,
    idle: Notify,
    /// The partition's end offset as the transport last told (-1: unknown).
    end: std::sync::atomic::AtomicI64,
}

/// Where a partition's consumption stands (for metrics and readiness).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Offset last committed (the next to read after a restart).
    pub(crate) committed: Option<i64>,
    /// Oldest offset delivered to the agents and not acked yet.
    pub(crate) oldest_unacked: Option<i64>,
    /// Offset after the newest record delivered to the agents.
    pub(crate) delivered: Option<i64>,
    /// End offset of the partition (the next offset to be written), as
    /// the transport last told.
    pub(crate) end: Option<i64>,
}

/// The flag of [`PartitionAcks::in_flight`] saying the partition is being
/// revoked.
const REVOKING: usize = 1 << (usize::BITS - 1);

/// Registered messages `next..end` of a batch, in offset order.
#[derive(Debug)]
struct PendingRun {
    batch: Arc<[Message]>,
    next: usize,
    end: usize,
}

#[derive(Debug, Default)]
struct AckState {
    /// Delivered messages not yet committable, in offset order.
    pending: VecDeque<PendingRun>,
    /// Offset to commit next time (all earlier delivered offsets are acked).
    commit: Option<i64>,
    /// Offset last committed.
    committed: Option<i64>,
}

impl AckState {
    /// Move `commit` past the acked messages at the front of `pending`
    /// (and let go of their batches).
    fn advance(&mut self) {
        while let Some(run) = self.pending.front_mut() {
            while run.next < run.end && run.batch[run.next].done.load(Ordering::Acquire) {
                run.next += 1;
            }
            if run.next < run.end {
                self.commit = Some(run.batch[run.next].offset());
                return;
            }
            self.commit = Some(run.batch[run.end - 1].offset() + 1);
            self.pending.pop_front();
        }
    }
}

impl PartitionAcks {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(AckState::default()),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            end: std::sync::atomic::AtomicI64::new(-1),
        })
    }

    /// The transport says the partition ends at `offset`.
    pub(crate) fn set_end(&self, offset: i64) {
        self.end.store(offset, std::sync::atomic::Ordering::Relaxed);
    }

    /// Where consumption stands.
    pub(crate) fn progress(&self) -> Progress {
        let mut st = self.lock();
        st.advance();
        let oldest_unacked = st.pending.front().map(|r| r.batch[r.next].offset());
        let delivered = st
            .pending
            .back()
            .map(|r| r.batch[r.end - 1].offset() + 1)
            .or(st.commit);
        let end = self.end.load(std::sync::atomic::Ordering::Relaxed);
        Progress {
            committed: st.committed,
            oldest_unacked,
            delivered,
            end: (end >= 0).then_some(end).max(delivered),
        }
    }

    fn lock(&self) -> MutexGuard<'_, AckState> {
        self.state.lock()
    }

    /// Record that messages `range` of `batch` (of this partition, in
    /// offset order, after every message registered before) were delivered.
    pub(crate) fn register_run(&self, batch: &Arc<[Message]>, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        let mut st = self.lock();
        // Let go of the batches already passed (they would otherwise live
        // until the next commit).
        st.advance();
        if st.pending.is_empty() && st.commit.is_none() {
            // Nothing earlier is outstanding: committing it means "resume here".
            st.commit = Some(batch[range.start].offset());
        }
        st.pending.push_back(PendingRun {
            batch: batch.clone(),
            next: range.start,
            end: range.end,
        });
    }

    /// Forget the registered messages (the partition is gone); their
    /// batches point back here, so holding them would leak both.
    pub(crate) fn release(&self) {
        self.lock().pending.clear();
    }

    /// Offset to commit if it moved since the last commit.
    pub(crate) fn take_commit(&self) -> Option<i64> {
        let mut st = self.lock();
        st.advance();
        match (st.commit, st.committed) {
            (Some(c), Some(done)) if c <= done => None,
            (Some(c), _) => {
                st.committed = Some(c);
                Some(c)
            }
            (None, _) => None,
        }
    }

    /// A commit of `offset` (from [`take_commit`](Self::take_commit))
    /// failed: the next `take_commit` offers the partition's offset again
    /// (the newest one by then), even if it did not move.
    pub(crate) fn commit_failed(&self, offset: i64) {
        let mut st = self.lock();
        if st.committed == Some(offset) {
            st.committed = None;
        }
    }

    /// Whether something is delivered but not committed yet (unacked, or
    /// acked since the last commit).
    pub(crate) fn uncommitted(&self) -> bool {
        let mut st = self.lock();
        st.advance();
        !st.pending.is_empty() || (st.commit.is_some() && st.commit != st.committed)
    }

    /// The offset to commit now, whether or not it was committed before.
    pub(crate) fn current_commit(&self) -> Option<i64> {
        let mut st = self.lock();
        st.advance();
        if let Some(c) = st.commit {
            st.committed = Some(c);
        }
        st.commit
    }

    /// An actor starts working on a message of this partition. Returns false
    /// when the partition is being revoked: the message must be dropped.
    fn begin(&self) -> bool {
        // Relaxed: the count is one word, whose order of changes alone
        // decides whether this or the revocation comes first.
        if self.in_flight.fetch_add(1, Ordering::Relaxed) & REVOKING != 0 {
            self.end();
            return false;
        }
        true
    }

    fn end(&self) {
        // Release: the work done on the message happens before a revocation
        // that sees it finished.
        if self.in_flight.fetch_sub(1, Ordering::Release) == REVOKING | 1 {
            self.idle.notify_waiters();
        }
    }

    /// Stop handing out this partition's messages and wait (up to `deadline`)
    /// for the ones being processed. Returns false if the deadline passed.
    pub(crate) async fn revoke(&self, deadline: Duration) -> bool {
        self.stop();
        tokio::time::timeout(deadline, self.until_idle())
            .await
            .is_ok()
    }

    /// Refuse the partition's messages from now on ([`begin`](Self::begin)
    /// returns false).
    fn stop(&self) {
        self.in_flight.fetch_or(REVOKING, Ordering::AcqRel);
    }

    /// Wait until no message of the partition is being processed.
    async fn until_idle(&self) {
        loop {
            // Created before looking: an `end` in between wakes it.
            let notified = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) & !REVOKING == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Number of delivered offsets not yet acked.
    #[cfg(test)]
    pub(crate) fn unacked(&self) -> usize {
        self.lock()
            .pending
            .iter()
            .flat_map(|r| r.batch[r.next..r.end].iter())
            .filter(|m| !m.done.load(Ordering::Acquire))
            .count()
    }
}

/// One agent's hold on a message handed to it: the agent's share of the
/// message is acked when the lease is dropped after [`Lease::start`], and
/// never acked if it is [abandoned](Lease::abandon).
#[derive(Debug)]
pub(crate) struct Lease {
    msg: MessageRef,
    started: bool,
    /// The value itself, for a message sent through a channel (no bytes);
    /// boxed again so that a lease stays one pointer larger, not two.
    payload: Option<Box<Payload>>,
}

/// A value sent through a channel, as it travels to the reading actor.
pub(crate) type Payload = Box<dyn std::any::Any + Send>;

impl Lease {
    pub(crate) fn new(msg: MessageRef) -> Self {
        Self {
            msg,
            started: false,
            payload: None,
        }
    }

    /// A lease of a channel message, carrying its value.
    pub(crate) fn with_payload(msg: MessageRef, payload: Payload) -> Self {
        Self {
            msg,
            started: false,
            payload: Some(Box::new(payload)),
        }
    }

    pub(crate) fn message(&self) -> &MessageRef {
        &self.msg
    }

    /// The value of a channel message (once; `None` for a consumed record).
    pub(crate) fn take_payload(&mut self) -> Option<Payload> {
        self.payload.take().map(|p| *p)
    }

    /// Claim the message for processing; false if its partition was revoked.
    pub(crate) fn start(&mut self) -> bool {
        self.started = self.msg.acks.begin();
        self.started
    }

    /// Give the message up without acking it (it will be delivered again
    /// after a restart or rebalance, since its offset is never committed).
    pub(crate) fn abandon(mut self) {
        self.release();
    }

    /// Give up the claim without acking: the message can be claimed again
    /// with [`start`](Self::start) (by another reader of its queue), and
    /// dropping it leaves it unacked.
    pub(crate) fn release(&mut self) {
        if self.started {
            self.started = false;
            self.msg.acks.end();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.started {
            if self.msg.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.msg.done.store(true, Ordering::Release);
            }
            self.msg.acks.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(acks: &Arc<PartitionAcks>, offset: i64, refs: usize) -> MessageRef {
        let m = MessageRef::single(Message::for_test(offset, acks.clone(), refs));
        acks.register_run(&m.batch, 0..1);
        m
    }

    #[test]
    fn a_run_commits_its_acked_prefix_and_lets_go_of_its_batch() {
        let acks = PartitionAcks::new();
        let batch: Arc<[Message]> = (5..9)
            .map(|offset| Message::for_test(offset, acks.clone(), 1))
            .collect();
        // Offsets 6..9 of the batch are delivered; 5 was not for us.
        acks.register_run(&batch, 1..4);
        let mut d: Vec<_> = (1..4)
            .map(|i| Lease::new(MessageRef::new(batch.clone(), i)))
            .collect();
        for x in &mut d {
            assert!(x.start());
        }
        assert_eq!(acks.take_commit(), Some(6));
        drop(d.remove(1)); // 7
        assert_eq!(acks.take_commit(), None);
        assert_eq!(acks.unacked(), 2);
        drop(d.remove(0)); // 6 -> 7 already acked
        assert_eq!(acks.take_commit(), Some(8));
        drop(d);
        assert_eq!(acks.take_commit(), Some(9));
        assert_eq!(Arc::strong_count(&batch), 1, "the passed run is let go");
    }

    #[test]
    fn release_lets_go_of_unacked_runs() {
        let acks = PartitionAcks::new();
        let m = msg(&acks, 0, 1);
        assert_eq!(Arc::strong_count(&m.batch), 2);
        acks.release();
        assert_eq!(Arc::strong_count(&m.batch), 1);
    }

    #[test]
    fn commit_waits_for_every_earlier_offset() {
        let acks = PartitionAcks::new();
        let m: Vec<_> = (10..14).map(|o| msg(&acks, o, 1)).collect();
        assert_eq!(acks.take_commit(), Some(10));
        let mut d: Vec<_> = m.iter().map(|m| Lease::new(m.clone())).collect();
        for x in &mut d {
            assert!(x.start());
        }
        let d3 = d.pop().unwrap();
        let d2 = d.pop().unwrap();
        let d1 = d.pop().unwrap();
        drop(d2); // offset 12 done, 10 and 11 in flight
        assert_eq!(acks.take_commit(), None);
        drop(d.pop()); // 10
        assert_eq!(acks.take_commit(), Some(11));
        drop(d1); // 11 -> 12 already acked
        assert_eq!(acks.take_commit(), Some(13));
        drop(d3);
        assert_eq!(acks.take_commit(), Some(14));
        assert_eq!(acks.take_commit(), None);
    }

    #[test]
    fn a_failed_commit_is_offered_again() {
        let acks = PartitionAcks::new();
        let m = msg(&acks, 3, 1);
        assert!(acks.uncommitted());
        let mut d = Lease::new(m);
        assert!(d.start());
        drop(d);
        assert_eq!(acks.take_commit(), Some(4));
        assert!(!acks.uncommitted());
        assert_eq!(acks.take_commit(), None);
        acks.commit_failed(4);
        assert!(acks.uncommitted());
        assert_eq!(acks.take_commit(), Some(4));
        // A failure of an older offset does not undo a newer commit.
        acks.commit_failed(2);
        assert_eq!(acks.take_commit(), None);
    }

    #[test]
    fn shared_message_is_acked_by_the_last_agent() {
        let acks = PartitionAcks::new();
        let m = msg(&acks, 0, 2);
        let _ = acks.take_commit();
        let mut a = Lease::new(m.clone());
        let mut b = Lease::new(m);
        assert!(a.start() && b.start());
        drop(a);
        assert_eq!(acks.take_commit(), None);
        drop(b);
        assert_eq!(acks.take_commit(), Some(1));
    }

    #[test]
    fn abandoned_message_is_never_committed() {
        let acks = PartitionAcks::new();
        let m = msg(&acks, 0, 1);
        let _ = acks.take_commit();
        let mut d = Lease::new(m);
        assert!(d.start());
        d.abandon();
        assert_eq!(acks.take_commit(), None);
        assert_eq!(acks.unacked(), 1);
    }

    #[tokio::test]
    async fn revoke_waits_for_in_flight_and_refuses_new_work() {
        let acks = PartitionAcks::new();
        let mut d = Lease::new(msg(&acks, 0, 1));
        assert!(d.start());
        let mut queued = Lease::new(msg(&acks, 1, 1));
        let a2 = acks.clone();
        let h = tokio::spawn(async move { a2.revoke(Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        assert!(!queued.start(), "a revoking partition hands out nothing");
        drop(d);
        assert!(h.await.unwrap());
        assert_eq!(acks.take_commit(), Some(1));
    }
}

/// loom models (`--cfg faust_loom`): every interleaving of agents acking
/// and the conductor committing or revoking, on the code above.
#[cfg(all(test, faust_loom))]
mod loom_tests {
    use super::*;

    /// Messages at offsets 0.. for `refs[i]` agents each, registered as one run.
    fn batch(acks: &Arc<PartitionAcks>, refs: &[usize]) -> Arc<[Message]> {
        let batch: Arc<[Message]> = (0..)
            .zip(refs)
            .map(|(offset, &refs)| Message::for_test(offset, acks.clone(), refs))
            .collect();
        acks.register_run(&batch, 0..batch.len());
        batch
    }

    /// An agent's work on message `index`: `flag` set, then the lease dropped.
    fn work(batch: &Arc<[Message]>, index: usize, flag: &AtomicBool) {
        let mut lease = Lease::new(MessageRef::new(batch.clone(), index));
        assert!(lease.start());
        flag.store(true, Ordering::Relaxed);
        drop(lease);
    }

    /// Offset 0 goes to two agents, offset 1 to one of them; the committer
    /// runs meanwhile. A committed offset covers only finished work.
    #[test]
    fn loom_commit_never_passes_an_unacked_message() {
        loom::model(|| {
            let acks = PartitionAcks::new();
            let batch = batch(&acks, &[2, 1]);
            // Offset 0 by agent a, offset 0 by agent b, offset 1 by b.
            let done: Arc<[AtomicBool]> = (0..3).map(|_| AtomicBool::new(false)).collect();
            let a = {
                let (batch, done) = (batch.clone(), done.clone());
                loom::thread::spawn(move || work(&batch, 0, &done[0]))
            };
            let b = {
                let (batch, done) = (batch.clone(), done.clone());
                loom::thread::spawn(move || {
                    work(&batch, 0, &done[1]);
                    work(&batch, 1, &done[2]);
                })
            };
            let check = |commit: i64| {
                let finished = |i: usize| done[i].load(Ordering::Relaxed);
                if commit >= 1 {
                    assert!(finished(0) && finished(1), "offset 0 committed unfinished");
                }
                if commit >= 2 {
                    assert!(finished(2), "offset 1 committed unfinished");
                }
            };
            let mut last = 0;
            for _ in 0..2 {
                let commit = acks.current_commit().unwrap();
                assert!(commit >= last, "the commit went back");
                check(commit);
                last = commit;
            }
            a.join().unwrap();
            b.join().unwrap();
            assert_eq!(acks.current_commit(), Some(2));
        });
    }

    /// Two agents start a message each while the partition is revoked: once
    /// the revocation is done no message is being processed, and none
    /// starts any more.
    #[test]
    fn loom_revoke_waits_for_the_messages_being_processed() {
        loom::model(|| {
            let acks = PartitionAcks::new();
            let batch = batch(&acks, &[1, 1, 1]);
            // Per agent: 1 while processing, 2 once finished.
            let stage: Arc<[AtomicUsize]> = (0..2).map(|_| AtomicUsize::new(0)).collect();
            let agents: Vec<_> = (0..2)
                .map(|i| {
                    let (batch, stage) = (batch.clone(), stage.clone());
                    loom::thread::spawn(move || {
                        let mut lease = Lease::new(MessageRef::new(batch, i));
                        if lease.start() {
                            stage[i].store(1, Ordering::Relaxed);
                            stage[i].store(2, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            acks.stop();
            loom::future::block_on(acks.until_idle());
            for s in stage.iter() {
                assert_ne!(s.load(Ordering::Relaxed), 1, "revoked while processing");
            }
            let mut late = Lease::new(MessageRef::new(batch.clone(), 2));
            assert!(!late.start(), "a revoked partition hands out a message");
            for a in agents {
                a.join().unwrap();
            }
        });
    }
}
