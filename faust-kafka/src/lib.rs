//! Kafka transport of faust for Rust, on rdkafka (librdkafka).
//!
//! [`KafkaTransport`] implements faust-core's
//! [`Transport`] for `kafka://` URLs:
//!
//! - **URL**: `kafka://host:port[,host:port...][?key=value&...]`. Query
//!   parameters are librdkafka properties for every client, or for one with
//!   a `producer.`, `consumer.` or `admin.` prefix, or settings of this
//!   crate (`faust.*`); see [`KafkaBuilder`] for the list and the defaults.
//!   `KafkaTransport::builder(bootstrap).set(key, value).build()` does the
//!   same in code.
//! - **Producing**: an idempotent producer (`acks=all`, `linger.ms=5`, at
//!   most 64 MiB waiting for delivery), and a second one, with the same
//!   settings but `linger.ms=0`, for requests and replies
//!   ([`Transport::try_enqueue_immediate`](faust_core::transport::Transport::try_enqueue_immediate));
//!   keys, values, headers, timestamps and explicit partitions; `send`
//!   waits for the delivery report. A record librdkafka gives up on with a
//!   transient error (after `message.timeout.ms`, in a broker outage) is
//!   produced again until `faust.delivery.timeout.ms` (2 min); only then
//!   does its delivery fail.
//! - **Topics**: created with the admin API (partitions, replication,
//!   `retention.ms`, `cleanup.policy`); an existing topic is success; the
//!   call returns once the metadata shows the topic.
//! - **Group consumers** (`subscribe`): one thread per consumer polls
//!   librdkafka and forwards records in batches through a bounded mailbox.
//!   Rebalances use Kafka's eager protocol: on revocation the thread emits
//!   [`ConsumerEvent::Revoked`](faust_core::transport::ConsumerEvent) and
//!   blocks inside librdkafka's callback until the runtime polls again, so
//!   the runtime's commits for the revoked partitions land before the
//!   partitions move; records of revoked partitions still buffered are
//!   dropped, never delivered after `Revoked`. Commits are exact (the
//!   offsets the runtime passes) and run on a committer thread of the
//!   consumer, so a commit waiting for the broker never holds up fetching. With
//!   `consumer.partition.assignment.strategy=cooperative-sticky` the same
//!   handshake runs for the partitions that move only.
//! - **Backpressure**: when the runtime leaves `faust.buffer.batches`
//!   batches untaken, the thread stops fetching, and after 250 ms pauses its
//!   partitions while still serving rebalances, so a slow runtime never
//!   holds up the group.
//! - **Assigned consumers** (`assign`, for reply topics): fixed partitions
//!   read from the beginning, no group commits; the first event is
//!   `Assigned` once the partitions exist.
//! - **Deadlines**: broker operations end within `faust.operation.timeout.ms`
//!   with [`Error::Broker`](faust_core::Error) or
//!   [`Error::Timeout`](faust_core::Error); `close` returns within its
//!   timeout, leaving a slow client to finish on its thread; nothing here
//!   blocks an async task.
//!
//! Testing against librdkafka's mock cluster (`rdkafka::mocking`):
//!
//! - it has no CreateTopics API: create topics with
//!   `MockCluster::create_topic` first
//!   ([`create_topic`](faust_core::transport::Transport::create_topic) then
//!   succeeds because the topic exists);
//! - an empty fetch waits the whole `fetch.wait.max.ms` (10 ms by default
//!   here, librdkafka's own default is 500 ms);
//! - while a member joins it refuses commits with `REBALANCE_IN_PROGRESS`
//!   (real Kafka accepts them until the member rejoins), so commits made on
//!   `Revoked` fail there, and it elects a leader without a member that has
//!   not rejoined after `session.timeout.ms` minus one second (real Kafka
//!   waits `max.poll.interval.ms`);
//! - group rebalances take about `session.timeout.ms`: use 6000 ms with a
//!   500 ms heartbeat in tests.
//!
//! The crate's real-broker tests (`tests/real_broker.rs`) run when
//! `FAUST_TEST_KAFKA=host:port` is set; the TLS and SCRAM tests
//! (`tests/security.rs`, with the `ssl` feature) when
//! `FAUST_TEST_KAFKA_SASL_SSL`, `FAUST_TEST_KAFKA_SSL` and
//! `FAUST_TEST_KAFKA_CA` are (`scripts/suites/15-security.sh` sets them).
//!
//! Features: `ssl` (TLS, SASL/SCRAM; the system's OpenSSL), `ssl-vendored`
//! (OpenSSL built from source), `gssapi` (Kerberos, through Cyrus SASL),
//! `zstd`. Without `ssl`, [`KafkaBuilder::build`] refuses TLS and SCRAM
//! settings with an error naming the feature.

mod config;
mod consumer;
mod context;
mod delivery;
mod transport;
mod worker;

use std::sync::Arc;

use faust_core::transport::Transport;

pub use config::{KafkaBuilder, SCHEME};
pub use transport::KafkaTransport;

/// Build the transport for a `kafka://host:port[,host:port...][?key=value&...]`
/// URL (the factory the `faust` facade registers for the `kafka` scheme).
pub fn factory(url: &str) -> faust_core::Result<Arc<dyn Transport>> {
    Ok(Arc::new(KafkaTransport::from_url(url)?))
}
