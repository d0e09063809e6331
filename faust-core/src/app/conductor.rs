//! The consumer loop: reads the app's group consumer, hands each record to
//! the agents of its topic, routes rebalances and commits acked offsets.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::error::Result;
use crate::metrics::app::AppCounters;
use crate::record::{self, Record, TopicPartition};
use crate::runtime::acks::{Lease, Message, MessageRef, PartitionAcks};
use crate::runtime::queue::{Push, Queue};
use crate::transport::{CommitFuture, Consumer, ConsumerEvent};

/// While the conductor is busy delivering (a full agent queue, a long
/// batch), the consumer is still polled this often, so a rebalance is
/// handled at once instead of after the transport's revoke deadline.
const SIDE_POLL: Duration = Duration::from_millis(50);
/// Records delivered between two looks at the clock (reading it per record
/// costs more than delivering one).
const TICK_EVERY: u32 = 64;
/// Records read ahead by side polls, at most.
const BACKLOG_LIMIT: usize = 4096;

/// Offsets being committed.
type Offsets = Vec<(TopicPartition, i64)>;

/// The agents reading a topic.
type Agents = Arc<Vec<crate::agent::Agent>>;

/// The partition of the previous record: topic, partition, acks, agents.
type RunCache = (Arc<str>, i32, Arc<PartitionAcks>, Agents);

/// Consecutive polled messages of one partition, not yet handed to their
/// agents.
struct Run {
    batch: Arc<[Message]>,
    /// Indices in `batch` still to deliver.
    next: usize,
    end: usize,
    agents: Agents,
    /// The queue of each agent for this partition, looked up on first use.
    queues: Vec<Option<Queue>>,
}

/// The ack bookkeeping of each assigned partition. Dropping it lets go of
/// the messages they hold (which point back to them).
#[derive(Default)]
struct Parts(HashMap<TopicPartition, Arc<PartitionAcks>>);

impl std::ops::Deref for Parts {
    type Target = HashMap<TopicPartition, Arc<PartitionAcks>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Parts {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Parts {
    /// Show the partitions to the app's metrics and readiness check.
    fn publish(&self, app: &App) {
        *app.context().partitions.write() = self.0.clone();
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        for acks in self.0.values() {
            acks.release();
        }
    }
}

/// How handing a message to its agents ended.
enum Delivered {
    /// Every agent has it (or acked its share: no queue).
    Done,
    /// Its partition was revoked meanwhile: drop the rest of its run.
    Revoked,
    /// The app is stopping.
    Shutdown,
}

pub(crate) struct Conductor {
    app: App,
    consumer: Box<dyn Consumer>,
    parts: Parts,
    /// Messages polled but not yet handed to their agents, in order.
    backlog: VecDeque<Run>,
    /// Messages left in the run being delivered (it is out of `backlog`).
    in_hand: usize,
    last_commit: Instant,
    /// The commit started on the cadence and not finished yet (at most
    /// one), with its offsets and when it started.
    in_flight: Option<(CommitFuture, Offsets, Instant)>,
    last_tick: Instant,
    /// Records delivered since the clock was last read.
    since_tick: u32,
    /// Wakes a delivery blocked on a full queue for a side poll; kept
    /// armed across deliveries (arming a timer per blocked record costs
    /// more than the record).
    side_timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// The partition of the previous record, its acks and its agents.
    last: Option<RunCache>,
    /// The app's leader topic: who holds it is the group's leader.
    leader_topic: String,
}

impl Conductor {
    pub(crate) fn new(app: App, consumer: Box<dyn Consumer>) -> Self {
        Self {
            consumer,
            parts: Parts::default(),
            backlog: VecDeque::new(),
            in_hand: 0,
            last_commit: Instant::now(),
            in_flight: None,
            last_tick: Instant::now(),
            since_tick: 0,
            side_timer: Box::pin(tokio::time::sleep(SIDE_POLL)),
            last: None,
            leader_topic: crate::timer::leader_topic(app.id()),
            app,
        }
    }

    /// Run until `shutdown`; returns self so the app can commit and close
    /// after the agents stopped.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> Self {
        let interval = self.app.config().commit_interval;
        let commit_every = self.commit_every();
        let mut failures = 0u32;
        'outer: loop {
            // Wake when the next commit is due; a consumer that wants
            // commits more often than `commit_interval` only while there is
            // something to commit.
            let wait = if commit_every < interval && !self.commit_pending() {
                interval
            } else {
                commit_every.saturating_sub(self.last_commit.elapsed())
            };
            let polled = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                r = tokio::time::timeout(wait, self.consumer.poll()) => r,
            };
            match polled {
                Err(_idle) => {}
                Ok(Err(err)) => {
                    failures += 1;
                    tracing::error!(error = %err, failures, "consumer poll failed");
                    let backoff = Duration::from_millis(100 * u64::from(failures.min(50)));
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                }
                Ok(Ok(event)) => {
                    failures = 0;
                    match event {
                        ConsumerEvent::Records(records) => {
                            self.accept(records);
                            while let Some(mut run) = self.backlog.pop_front() {
                                while run.next < run.end {
                                    let msg = MessageRef::new(run.batch.clone(), run.next);
                                    run.next += 1;
                                    self.in_hand = run.end - run.next;
                                    match self.deliver(msg, &mut run, &shutdown).await {
                                        Delivered::Done => {}
                                        Delivered::Revoked => break,
                                        Delivered::Shutdown => break 'outer,
                                    }
                                }
                                self.in_hand = 0;
                            }
                        }
                        ConsumerEvent::Revoked(tps) => self.on_revoked(tps).await,
                        ConsumerEvent::Assigned(tps) => self.on_assigned(tps).await,
                    }
                }
            }
            if self.last_commit.elapsed() >= commit_every {
                self.commit_due().await;
            }
        }
        self
    }

    /// Turn polled records into messages (one allocation for the batch),
    /// register their offsets and queue them with the agents of their
    /// topic, one run per partition; records of a topic no agent reads are
    /// dropped.
    fn accept(&mut self, mut records: Vec<Record>) {
        // Records of a batch come grouped by partition: one route per run.
        // After a route, `self.last` is the route of the newest run.
        let mut runs: Vec<(usize, Arc<PartitionAcks>, Agents)> = Vec::new();
        let mut kept = 0;
        records.retain(|record| {
            let same_run = !runs.is_empty()
                && self
                    .last
                    .as_ref()
                    .is_some_and(|(t, p, ..)| *p == record.partition && **t == *record.topic);
            if !same_run {
                let Some((acks, agents)) = self.route(record) else {
                    return false;
                };
                runs.push((kept, acks, agents));
            }
            kept += 1;
            true
        });
        if records.is_empty() {
            return;
        }
        let mut run = 0;
        let batch: Arc<[Message]> = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                if runs.get(run + 1).is_some_and(|(start, ..)| *start == i) {
                    run += 1;
                }
                Message::new(record, runs[run].1.clone(), runs[run].2.len())
            })
            .collect();
        let mut runs = runs.into_iter().peekable();
        while let Some((start, acks, agents)) = runs.next() {
            let end = runs.peek().map_or(batch.len(), |(next, ..)| *next);
            acks.register_run(&batch, start..end);
            self.backlog.push_back(Run {
                batch: batch.clone(),
                next: start,
                end,
                queues: vec![None; agents.len()],
                agents,
            });
        }
    }

    /// The acks and agents of a record's partition (the last one looked up
    /// is remembered).
    fn route(&mut self, record: &Record) -> Option<(Arc<PartitionAcks>, Agents)> {
        if let Some((t, p, acks, agents)) = &self.last {
            if *p == record.partition && **t == *record.topic {
                return Some((acks.clone(), agents.clone()));
            }
        }
        let agents = self.app.agents().by_topic(&record.topic)?;
        let tp = record.topic_partition();
        let acks = match self.parts.get(&tp) {
            Some(acks) => acks.clone(),
            None => {
                let acks = PartitionAcks::new();
                self.parts.insert(tp, acks.clone());
                self.parts.publish(&self.app);
                acks
            }
        };
        self.last = Some((
            record.topic.clone(),
            record.partition,
            acks.clone(),
            agents.clone(),
        ));
        Some((acks, agents))
    }

    /// Hand `msg` (of `run`) to each of its agents, waiting for room in a
    /// full queue (while still polling for rebalances).
    async fn deliver(
        &mut self,
        msg: MessageRef,
        run: &mut Run,
        shutdown: &CancellationToken,
    ) -> Delivered {
        self.since_tick += 1;
        if self.since_tick >= TICK_EVERY {
            self.since_tick = 0;
            if self.last_tick.elapsed() >= SIDE_POLL
                && self.tick(msg.topic(), msg.partition()).await
            {
                return Delivered::Revoked;
            }
        }
        for (agent, queue) in run.agents.iter().zip(run.queues.iter_mut()) {
            let Some(mut lease) = try_hand(agent, &msg, queue, Lease::new(msg.clone())) else {
                continue;
            };
            let Some(q) = queue.clone() else {
                // No queue for it (agent stopped or partition not routed): ack its share.
                let _ = lease.start();
                continue;
            };
            let push = q.push(lease);
            tokio::pin!(push);
            if self.side_timer.is_elapsed() {
                let next = Instant::now() + SIDE_POLL;
                self.side_timer.as_mut().reset(next);
            }
            let pushed = loop {
                let timer = &mut self.side_timer;
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Delivered::Shutdown,
                    r = &mut push => break r,
                    _ = timer.as_mut() => {}
                }
                let next = Instant::now() + SIDE_POLL;
                self.side_timer.as_mut().reset(next);
                if self.tick(msg.topic(), msg.partition()).await {
                    return Delivered::Revoked;
                }
            };
            if let Err(mut d) = pushed {
                // The queue closed while waiting: ack its share.
                let _ = d.start();
            }
        }
        Delivered::Done
    }

    /// The app's commit interval, or the consumer's if it wants more.
    fn commit_every(&self) -> Duration {
        let app = self.app.config().commit_interval;
        self.consumer.commit_interval().map_or(app, |c| c.min(app))
    }

    /// While busy delivering: handle a pending rebalance (and read ahead
    /// while the backlog has room), and commit on schedule. Returns whether
    /// `topic[partition]` was revoked.
    async fn tick(&mut self, topic: &str, partition: i32) -> bool {
        self.last_tick = Instant::now();
        let backlog = self.in_hand + self.backlog.iter().map(|r| r.end - r.next).sum::<usize>();
        let revoked = if backlog < BACKLOG_LIMIT || self.consumer.rebalance_pending() {
            self.side_poll(topic, partition).await
        } else {
            false
        };
        if self.last_commit.elapsed() >= self.commit_every() {
            self.commit_due().await;
        }
        revoked
    }

    /// Poll once without waiting while a delivery is blocked: records go to
    /// the backlog, rebalances are handled now. Returns whether
    /// `topic[partition]` was revoked.
    async fn side_poll(&mut self, topic: &str, partition: i32) -> bool {
        match self.consumer.poll().now_or_never() {
            Some(Ok(ConsumerEvent::Records(records))) => self.accept(records),
            Some(Ok(ConsumerEvent::Revoked(tps))) => {
                let hit = tps
                    .iter()
                    .any(|tp| &*tp.topic == topic && tp.partition == partition);
                self.on_revoked(tps).await;
                return hit;
            }
            Some(Ok(ConsumerEvent::Assigned(tps))) => self.on_assigned(tps).await,
            Some(Err(err)) => tracing::warn!(error = %err, "consumer poll failed"),
            None => {}
        }
        false
    }

    /// Whether `tps` hold the leader topic.
    fn lead(&self, tps: &[TopicPartition]) -> bool {
        tps.iter().any(|tp| *tp.topic == *self.leader_topic)
    }

    fn set_leader(&self, leader: bool) {
        let was = self
            .app
            .context()
            .leader
            .swap(leader, std::sync::atomic::Ordering::AcqRel);
        if was != leader {
            tracing::info!(leader, "leadership changed");
        }
    }

    async fn on_revoked(&mut self, tps: Vec<TopicPartition>) {
        tracing::info!(partitions = %record::compact(&tps), "partitions revoked");
        if self.lead(&tps) {
            self.set_leader(false);
        }
        self.last = None;
        // Records read ahead for these partitions are dropped: their new
        // owner reads them from the committed offset.
        self.backlog.retain(|run| {
            let m = &run.batch[run.next];
            !tps.iter()
                .any(|tp| *tp.topic == *m.topic() && tp.partition == m.partition())
        });
        if let Err(e) = self.app.agents().rebalance(&tps, &[]).await {
            tracing::error!(error = %e, "agents failed to handle revocation");
        }
        let deadline = self.app.config().rebalance_timeout;
        let mut offsets = Vec::new();
        for tp in &tps {
            if let Some(acks) = self.parts.remove(tp) {
                if !acks.revoke(deadline).await {
                    tracing::warn!(partition = %tp, "events still in flight after the rebalance deadline; they will be redelivered");
                }
                if let Some(o) = acks.current_commit() {
                    offsets.push((tp.clone(), o));
                }
                acks.release();
            }
        }
        self.parts.publish(&self.app);
        if !offsets.is_empty() {
            let started = Instant::now();
            let result = self.consumer.commit(&offsets).await;
            self.app
                .context()
                .counters
                .commit_ended(started.elapsed(), result.is_ok());
            if let Err(e) = result {
                tracing::error!(error = %e, "commit on revoke failed");
            }
        }
    }

    async fn on_assigned(&mut self, tps: Vec<TopicPartition>) {
        self.last = None;
        tracing::info!(partitions = %record::compact(&tps), "partitions assigned");
        if self.lead(&tps) {
            self.set_leader(true);
        }
        AppCounters::add(&self.app.context().counters.rebalances);
        for tp in &tps {
            self.parts
                .entry(tp.clone())
                .or_insert_with(PartitionAcks::new);
        }
        self.parts.publish(&self.app);
        if let Err(e) = self.app.agents().rebalance(&[], &tps).await {
            tracing::error!(error = %e, "agents failed to handle assignment");
        }
    }

    /// Whether a commit is in flight or a partition has offsets not yet
    /// committed.
    fn commit_pending(&self) -> bool {
        self.in_flight.is_some() || self.parts.values().any(|acks| acks.uncommitted())
    }

    /// On the commit cadence: look at the commit in flight, and if none is
    /// (any more), start committing every partition's acked prefix that
    /// moved since its last commit. Never waits for a commit, unless the
    /// consumer cannot start one (see [`Consumer::start_commit`]).
    async fn commit_due(&mut self) {
        self.last_commit = Instant::now();
        self.update_end_offsets();
        if !self.commit_finished() {
            return;
        }
        let offsets = self.offsets(PartitionAcks::take_commit);
        if offsets.is_empty() {
            return;
        }
        tracing::trace!(?offsets, "commit");
        let started = Instant::now();
        match self.consumer.start_commit(&offsets) {
            Some(commit) => {
                self.in_flight = Some((commit, offsets, started));
                self.commit_finished();
            }
            None => {
                let result = self.consumer.commit(&offsets).await;
                self.committed(&offsets, started, result);
            }
        }
    }

    /// Tell each partition its end offset, as the consumer last heard it.
    fn update_end_offsets(&self) {
        for (tp, end) in self.consumer.end_offsets() {
            if let Some(acks) = self.parts.get(&tp) {
                acks.set_end(end);
            }
        }
    }

    /// The offset `pick` gives for each partition that has one.
    fn offsets(&self, pick: impl Fn(&PartitionAcks) -> Option<i64>) -> Offsets {
        self.parts
            .iter()
            .filter_map(|(tp, acks)| pick(acks).map(|o| (tp.clone(), o)))
            .collect()
    }

    /// Whether no commit is in flight (any more): one that finished is
    /// accounted for.
    fn commit_finished(&mut self) -> bool {
        let Some((commit, ..)) = &mut self.in_flight else {
            return true;
        };
        let Some(result) = commit.now_or_never() else {
            return false;
        };
        if let Some((_, offsets, started)) = self.in_flight.take() {
            self.committed(&offsets, started, result);
        }
        true
    }

    /// A commit of `offsets` ended: after a failure their partitions offer
    /// their (newest) offsets again at the next commit.
    fn committed(&self, offsets: &Offsets, started: Instant, result: Result<()>) {
        self.app
            .context()
            .counters
            .commit_ended(started.elapsed(), result.is_ok());
        if let Err(e) = result {
            tracing::error!(error = %e, "commit failed; retried at the next commit");
            for (tp, offset) in offsets {
                if let Some(acks) = self.parts.get(tp) {
                    acks.commit_failed(*offset);
                }
            }
        }
    }

    /// Commit every partition's contiguous acked prefix now and wait for it
    /// (a commit in flight has older offsets: it is not waited for).
    async fn commit_all(&mut self) {
        self.in_flight = None;
        let offsets = self.offsets(PartitionAcks::current_commit);
        if offsets.is_empty() {
            return;
        }
        tracing::trace!(?offsets, "final commit");
        if let Err(e) = self.consumer.commit(&offsets).await {
            tracing::error!(error = %e, "final commit failed");
        }
    }

    /// Final commit and leave the group.
    pub(crate) async fn close(mut self) -> Result<()> {
        self.set_leader(false);
        self.commit_all().await;
        self.app.context().partitions.write().clear();
        let timeout = self.app.config().stop_timeout;
        self.consumer.close(timeout).await
    }
}

/// Queue `delivery` with `agent` without waiting, looking its queue up
/// again if it closed since (the agent stopped or restarted). `None`: it is
/// queued. Otherwise it comes back, with `queue` the queue to wait on (full
/// or closed) or `None` when the agent has no queue for `msg`'s partition.
fn try_hand(
    agent: &crate::agent::Agent,
    msg: &Message,
    queue: &mut Option<Queue>,
    mut lease: Lease,
) -> Option<Lease> {
    for look_again in [false, true] {
        if look_again || queue.is_none() {
            *queue = agent.queue(msg);
        }
        let Some(q) = queue.as_ref() else {
            return Some(lease);
        };
        match q.try_push(lease) {
            Push::Queued => return None,
            Push::Full(d) => return Some(d),
            Push::Closed(d) => lease = d,
        }
    }
    Some(lease)
}
