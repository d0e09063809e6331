//! Records as they travel through a transport: topic partitions, consumed
//! records, records to produce and their delivery metadata.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// A topic name and partition number.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic partition.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// Topic partitions for a log line: each topic once, with its partitions as
/// ranges (`orders[0-3,6] quote[0-7]`), topics sorted, repetitions dropped;
/// `none` when empty. Transports use it for their rebalance logs, so that a
/// large assignment stays one short line.
///
/// ```
/// use faust_core::record::{compact, TopicPartition};
/// let tps: Vec<_> = [0, 1, 2, 3, 6]
///     .into_iter()
///     .map(|p| TopicPartition::new("orders", p))
///     .collect();
/// assert_eq!(compact(&tps).to_string(), "orders[0-3,6]");
/// ```
pub fn compact(tps: &[TopicPartition]) -> impl fmt::Display + '_ {
    Compact(tps)
}

struct Compact<'a>(&'a [TopicPartition]);

impl fmt::Display for Compact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let mut sorted: Vec<(&str, i32)> =
            self.0.iter().map(|tp| (&*tp.topic, tp.partition)).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut i = 0;
        while i < sorted.len() {
            let topic = sorted[i].0;
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{topic}[")?;
            let mut first = true;
            while i < sorted.len() && sorted[i].0 == topic {
                let start = sorted[i].1;
                let mut end = start;
                while i + 1 < sorted.len() && sorted[i + 1] == (topic, end + 1) {
                    i += 1;
                    end += 1;
                }
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                if start == end {
                    write!(f, "{start}")?;
                } else {
                    write!(f, "{start}-{end}")?;
                }
                i += 1;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

/// Message headers: ordered name/value pairs, names may repeat (as in Kafka).
pub type Headers = Vec<(String, Bytes)>;

/// Find the first header with this name.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a Bytes> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A record read from a topic partition.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Topic the record was read from.
    pub topic: Arc<str>,
    /// Partition the record was read from.
    pub partition: i32,
    /// Offset of the record in its partition.
    pub offset: i64,
    /// Timestamp in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Raw key, if any.
    pub key: Option<Bytes>,
    /// Raw value, if any (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Headers,
}

impl Record {
    /// The topic partition of this record.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

/// A record to produce.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProducerRecord {
    /// Destination topic.
    pub topic: Arc<str>,
    /// Explicit partition; `None` lets the partitioner choose (by key hash,
    /// or round-robin for records without a key).
    pub partition: Option<i32>,
    /// Raw key.
    pub key: Option<Bytes>,
    /// Raw value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Headers,
    /// Timestamp in milliseconds since the Unix epoch; `None` means now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with this value and nothing else set.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            value: Some(value.into()),
            ..Self::default()
        }
    }
}

/// Where a produced record was written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordMetadata {
    /// Topic written to.
    pub topic: Arc<str>,
    /// Partition written to.
    pub partition: i32,
    /// Offset assigned by the broker.
    pub offset: i64,
    /// Timestamp of the record in milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch from the kernel's coarse clock: the
/// wall clock read at most every [`COARSE_RESYNC_MS`], advanced by the
/// coarse monotonic clock in between. Resolution is one kernel tick (1 to
/// 4 ms) and the value may trail [`now_millis`] by that much; it costs a
/// fraction of a precise read. The embedded broker stamps records with it.
pub(crate) fn coarse_now_millis() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    /// Wall clock minus coarse monotonic clock, in ms.
    static OFFSET: AtomicI64 = AtomicI64::new(0);
    /// Coarse monotonic ms when `OFFSET` was set (`i64::MIN`: never).
    static SYNCED_AT: AtomicI64 = AtomicI64::new(i64::MIN);
    let mono = coarsetime::Duration::from_ticks(
        coarsetime::Instant::now_without_cache_update().as_ticks(),
    )
    .as_millis() as i64;
    let synced = SYNCED_AT.load(Ordering::Acquire);
    if synced == i64::MIN || mono.wrapping_sub(synced) >= COARSE_RESYNC_MS {
        // Racing resyncs store near-equal offsets: any of them is right.
        let offset = now_millis() - mono;
        OFFSET.store(offset, Ordering::Relaxed);
        SYNCED_AT.store(mono, Ordering::Release);
        return mono + offset;
    }
    mono + OFFSET.load(Ordering::Relaxed)
}

/// How often [`coarse_now_millis`] reads the wall clock again (so it
/// follows clock adjustments).
const COARSE_RESYNC_MS: i64 = 1000;

#[cfg(test)]
mod tests {
    use super::{compact, TopicPartition};

    #[test]
    fn topics_sorted_with_partition_ranges() {
        let mut tps: Vec<TopicPartition> = (0..8)
            .map(|p| TopicPartition::new("quickstart.quote", p))
            .collect();
        tps.extend([0, 1, 2, 3, 6, 8, 9, 3].map(|p| TopicPartition::new("orders", p)));
        assert_eq!(
            compact(&tps).to_string(),
            "orders[0-3,6,8-9] quickstart.quote[0-7]"
        );
        assert_eq!(compact(&[TopicPartition::new("t", 5)]).to_string(), "t[5]");
        assert_eq!(compact(&[]).to_string(), "none");
    }
}
