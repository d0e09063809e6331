//! Delivery reports: the producers' context, which hands each report to
//! the record's [`DeliveryGroup`] on librdkafka's polling thread, and
//! produces again a record librdkafka gave up on for a reason that may pass.
//!
//! Every record carries an `Arc<DeliveryGroup>` as librdkafka's opaque: the
//! group of an event's outputs (one count per record, no allocation), or a
//! group of one made for a caller that wants a future of the delivery.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use faust_core::record::now_millis;
use faust_core::transport::DeliveryGroup;
use faust_core::{Error, RecordMetadata};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _, OwnedMessage};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use crate::context::{ClientCtx, LastError};
use crate::transport::Clients;

/// A producer of this crate: its delivery reports go to the records' groups.
pub(crate) type KafkaProducer = ThreadedProducer<ProducerCtx>;

/// A record as handed to librdkafka.
pub(crate) type OutRecord<'a> = BaseRecord<'a, [u8], [u8], Arc<DeliveryGroup>>;

/// Pause before trying again to produce a record the producer had no room for.
const REPRODUCE_RETRY: Duration = Duration::from_millis(10);

/// Wakes sends waiting for room in a full producer queue when a delivery
/// report comes in (only while one waits: the report path stays a load).
#[derive(Default)]
pub(crate) struct Room {
    waiting: std::sync::atomic::AtomicUsize,
    pub(crate) freed: tokio::sync::Notify,
}

/// A send waiting for room, counted in [`Room::waiting`] while it lives.
pub(crate) struct RoomWaiter<'a>(&'a Room);

impl<'a> RoomWaiter<'a> {
    pub(crate) fn new(room: &'a Room) -> Self {
        room.waiting
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        RoomWaiter(room)
    }
}

impl Drop for RoomWaiter<'_> {
    fn drop(&mut self) {
        self.0
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Room {
    fn delivered(&self) {
        if self.waiting.load(std::sync::atomic::Ordering::Acquire) > 0 {
            self.freed.notify_waiters();
        }
    }
}

/// What the delivery reports of a transport's producers share.
pub(crate) struct Deliveries {
    /// The producer, to produce again a record librdkafka gave up on (weak:
    /// a pending delivery does not keep the clients open); set once the
    /// clients exist.
    pub(crate) clients: OnceLock<Weak<Clients>>,
    pub(crate) room: Room,
    last_error: LastError,
    /// `faust.delivery.timeout.ms`, counted from the group's creation.
    timeout: Duration,
    /// Where records are produced again (the runtime of the first record).
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Records produced again so far (logged now and then).
    reproduced: std::sync::atomic::AtomicU64,
}

impl Deliveries {
    pub(crate) fn new(last_error: LastError, timeout: Duration) -> Self {
        Self {
            clients: OnceLock::new(),
            room: Room::default(),
            last_error,
            timeout,
            runtime: OnceLock::new(),
            reproduced: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Remember the caller's runtime, for records produced again (once).
    #[inline]
    pub(crate) fn note_runtime(&self) {
        if self.runtime.get().is_none() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let _ = self.runtime.set(handle);
            }
        }
    }

    /// A delivery report: to the record's group, or, after a transient
    /// failure within the deadline, produce the record again.
    fn report(self: &Arc<Self>, result: &DeliveryResult<'_>, group: Arc<DeliveryGroup>) {
        self.room.delivered();
        match result {
            Ok(msg) => group.delivered(|| metadata(msg)),
            Err((e, msg)) if transient(e) => match self.runtime.get() {
                Some(runtime) => {
                    let this = self.clone();
                    let (msg, why) = (msg.detach(), e.clone());
                    drop(runtime.spawn(async move { this.again(msg, why, group).await }));
                }
                None => group.failed(self.failure(msg, e)),
            },
            Err((e, msg)) => group.failed(self.failure(msg, e)),
        }
    }

    /// The error of a record that will not be delivered.
    fn failure(&self, msg: &impl rdkafka::message::Message, why: &dyn std::fmt::Display) -> Error {
        Error::Broker(describe_delivery_failure(
            msg.topic(),
            (msg.partition() >= 0).then_some(msg.partition()),
            why,
            &self.last_error,
        ))
    }

    /// Produce `msg` again (librdkafka gave up on it: `why`); its next
    /// report comes through [`report`](Self::report) again. If it cannot
    /// be, its group fails.
    async fn again(&self, msg: OwnedMessage, why: KafkaError, group: Arc<DeliveryGroup>) {
        if let Err(why) = self.produce_again(&msg, &why, &group).await {
            group.failed(self.failure(&msg, &why));
        }
    }

    /// Produce again a record librdkafka gave up on with a transient error
    /// (`why`), unless its group's delivery deadline has passed. Returns
    /// why not, if not.
    async fn produce_again(
        &self,
        message: &OwnedMessage,
        why: &KafkaError,
        group: &Arc<DeliveryGroup>,
    ) -> std::result::Result<(), String> {
        let deadline = group.created() + self.timeout;
        loop {
            if let Some(fatal) = self.last_error.fatal() {
                // Authentication or certificate failure: waiting will not help.
                return Err(format!("{why}; {fatal}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{why}; not delivered within faust.delivery.timeout.ms ({} ms)",
                    self.timeout.as_millis()
                ));
            }
            let Some(clients) = self.clients.get().and_then(Weak::upgrade) else {
                return Err(format!("{why}; the transport was closed"));
            };
            let mut out: OutRecord<'_> = BaseRecord::with_opaque_to(message.topic(), group.clone());
            if let Some(key) = message.key() {
                out = out.key(key);
            }
            if let Some(value) = message.payload() {
                out = out.payload(value);
            }
            // The partition it was given (explicitly or by the partitioner),
            // so a keyed record stays where its key belongs.
            if message.partition() >= 0 {
                out = out.partition(message.partition());
            }
            if let Some(ts) = message.timestamp().to_millis() {
                out = out.timestamp(ts);
            }
            if let Some(headers) = message.headers() {
                out = out.headers(headers.clone());
            }
            match clients.producer.send(out) {
                Ok(()) => {
                    let n = self
                        .reproduced
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n.is_power_of_two() || n == 0 {
                        tracing::warn!(
                            topic = message.topic(),
                            error = %why,
                            reproduced = n + 1,
                            "producing again records the producer gave up on"
                        );
                    }
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    drop(clients);
                    tokio::time::sleep(REPRODUCE_RETRY).await;
                }
                Err((e, _)) => return Err(format!("{why}; producing it again failed: {e}")),
            }
        }
    }
}

/// The metadata of a delivered record; its timestamp is the broker's (or
/// the one it was produced with), else now.
fn metadata(msg: &BorrowedMessage<'_>) -> RecordMetadata {
    RecordMetadata {
        topic: msg.topic().into(),
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp: msg.timestamp().to_millis().unwrap_or_else(now_millis),
    }
}

/// Delivery errors that say nothing about the record itself: the broker
/// was unreachable or not ready, so the same record may go through later.
pub(crate) fn transient(err: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        err.rdkafka_error_code(),
        Some(
            C::MessageTimedOut
                | C::RequestTimedOut
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::NotCoordinator
                | C::KafkaStorageError
                | C::QueueFull
        )
    )
}

/// `cannot deliver a record to topic `t` partition p: <why> (last client error: ...)`.
pub(crate) fn describe_delivery_failure(
    topic: &str,
    partition: Option<i32>,
    why: &dyn std::fmt::Display,
    last_error: &LastError,
) -> String {
    format!(
        "cannot deliver a record to topic `{topic}`{}: {why}{}",
        partition
            .map(|p| format!(" partition {p}"))
            .unwrap_or_default(),
        last_error.suffix()
    )
}

/// Context of a producer: the client's (logs, errors) and its deliveries.
pub(crate) struct ProducerCtx {
    client: ClientCtx,
    deliveries: Arc<Deliveries>,
}

impl ProducerCtx {
    pub(crate) fn new(client: ClientCtx, deliveries: Arc<Deliveries>) -> Self {
        Self { client, deliveries }
    }
}

impl ClientContext for ProducerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.client.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = Arc<DeliveryGroup>;

    fn delivery(&self, result: &DeliveryResult<'_>, group: Arc<DeliveryGroup>) {
        self.deliveries.report(result, group);
    }
}
