//! The consumer thread: owns a librdkafka consumer, polls it, runs its
//! rebalance callbacks and forwards records in batches; a second thread
//! (the committer) runs the runtime's commands (commits, committed-offset
//! lookups), which may wait for the broker. See [`crate::consumer`] for the
//! protocol with the async side.
//!
//! The thread does not sleep inside librdkafka: it drains the consumer
//! queue with non-blocking polls, then waits on a condition variable that
//! librdkafka rings when its queue becomes non-empty, and that the runtime
//! rings for acknowledgements, room in the mailbox or closing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faust_core::record::now_millis;
use faust_core::{Error, Record, Result, TopicPartition};
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;

use crate::consumer::{drop_revoked, Command, Item, Shared};
use crate::context::LastError;

/// Longest wait without looking at librdkafka's queue, in case a wake-up
/// was missed (librdkafka only rings on the empty → non-empty edge).
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// How long the mailbox may stay full before the assigned partitions are
/// paused (pausing drops what librdkafka prefetched for them).
const PAUSE_AFTER: Duration = Duration::from_millis(250);

/// What the consumer reads.
#[derive(Debug)]
pub(crate) enum Mode {
    /// Join the group and subscribe to these topics.
    Group { topics: Vec<String> },
    /// Read exactly these partitions from their beginning.
    Assign { partitions: Vec<TopicPartition> },
}

/// The librdkafka context of a consumer thread.
pub(crate) struct ConsumerCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) last_error: LastError,
    pub(crate) revoke_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    /// Revocations so far.
    epoch: AtomicU64,
    /// Partitions revoked since the thread's loop last looked.
    revoked: Mutex<Vec<TopicPartition>>,
    /// Events served inside a poll (rebalances, commits, logs): a poll that
    /// returns nothing but served one may have left messages queued.
    served: AtomicU64,
    /// Assignments so far.
    assignments: AtomicU64,
}

impl ConsumerCtx {
    pub(crate) fn new(
        shared: Arc<Shared>,
        last_error: LastError,
        revoke_timeout: Duration,
        operation_timeout: Duration,
    ) -> Self {
        Self {
            shared,
            last_error,
            revoke_timeout,
            operation_timeout,
            epoch: AtomicU64::new(0),
            revoked: Mutex::new(Vec::new()),
            served: AtomicU64::new(0),
            assignments: AtomicU64::new(0),
        }
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions = to_partitions(tpl);
        if partitions.is_empty() {
            return;
        }
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.revoked.lock().extend(partitions.iter().cloned());
        let lost = consumer.assignment_lost();
        tracing::debug!(
            ?partitions,
            epoch,
            lost,
            "Kafka consumer: partitions revoked"
        );
        {
            let mut st = self.shared.lock();
            if st.closing {
                return;
            }
            st.revocations
                .push((epoch, partitions.iter().cloned().collect::<HashSet<_>>()));
            st.items.push_back(Item::Revoked { epoch, partitions });
        }
        self.shared.wake_async.notify_one();
        // Wait until the runtime has released the partitions (it polls
        // again). It commits them first, on the committer thread, and polls
        // only once that commit is done: it lands before the partitions move.
        let deadline = Instant::now() + self.revoke_timeout;
        let mut st = self.shared.lock();
        loop {
            if st.acked >= epoch || st.closing {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    timeout = ?self.revoke_timeout,
                    "Kafka consumer: the runtime did not release revoked partitions in time; handing them over anyway"
                );
                return;
            }
            st = self.shared.wait(st, deadline - now);
        }
    }
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.last_error
            .forward_log("consumer", level, fac, log_message);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.served.fetch_add(1, Ordering::Relaxed);
        match end_offsets(statistics) {
            Ok(ends) => *self.shared.end_offsets.lock() = ends,
            Err(e) => tracing::debug!(error = %e, "Kafka consumer: unreadable statistics"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.last_error.client_error("consumer", &error, reason);
    }
}

/// The part of librdkafka's statistics (`statistics.interval.ms`) read
/// here: each partition's high watermark.
#[derive(serde::Deserialize)]
struct Statistics {
    #[serde(default)]
    topics: std::collections::HashMap<String, TopicStatistics>,
}

#[derive(serde::Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: std::collections::HashMap<String, PartitionStatistics>,
}

#[derive(serde::Deserialize)]
struct PartitionStatistics {
    partition: i32,
    hi_offset: i64,
}

/// The end offset (high watermark) of every partition the statistics know
/// one of (librdkafka's internal partition -1 and unknown offsets left out).
fn end_offsets(statistics: &[u8]) -> serde_json::Result<Vec<(TopicPartition, i64)>> {
    let stats: Statistics = serde_json::from_slice(statistics)?;
    Ok(stats
        .topics
        .into_iter()
        .flat_map(|(topic, t)| {
            let topic: Arc<str> = topic.into();
            t.partitions
                .into_values()
                .filter(|p| p.partition >= 0 && p.hi_offset >= 0)
                .map(move |p| (TopicPartition::new(topic.clone(), p.partition), p.hi_offset))
        })
        .collect())
}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.served.fetch_add(1, Ordering::Relaxed);
        match rebalance {
            Rebalance::Revoke(tpl) => self.on_revoke(consumer, tpl),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "Kafka consumer: rebalance error");
                self.last_error.set(format!("rebalance error: {e}"));
            }
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.assignments.fetch_add(1, Ordering::SeqCst);
            let partitions = to_partitions(tpl);
            tracing::debug!(
                partitions = %faust_core::record::compact(&partitions),
                "Kafka consumer: partitions assigned"
            );
            if !partitions.is_empty() && !self.shared.lock().closing {
                self.shared.push(Item::Assigned(partitions));
            }
        }
    }

    fn commit_callback(&self, _result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }
}

fn to_partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut v: Vec<TopicPartition> = tpl
        .elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect();
    v.sort();
    v
}

/// The committer thread: runs the runtime's commands one at a time until
/// closing. A synchronous commit waits for the broker here, never on the
/// consumer thread, so fetching and forwarding go on meanwhile (librdkafka
/// handles are thread-safe; the commit is served by its own threads).
fn run_commands(consumer: &BaseConsumer<ConsumerCtx>) {
    let ctx = consumer.context();
    loop {
        let commands = {
            let mut st = ctx.shared.lock();
            loop {
                if st.closing {
                    // Dropping the reply senders fails the waiting commands.
                    st.commands.clear();
                    return;
                }
                if !st.commands.is_empty() {
                    break st.commands.drain(..).collect::<Vec<_>>();
                }
                st = ctx.shared.wait_committer(st, IDLE_WAIT);
            }
        };
        serve(consumer, commands, ctx.operation_timeout);
    }
}

/// `offsets` split into those of partitions assigned to `consumer` and the
/// partitions no longer assigned to it.
fn split_assigned(
    consumer: &BaseConsumer<ConsumerCtx>,
    offsets: Vec<(TopicPartition, i64)>,
) -> (Vec<(TopicPartition, i64)>, Vec<TopicPartition>) {
    let Ok(assigned) = consumer.assignment() else {
        // Unknown: leave the check to the broker.
        return (offsets, Vec::new());
    };
    let (kept, moved): (Vec<_>, Vec<_>) = offsets
        .into_iter()
        .partition(|(tp, _)| assigned.find_partition(&tp.topic, tp.partition).is_some());
    (kept, moved.into_iter().map(|(tp, _)| tp).collect())
}

/// Run commands on the consumer (outside the mailbox lock).
fn serve(consumer: &BaseConsumer<ConsumerCtx>, commands: Vec<Command>, timeout: Duration) {
    for command in commands {
        match command {
            // The runtime gave up on it (a newer one follows).
            Command::Commit { reply, .. } if reply.is_closed() => {}
            Command::Commit { offsets, reply } => {
                // Kafka fences commits by group generation only: a member
                // that lost a partition could still overwrite its new
                // owner's offset. Only assigned partitions are committed.
                let (offsets, moved) = split_assigned(consumer, offsets);
                let mut result = Ok(());
                let mut tpl = TopicPartitionList::with_capacity(offsets.len());
                for (tp, offset) in &offsets {
                    if let Err(e) =
                        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                    {
                        result = Err(Error::Broker(format!(
                            "invalid offset {offset} for {tp}: {e}"
                        )));
                    }
                }
                if result.is_ok() && !offsets.is_empty() {
                    result = consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
                        Error::Broker(format!(
                            "commit of {} failed: {e}",
                            offsets
                                .iter()
                                .map(|(tp, o)| format!("{tp}@{o}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    });
                }
                if result.is_ok() && !moved.is_empty() {
                    result = Err(Error::Broker(format!(
                        "commit of {} refused: no longer assigned to this member",
                        moved
                            .iter()
                            .map(|tp| tp.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                let _ = reply.send(result);
            }
            Command::Committed { tp, reply } => {
                let mut tpl = TopicPartitionList::with_capacity(1);
                tpl.add_partition(&tp.topic, tp.partition);
                let result = consumer
                    .committed_offsets(tpl, timeout)
                    .map(|list| {
                        list.find_partition(&tp.topic, tp.partition).and_then(|e| {
                            match e.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            }
                        })
                    })
                    .map_err(|e| {
                        Error::Broker(format!("cannot look up the committed offset of {tp}: {e}"))
                    });
                let _ = reply.send(result);
            }
        }
    }
}

/// Marks the thread finished and wakes everyone when it ends, also by panic.
struct Finish {
    shared: Arc<Shared>,
    why: String,
    done: Option<oneshot::Sender<()>>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.finished = Some(std::mem::take(&mut self.why));
            // Dropping the reply senders fails the waiting commands.
            st.commands.clear();
        }
        self.shared.wake_async.notify_one();
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// What one non-blocking poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polled {
    /// A message, added to the batch.
    Message,
    /// An event was served (rebalance, commit result, log, error): more
    /// may be queued.
    Served,
    /// The queue is empty.
    Nothing,
}

/// The thread's state between polls.
struct Worker<'c> {
    consumer: &'c BaseConsumer<ConsumerCtx>,
    max_batch: usize,
    capacity: usize,
    /// Records being gathered.
    batch: Vec<Record>,
    /// Records waiting for room in the mailbox.
    pending: Vec<Record>,
    /// Revocation epoch `batch` and `pending` were fetched in.
    epoch: u64,
    /// Partitions paused while the mailbox is full.
    paused: Vec<TopicPartition>,
    /// `ConsumerCtx::assignments` when the assignment was last paused.
    paused_assignment: u64,
    topics: Vec<Arc<str>>,
}

impl Worker<'_> {
    fn new(consumer: &BaseConsumer<ConsumerCtx>, max_batch: usize, capacity: usize) -> Worker<'_> {
        Worker {
            consumer,
            max_batch,
            capacity,
            batch: Vec::new(),
            pending: Vec::new(),
            epoch: 0,
            paused: Vec::new(),
            paused_assignment: 0,
            topics: Vec::new(),
        }
    }

    fn ctx(&self) -> &ConsumerCtx {
        self.consumer.context()
    }

    /// After a poll: a revocation inside it takes its partitions out of
    /// the records not handed out yet.
    fn after_poll(&mut self) {
        let epoch = self.ctx().epoch.load(Ordering::SeqCst);
        if epoch != self.epoch {
            let revoked: HashSet<TopicPartition> = self.ctx().revoked.lock().drain(..).collect();
            let revocation = [(epoch, revoked)];
            drop_revoked(&mut self.batch, self.epoch, &revocation);
            drop_revoked(&mut self.pending, self.epoch, &revocation);
            self.epoch = epoch;
        }
    }

    fn record(&mut self, m: &BorrowedMessage<'_>) -> Record {
        let topic = match self.topics.iter().find(|t| ***t == *m.topic()) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(m.topic());
                self.topics.push(t.clone());
                t
            }
        };
        Record {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis().unwrap_or_else(now_millis),
            key: m.key().map(Bytes::copy_from_slice),
            value: m.payload().map(Bytes::copy_from_slice),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                h.value.map(Bytes::copy_from_slice).unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// One non-blocking poll (rebalance callbacks run inside it).
    fn poll_once(&mut self) -> std::result::Result<Polled, String> {
        let served = self.ctx().served.load(Ordering::Relaxed);
        let polled = self.consumer.poll(Duration::ZERO);
        self.after_poll();
        match polled {
            Some(Ok(m)) => {
                let record = self.record(&m);
                self.batch.push(record);
                Ok(Polled::Message)
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                Err(format!("fatal consumer error: {code}"))
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka consumer error");
                self.ctx().last_error.set(e.to_string());
                Ok(Polled::Served)
            }
            None if self.ctx().served.load(Ordering::Relaxed) != served => Ok(Polled::Served),
            None => Ok(Polled::Nothing),
        }
    }

    /// Drain librdkafka's queue into the batch. `Ok(true)` if it may hold
    /// more (the batch filled up).
    fn drain(&mut self) -> std::result::Result<bool, String> {
        self.ctx().shared.lock().doorbell = false;
        loop {
            match self.poll_once()? {
                Polled::Message if self.batch.len() >= self.max_batch => return Ok(true),
                Polled::Message | Polled::Served => {}
                Polled::Nothing => return Ok(false),
            }
        }
    }

    /// Move `pending` to the mailbox if there is room.
    fn offer(&mut self) -> Offer {
        let shared = self.ctx().shared.clone();
        let mut st = shared.lock();
        if st.closing {
            return Offer::Closing;
        }
        if self.pending.is_empty() {
            return Offer::Sent;
        }
        if st.batches >= self.capacity {
            return Offer::Full;
        }
        st.batches += 1;
        st.items.push_back(Item::Records {
            epoch: self.epoch,
            records: std::mem::take(&mut self.pending),
        });
        drop(st);
        shared.wake_async.notify_one();
        Offer::Sent
    }

    /// Pause every assigned partition not paused yet.
    fn pause_assignment(&mut self) {
        self.paused_assignment = self.ctx().assignments.load(Ordering::SeqCst);
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for e in assignment.elements() {
            let tp = TopicPartition::new(e.topic(), e.partition());
            if !self.paused.contains(&tp) {
                tpl.add_partition(e.topic(), e.partition());
                self.paused.push(tp);
            }
        }
        if tpl.count() > 0 {
            tracing::debug!(
                partitions = tpl.count(),
                "Kafka consumer: mailbox full, pausing"
            );
            if let Err(e) = self.consumer.pause(&tpl) {
                tracing::debug!(error = %e, "Kafka consumer: pause failed");
            }
        }
    }

    /// Resume what [`pause_assignment`](Self::pause_assignment) paused
    /// (librdkafka keeps a partition paused across rebalances).
    fn resume_paused(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(self.paused.len());
        for tp in self.paused.drain(..) {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        if let Err(e) = self.consumer.resume(&tpl) {
            tracing::debug!(error = %e, "Kafka consumer: resume failed");
        }
    }

    /// Wait until `ready` holds or `IDLE_WAIT` passed.
    fn wait_until(&self, ready: impl Fn(&crate::consumer::State) -> bool) {
        let shared = &self.ctx().shared;
        let st = shared.lock();
        if !ready(&st) && !st.closing {
            drop(shared.wait(st, IDLE_WAIT));
        }
    }

    /// Poll, batch and hand out records until closing.
    ///
    /// When the mailbox is full the thread stops fetching: at first it only
    /// waits; if the mailbox stays full for
    /// [`PAUSE_AFTER`] it pauses the assigned partitions and polls again,
    /// so that a stalled runtime never holds up a rebalance. It resumes them
    /// once the runtime has taken half the mailbox (librdkafka fetches a
    /// resumed partition again from the position handed out).
    fn run(&mut self) -> std::result::Result<(), String> {
        let mut full_since: Option<Instant> = None;
        loop {
            if self.ctx().shared.lock().closing {
                return Ok(());
            }
            let mut more = false;
            if self.pending.is_empty() {
                more = self.drain()?;
                self.pending = std::mem::take(&mut self.batch);
            } else if !self.paused.is_empty() {
                // Serve rebalances; records of partitions assigned since the
                // pause wait in `batch`.
                self.drain()?;
            }
            match self.offer() {
                Offer::Closing => return Ok(()),
                Offer::Sent => {
                    full_since = None;
                    if !self.paused.is_empty()
                        && self.ctx().shared.lock().batches <= self.capacity / 2
                    {
                        self.resume_paused();
                    }
                    if !more && self.pending.is_empty() {
                        let paused = !self.paused.is_empty();
                        let low = self.capacity / 2;
                        self.wait_until(|st| st.doorbell || (paused && st.batches <= low));
                    }
                }
                Offer::Full => {
                    let since = *full_since.get_or_insert_with(Instant::now);
                    let assigned = self.ctx().assignments.load(Ordering::SeqCst);
                    if (self.paused.is_empty() && since.elapsed() >= PAUSE_AFTER)
                        || (!self.paused.is_empty() && assigned != self.paused_assignment)
                    {
                        self.pause_assignment();
                    }
                    let paused = !self.paused.is_empty();
                    let capacity = self.capacity;
                    self.wait_until(|st| st.batches < capacity || (paused && st.doorbell));
                }
            }
        }
    }
}

/// What [`Worker::offer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// Handed out, or nothing to hand out.
    Sent,
    /// The mailbox is full.
    Full,
    /// The consumer is closing.
    Closing,
}

/// Wait until the metadata of every partition is known, so that the first
/// `Assigned` means the partitions exist.
fn await_partitions(
    consumer: &BaseConsumer<ConsumerCtx>,
    partitions: &[TopicPartition],
) -> std::result::Result<(), String> {
    let ctx = consumer.context();
    let deadline = Instant::now() + ctx.operation_timeout;
    let mut topics: Vec<&str> = partitions.iter().map(|tp| &*tp.topic).collect();
    topics.sort_unstable();
    topics.dedup();
    let mut missing = String::new();
    while Instant::now() < deadline {
        if ctx.shared.lock().closing {
            return Ok(());
        }
        missing.clear();
        for topic in &topics {
            let per_try = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(10));
            match consumer.fetch_metadata(Some(topic), per_try) {
                Ok(md) => {
                    let known: HashSet<i32> = md
                        .topics()
                        .iter()
                        .filter(|t| t.name() == *topic)
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect();
                    for tp in partitions.iter().filter(|tp| &*tp.topic == *topic) {
                        if !known.contains(&tp.partition) {
                            missing = format!("{tp} does not exist");
                        }
                    }
                }
                Err(e) => missing = format!("metadata of `{topic}` unavailable: {e}"),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "cannot read {}: {missing}{}",
        partitions
            .iter()
            .map(|tp| tp.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        ctx.last_error.suffix()
    ))
}

/// Start the thread of a consumer.
pub(crate) fn spawn(
    mut consumer: BaseConsumer<ConsumerCtx>,
    mode: Mode,
    max_batch: usize,
    capacity: usize,
    name: String,
    done: oneshot::Sender<()>,
) -> Result<()> {
    let shared = consumer.context().shared.clone();
    let ring = shared.clone();
    let committer_name = format!("{name}-commit");
    consumer.set_nonempty_callback(move || ring.ring());
    let start = move || {
        let mut finish = Finish {
            shared: shared.clone(),
            why: "closed".into(),
            done: Some(done),
        };
        let started = match &mode {
            Mode::Group { topics } => {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&topics)
                    .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))
            }
            Mode::Assign { partitions } => {
                let mut tpl = TopicPartitionList::with_capacity(partitions.len());
                let mut result = Ok(());
                for tp in partitions {
                    if let Err(e) =
                        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Beginning)
                    {
                        result = Err(format!("cannot assign {tp}: {e}"));
                    }
                }
                result
                    .and_then(|()| {
                        consumer
                            .assign(&tpl)
                            .map_err(|e| format!("cannot assign partitions: {e}"))
                    })
                    .and_then(|()| await_partitions(&consumer, partitions))
                    .map(|()| shared.push(Item::Assigned(partitions.clone())))
            }
        };
        let outcome = started.and_then(|()| {
            std::thread::scope(|scope| {
                std::thread::Builder::new()
                    .name(committer_name)
                    .spawn_scoped(scope, || run_commands(&consumer))
                    .map_err(|e| format!("cannot start the committer thread: {e}"))?;
                let outcome = Worker::new(&consumer, max_batch, capacity).run();
                if let Err(why) = &outcome {
                    if !shared.lock().closing {
                        shared.push(Item::Failed(why.clone()));
                    }
                }
                // Ends the committer.
                shared.close();
                outcome
            })
        });
        if let Err(why) = outcome {
            tracing::error!(error = %why, "Kafka consumer failed");
            if !shared.lock().closing {
                shared.push(Item::Failed(why.clone()));
            }
            finish.why = why;
        }
        // Leave the group and close the client: revocation callbacks run
        // without waiting, as `closing` is set or the thread failed.
        shared.close();
        drop(consumer);
        drop(finish);
    };
    std::thread::Builder::new()
        .name(name)
        .spawn(start)
        .map(|_| ())
        .map_err(|e| Error::Broker(format!("cannot start the consumer thread: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_are_read_from_librdkafkas_statistics() {
        let stats = br#"{"name":"c#consumer-1","type":"consumer","topics":{
            "orders":{"topic":"orders","partitions":{
                "0":{"partition":0,"hi_offset":42,"ls_offset":42,"consumer_lag":-1},
                "1":{"partition":1,"hi_offset":-1},
                "-1":{"partition":-1,"hi_offset":-1}}}},
            "brokers":{}}"#;
        let ends = end_offsets(stats).unwrap();
        assert_eq!(ends, vec![(TopicPartition::new("orders", 0), 42)]);
        assert!(end_offsets(b"not json").is_err());
        assert_eq!(end_offsets(b"{}").unwrap(), vec![]);
    }
}
