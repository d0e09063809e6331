//! A conformance suite of the [`Transport`]/[`Consumer`] contract: one
//! statement of the semantics every transport must show, run against the
//! embedded broker (`memory://`) and Kafka alike.
//!
//! Compiled with the cargo feature `testkit` of `faust-core`.
//!
//! A transport under test is described by a [`Harness`]: it makes
//! transports on one broker, topics and group ids never used before, and
//! says where the broker legitimately differs (see its methods). Every
//! check is a `pub async fn` taking the harness; it panics with a message
//! naming the check and what was violated. [`CHECKS`] lists them all and
//! [`run_all`] runs them one after the other.
//!
//! ```no_run
//! use std::sync::Arc;
//! use faust_core::transport::memory::MemoryBroker;
//! use faust_core::transport::testkit::{self, Harness};
//! use faust_core::transport::Transport;
//!
//! struct Memory(Arc<MemoryBroker>);
//!
//! impl Harness for Memory {
//!     fn transport(&self) -> Arc<dyn Transport> {
//!         self.0.clone()
//!     }
//! }
//!
//! # async fn example() {
//! testkit::run_all(&|| Memory(Arc::new(MemoryBroker::new()))).await;
//! # }
//! ```
//!
//! Every wait has a deadline ([`Harness::deadline`] for whatever the
//! broker must do, shorter fixed windows where the check is that *nothing*
//! happens); no check sleeps in place of waiting for an event.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::timeout;

use crate::record::{ProducerRecord, RecordMetadata, TopicPartition};
use crate::transport::{
    Consumer, ConsumerEvent, OffsetReset, SubscribeOptions, TopicSpec, Transport,
};

mod checks;
mod member;

pub use checks::*;
pub use member::{assert_each_record_once, drive_until, settle, sizes, Member};

/// A transport under test: how to reach its broker, and where the broker
/// legitimately differs from the embedded one.
///
/// Only [`transport`](Harness::transport) is required; the defaults
/// describe a broker that creates topics on request and accepts commits
/// at any time (the embedded broker, a real Kafka broker).
#[async_trait(?Send)]
pub trait Harness {
    /// A transport on the broker under test. Checks call it once or more;
    /// every transport it returns must reach the same broker.
    fn transport(&self) -> Arc<dyn Transport>;

    /// A new topic with `partitions` partitions, ready for producing and
    /// consuming, under a name never used before. The default creates it
    /// with [`Transport::create_topic`].
    async fn topic(&self, partitions: i32) -> String {
        let name = unique("conformance");
        let spec = TopicSpec::new(name.clone(), partitions);
        within(
            self.deadline(),
            "create a topic",
            self.transport().create_topic(&spec),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot create topic {name}: {e}"));
        name
    }

    /// A consumer group id never used before.
    fn group(&self) -> String {
        unique("group")
    }

    /// Whether [`Transport::create_topic`] creates missing topics. `false`
    /// for brokers without the admin API (librdkafka's mock cluster): the
    /// topic check then only checks what holds without creation.
    fn creates_topics(&self) -> bool {
        true
    }

    /// Whether the broker may refuse a commit while a rebalance is in
    /// progress, so that a commit made on `Revoked` can fail
    /// (librdkafka's mock cluster answers `REBALANCE_IN_PROGRESS`; real
    /// Kafka accepts commits until the member rejoins). With `true`, a
    /// refused commit on revocation is tolerated, and the records the
    /// member read past its last accepted commit may be delivered again to
    /// the next owner, and only those (at-least-once for exactly that
    /// range); everything else stays exactly once.
    fn refuses_commits_during_rebalance(&self) -> bool {
        false
    }

    /// Whether [`RecordMetadata::timestamp`] of a send is the broker's
    /// log-append time rather than the record's own timestamp (librdkafka's
    /// mock cluster). Consumed records carry their own timestamp either way.
    fn reports_log_append_time(&self) -> bool {
        false
    }

    /// How long anything the broker must do may take (a join, a
    /// rebalance, a delivery) before a check fails.
    fn deadline(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// How long a check waits to see that something does *not* happen
    /// (a joining member getting partitions that are not released yet).
    /// Must stay below the broker's own rebalance deadline.
    fn quiet_window(&self) -> Duration {
        Duration::from_millis(100)
    }
}

/// A running check (borrows its harness).
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A check of the suite: its name and how to run it.
pub struct Check {
    /// The name of the check, as its function is named.
    pub name: &'static str,
    /// Run the check on the harness; panics on a violation.
    pub run: for<'a> fn(&'a dyn Harness) -> CheckFuture<'a>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// Run every check of [`CHECKS`] in turn, each on a fresh harness from
/// `harness`; panics at the first violation (the message names the check).
pub async fn run_all<H: Harness>(harness: &dyn Fn() -> H) {
    for check in CHECKS {
        let h = harness();
        tracing::info!(check = check.name, "conformance check");
        (check.run)(&h).await;
    }
}

/// A name with this prefix never used before.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// `TopicPartition::new(topic, partition)`.
pub fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// Await `f`, panicking with `what` if it takes longer than `deadline`.
pub async fn within<T>(deadline: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match timeout(deadline, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {deadline:?}: {what}"),
    }
}

/// The next event of `c`, panicking if none comes within `deadline` or
/// the poll fails.
pub async fn next_event(c: &mut Box<dyn Consumer>, deadline: Duration) -> ConsumerEvent {
    within(deadline, "the next consumer event", c.poll())
        .await
        .unwrap_or_else(|e| panic!("poll failed: {e}"))
}

/// The next event of `c` within `window`, `None` if nothing came (polls
/// are cancel-safe: nothing is lost). Panics if the poll fails.
pub async fn event_within(c: &mut Box<dyn Consumer>, window: Duration) -> Option<ConsumerEvent> {
    timeout(window, c.poll())
        .await
        .ok()
        .map(|r| r.unwrap_or_else(|e| panic!("poll failed: {e}")))
}

/// Send a record with this value to `topic`, to `partition` or
/// partitioned by `key`; panics if the send fails or takes too long.
pub async fn send(
    t: &dyn Transport,
    topic: &str,
    partition: Option<i32>,
    key: Option<&str>,
    value: &str,
) -> RecordMetadata {
    let mut r = ProducerRecord::new(topic, value.to_string());
    r.partition = partition;
    r.key = key.map(|k| bytes::Bytes::from(k.to_string()));
    within(Duration::from_secs(30), "send", t.send(r))
        .await
        .unwrap_or_else(|e| panic!("send to {topic} failed: {e}"))
}

/// Join `group` on `topic`, starting at `offset_reset` without a commit.
pub async fn join(
    t: &dyn Transport,
    group: &str,
    topic: &str,
    offset_reset: OffsetReset,
) -> Box<dyn Consumer> {
    within(
        Duration::from_secs(30),
        "subscribe",
        t.subscribe(SubscribeOptions {
            group: group.into(),
            topics: vec![topic.into()],
            patterns: Vec::new(),
            offset_reset,
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("subscribe to {topic} as {group} failed: {e}"))
}

/// Calls macro `$then` with the name of every check of the suite, in
/// order: `for_each_conformance_check!(my_tests)` expands to
/// `my_tests!(topics_are_created_idempotently_and_validated, ...)`. A
/// transport's test file declares one test per check with it, so that a
/// check added to the suite runs everywhere without a list to update.
#[macro_export]
macro_rules! for_each_conformance_check {
    ($then:ident) => {
        $then!(
            topics_are_created_idempotently_and_validated,
            topics_are_described_with_their_settings,
            topics_are_deleted,
            produce_then_consume_in_order_with_offsets,
            each_partition_keeps_its_order,
            keyed_records_use_the_kafka_partitioner,
            headers_keys_and_timestamps_round_trip,
            sending_to_a_missing_partition_fails,
            enqueue_keeps_order_and_flush_delivers,
            reported_deliveries_reach_their_group,
            assign_reads_exactly_its_partitions_from_the_oldest_record,
            one_member_gets_every_partition,
            second_member_splits_partitions_and_each_record_is_seen_once,
            handoff_waits_for_revocation_and_starts_at_the_committed_offset,
            third_member_triggers_revoke_then_assign_without_loss_or_duplicates,
            closing_member_releases_its_partitions,
            dropped_member_releases_its_partitions,
            rejoining_group_resumes_at_the_committed_offset,
            new_groups_start_at_earliest_or_latest,
            two_groups_each_see_every_record,
            commits_of_a_partition_moved_away_are_refused,
        );
    };
}
