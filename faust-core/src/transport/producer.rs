//! [`Producer`]: the one way the runtime produces records, on top of a
//! [`Transport`]'s three entry points (`try_enqueue`, `enqueue`, `send`).
//!
//! Every output (agent sends, replies, sink records, dead-letter copies,
//! requests) goes through it, so the rule "take the record at once if the
//! producer can, wait only if it makes us" lives here only.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::error::Result;
use crate::record::{ProducerRecord, RecordMetadata};
pub(crate) use crate::transport::Latency;
use crate::transport::{DeliveryFuture, DeliveryGroup, Enqueued, Transport};

/// A group of outputs made when the first one is reported to it.
pub(crate) type GroupSlot = std::sync::OnceLock<Arc<DeliveryGroup>>;

/// The outcome of [`Producer::queue`]: the delivery of the queued record
/// (`None`: the broker has it already), at once or once the producer
/// takes the record.
pub(crate) enum Queued {
    /// The producer took the record, or refused it, without waiting.
    Now(Result<Option<DeliveryFuture>>),
    /// The producer makes us wait; the future ends once it took the record.
    Later(BoxFuture<'static, Result<Option<DeliveryFuture>>>),
}

/// Produces records with a transport. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Producer {
    transport: Arc<dyn Transport>,
    /// [`Transport::reports_deliveries`], asked once.
    reports: bool,
}

/// A transport gave `Reported` for a record it was not given a group with.
#[cold]
fn reported_without_a_group(transport: &dyn Transport) -> crate::error::Error {
    crate::error::Error::Broker(format!(
        "the transport `{}` said it would report a delivery it was given no group for",
        crate::redact::redact_url(transport.url())
    ))
}

impl Producer {
    pub(crate) fn new(transport: Arc<dyn Transport>) -> Self {
        let reports = transport.reports_deliveries();
        Self { transport, reports }
    }

    /// Whether the transport reports deliveries to groups.
    pub(crate) fn reports_deliveries(&self) -> bool {
        self.reports
    }

    /// The transport records go to.
    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    #[inline]
    fn try_enqueue(&self, record: ProducerRecord, latency: Latency) -> Result<Enqueued> {
        match latency {
            Latency::Batched => self.transport.try_enqueue(record),
            Latency::Immediate => self.transport.try_enqueue_immediate(record),
        }
    }

    /// Produce `record` and wait for its delivery.
    pub(crate) async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.send_with(record, Latency::Batched).await
    }

    /// [`send`](Self::send) with a latency.
    pub(crate) async fn send_with(
        &self,
        record: ProducerRecord,
        latency: Latency,
    ) -> Result<RecordMetadata> {
        match self.try_enqueue(record, latency)? {
            Enqueued::Delivered(delivered) => {
                // Nothing waited: spend tokio's cooperative budget, so a loop
                // of sends lets the other tasks of its thread run.
                tokio::task::consume_budget().await;
                Ok(delivered)
            }
            Enqueued::Queued(delivery) => delivery.await,
            Enqueued::WouldWait(record) => self.transport.send(record).await,
            Enqueued::Reported => Err(reported_without_a_group(&*self.transport)),
        }
    }

    /// Queue `record` with the producer, waiting only while it cannot take
    /// it; the delivery is for the caller to await.
    pub(crate) async fn enqueue(
        &self,
        record: ProducerRecord,
        latency: Latency,
    ) -> Result<Option<DeliveryFuture>> {
        match self.try_enqueue(record, latency)?.into_delivery() {
            Ok(delivery) => Ok(delivery),
            Err(record) => self.transport.enqueue(record).await.map(Some),
        }
    }

    /// Like [`enqueue`](Self::enqueue), keeping the metadata of a record
    /// the broker took at once (`Left`); `Right`: its delivery.
    pub(crate) async fn enqueue_keeping_metadata(
        &self,
        record: ProducerRecord,
        latency: Latency,
    ) -> Result<futures::future::Either<RecordMetadata, DeliveryFuture>> {
        use futures::future::Either;
        match self.try_enqueue(record, latency)? {
            Enqueued::Delivered(meta) => Ok(Either::Left(meta)),
            Enqueued::Queued(delivery) => Ok(Either::Right(delivery)),
            Enqueued::WouldWait(record) => self.transport.enqueue(record).await.map(Either::Right),
            Enqueued::Reported => Err(reported_without_a_group(&*self.transport)),
        }
    }

    /// Hand `record` over with its delivery reported to the group in
    /// `group` (made now if it is the first), if the transport reports
    /// deliveries; else as [`try_enqueue`](Self::try_enqueue).
    #[inline]
    fn try_enqueue_reported(
        &self,
        record: ProducerRecord,
        latency: Latency,
        group: &GroupSlot,
    ) -> Result<Enqueued> {
        if !self.reports {
            return self.try_enqueue(record, latency);
        }
        let group = group.get_or_init(DeliveryGroup::new);
        group.expect_one();
        let enqueued = self.transport.try_enqueue_reported(record, latency, group);
        if !matches!(enqueued, Ok(Enqueued::Reported)) {
            group.not_taken();
        }
        enqueued
    }

    /// [`enqueue`](Self::enqueue), with the delivery reported to `group`
    /// when the transport can (then there is no future: `None`).
    pub(crate) async fn enqueue_reported(
        &self,
        record: ProducerRecord,
        latency: Latency,
        group: &GroupSlot,
    ) -> Result<Option<DeliveryFuture>> {
        match self
            .try_enqueue_reported(record, latency, group)?
            .into_delivery()
        {
            Ok(delivery) => Ok(delivery),
            Err(record) => self.transport.enqueue(record).await.map(Some),
        }
    }

    /// Like [`enqueue_reported`](Self::enqueue_reported), without a future
    /// of the queueing unless the producer makes us wait (the common case
    /// allocates none).
    pub(crate) fn queue(&self, record: ProducerRecord, group: &GroupSlot) -> Queued {
        match self
            .try_enqueue_reported(record, Latency::Batched, group)
            .map(Enqueued::into_delivery)
        {
            Ok(Ok(delivery)) => Queued::Now(Ok(delivery)),
            Ok(Err(record)) => {
                let transport = self.transport.clone();
                Queued::Later(async move { transport.enqueue(record).await.map(Some) }.boxed())
            }
            Err(e) => Queued::Now(Err(e)),
        }
    }
}
