//! The transport conformance suite of `faust_core::transport::testkit`
//! against Kafka: every check on librdkafka's mock cluster (`mock::`), and
//! on a real broker (`real_broker::`) when `FAUST_TEST_KAFKA` names one
//! (`host:port`; without it those tests pass at once, saying they were
//! skipped):
//!
//! ```text
//! cargo test -p faust-kafka --test conformance
//! FAUST_TEST_KAFKA=$(scripts/kafka.sh bootstrap) cargo test -p faust-kafka --test conformance real_broker
//! ```

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use faust_core::transport::testkit::{self, Harness};
use faust_core::transport::Transport;
use faust_kafka::KafkaTransport;

/// librdkafka's mock cluster: one broker, topics created through the mock
/// API (it has no CreateTopics), commits refused during rebalances
/// (`REBALANCE_IN_PROGRESS`), and log-append timestamps in produce responses.
struct Mock {
    mock: common::Mock,
    transport: Arc<dyn Transport>,
}

impl Mock {
    /// Small batches and a small mailbox, so that revocations find records
    /// fetched but not yet handed out (which must then be dropped).
    fn new() -> Self {
        let mock = common::mock();
        let url = format!(
            "{}&faust.batch.max.records=5&faust.buffer.batches=2",
            common::url(&mock)
        );
        let transport = Arc::new(KafkaTransport::from_url(&url).expect("transport"));
        Self { mock, transport }
    }
}

#[async_trait(?Send)]
impl Harness for Mock {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    async fn topic(&self, partitions: i32) -> String {
        common::topic(&self.mock, partitions)
    }

    fn creates_topics(&self) -> bool {
        false
    }

    fn refuses_commits_during_rebalance(&self) -> bool {
        true
    }

    fn reports_log_append_time(&self) -> bool {
        true
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// Below the mock's own deadline: it rebalances without a member that
    /// has not rejoined after `session.timeout.ms` (6 s) - 1 s.
    fn quiet_window(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A real broker named by `FAUST_TEST_KAFKA`.
struct Real {
    transport: Arc<dyn Transport>,
}

impl Real {
    fn new() -> Option<Self> {
        common::init_tracing();
        match std::env::var("FAUST_TEST_KAFKA") {
            Ok(b) if !b.is_empty() => {
                let url = format!(
                    "kafka://{b}?consumer.session.timeout.ms=6000&consumer.heartbeat.interval.ms=500"
                );
                let transport = Arc::new(KafkaTransport::from_url(&url).expect("transport"));
                Some(Self { transport })
            }
            _ => {
                eprintln!("FAUST_TEST_KAFKA is not set: real-broker conformance skipped");
                None
            }
        }
    }
}

impl Harness for Real {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// Below `session.timeout.ms`, after which the group would rebalance
    /// without a member that does not poll.
    fn quiet_window(&self) -> Duration {
        Duration::from_secs(1)
    }
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        mod mock {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    testkit::$name(&Mock::new()).await
                }
            )*
        }

        mod real_broker {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(real) = Real::new() else { return };
                    testkit::$name(&real).await
                }
            )*
        }
    };
}

// One test per check of the suite, on the mock cluster and on the real
// broker (skipped without FAUST_TEST_KAFKA).
faust_core::for_each_conformance_check!(checks);
