//! The consumer loop: reads the app's group consumer, hands each record to
//! the agents of its topic, routes rebalances and commits acked offsets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::error::Result;
use crate::message::{Delivery, Message, PartitionAcks};
use crate::record::{Record, TopicPartition};
use crate::transport::{Consumer, ConsumerEvent};

pub(crate) struct Conductor {
    app: App,
    consumer: Box<dyn Consumer>,
    parts: HashMap<TopicPartition, Arc<PartitionAcks>>,
    last_commit: Instant,
}

impl Conductor {
    pub(crate) fn new(app: App, consumer: Box<dyn Consumer>) -> Self {
        Self {
            app,
            consumer,
            parts: HashMap::new(),
            last_commit: Instant::now(),
        }
    }

    /// Run until `shutdown`; returns self so the app can commit and close
    /// after the agents stopped.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> Self {
        let interval = self.app.config().commit_interval;
        let mut failures = 0u32;
        'outer: loop {
            let polled = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                r = tokio::time::timeout(interval, self.consumer.poll()) => r,
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
                            for record in records {
                                if !self.deliver(record, &shutdown).await {
                                    break 'outer;
                                }
                            }
                        }
                        ConsumerEvent::Revoked(tps) => self.on_revoked(tps).await,
                        ConsumerEvent::Assigned(tps) => self.on_assigned(tps).await,
                    }
                }
            }
            if self.last_commit.elapsed() >= interval {
                self.commit(false).await;
            }
        }
        self
    }

    async fn deliver(&mut self, record: Record, shutdown: &CancellationToken) -> bool {
        let Some(agents) = self.app.agents().by_topic(&record.topic) else {
            return true;
        };
        let tp = record.topic_partition();
        let acks = self
            .parts
            .entry(tp)
            .or_insert_with(PartitionAcks::new)
            .clone();
        acks.register(record.offset);
        let msg = Message::new(record, acks, agents.len());
        for agent in agents.iter() {
            let delivered = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return false,
                ok = agent.deliver(msg.clone()) => ok,
            };
            if !delivered {
                // No queue for it (agent stopped or partition not routed): ack its share.
                let mut d = Delivery::new(msg.clone());
                d.start();
            }
        }
        true
    }

    async fn on_revoked(&mut self, tps: Vec<TopicPartition>) {
        tracing::info!(partitions = ?tps, "partitions revoked");
        if let Err(e) = self.app.agents().on_rebalance(&tps, &[]).await {
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
            }
        }
        if !offsets.is_empty() {
            if let Err(e) = self.consumer.commit(&offsets).await {
                tracing::error!(error = %e, "commit on revoke failed");
            }
        }
    }

    async fn on_assigned(&mut self, tps: Vec<TopicPartition>) {
        tracing::info!(partitions = ?tps, "partitions assigned");
        for tp in &tps {
            self.parts
                .entry(tp.clone())
                .or_insert_with(PartitionAcks::new);
        }
        if let Err(e) = self.app.agents().on_rebalance(&[], &tps).await {
            tracing::error!(error = %e, "agents failed to handle assignment");
        }
    }

    /// Commit every partition's contiguous acked prefix.
    pub(crate) async fn commit(&mut self, all: bool) {
        self.last_commit = Instant::now();
        let offsets: Vec<(TopicPartition, i64)> = self
            .parts
            .iter()
            .filter_map(|(tp, acks)| {
                let o = if all {
                    acks.current_commit()
                } else {
                    acks.take_commit()
                };
                o.map(|o| (tp.clone(), o))
            })
            .collect();
        if offsets.is_empty() {
            return;
        }
        tracing::trace!(?offsets, "commit");
        if let Err(e) = self.consumer.commit(&offsets).await {
            tracing::error!(error = %e, "commit failed");
        }
    }

    /// Final commit and leave the group.
    pub(crate) async fn close(mut self) -> Result<()> {
        self.commit(true).await;
        let timeout = self.app.config().stop_timeout;
        self.consumer.close(timeout).await
    }
}
