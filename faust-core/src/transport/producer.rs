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
use crate::transport::{DeliveryFuture, Enqueued, Transport};

/// The outcome of [`Producer::queue`]: the delivery of the queued record
/// (`None`: the broker has it already), at once or once the producer
/// takes the record.
pub(crate) enum Queued {
    /// The producer took the record, or refused it, without waiting.
    Now(Result<Option<DeliveryFuture>>),
    /// The producer makes us wait; the future ends once it took the record.
    Later(BoxFuture<'static, Result<Option<DeliveryFuture>>>),
}

/// How soon a record must go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Latency {
    /// It may wait to be batched with others (outputs, sends).
    Batched,
    /// Someone waits for it now (requests, replies): see
    /// [`Transport::try_enqueue_immediate`].
    Immediate,
}

/// Produces records with a transport. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Producer {
    transport: Arc<dyn Transport>,
}

impl Producer {
    pub(crate) fn new(transport: Arc<dyn Transport>) -> Self {
        Self { transport }
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
        }
    }

    /// Like [`enqueue`](Self::enqueue), without a future of the queueing
    /// unless the producer makes us wait (the common case allocates none).
    pub(crate) fn queue(&self, record: ProducerRecord) -> Queued {
        match self
            .transport
            .try_enqueue(record)
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
