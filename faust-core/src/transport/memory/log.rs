//! Partition log storage of the embedded broker: topics, chunked partition
//! logs, appending and fetching records, retention by reader, the bytes
//! retained, and the wake-up of consumers sleeping on a partition.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::retained::Retained;
use super::RETENTION_CHUNK;
use crate::record::{Headers, Record, TopicPartition};
use crate::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use crate::sync::{Mutex, Notify};

const CHUNK: usize = RETENTION_CHUNK;

/// A record as stored in a partition log (topic, partition and offset are
/// implied by where it is stored).
pub(super) struct Stored {
    pub(super) timestamp: i64,
    pub(super) key: Option<Bytes>,
    pub(super) value: Option<Bytes>,
    pub(super) headers: Headers,
}

impl Stored {
    /// What this record counts against the broker's `max_bytes`: its key,
    /// value and headers, and the bookkeeping around them.
    pub(super) fn size(&self) -> usize {
        const OVERHEAD: usize = std::mem::size_of::<Stored>();
        OVERHEAD
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + std::mem::size_of::<(String, Bytes)>())
                .sum::<usize>()
    }
}

/// Records of a partition stored together, and their size.
struct Chunk {
    records: Vec<Stored>,
    /// Sum of the records' [`Stored::size`].
    bytes: usize,
}

/// Bytes of the last chunk not yet counted in [`Retained`]: counted when
/// they reach this, or when the chunk is full (so the shared counter is
/// touched once per many appends, not on each).
const PUBLISH_BYTES: usize = 64 * 1024;

/// A consumer waiting for appends to a partition.
struct Watcher {
    consumer: u64,
    notify: Arc<Notify>,
    /// The consumer waits for records: only then do appends wake it (a
    /// wake-up is a read-modify-write on a line the consumer also writes).
    sleeping: Arc<AtomicBool>,
}

/// The records of a partition and who reads them.
struct Log {
    /// Records in chunks of [`CHUNK`], so appending never moves old records.
    chunks: VecDeque<Chunk>,
    /// Bytes of the last chunk not counted in `retained` yet.
    unpublished: usize,
    /// Offset of the first record of `chunks[0]` (every chunk but the last
    /// holds [`CHUNK`] records).
    base: i64,
    /// Consumers reading this partition, woken on every append.
    watchers: Vec<Watcher>,
    /// Who still needs records, by id: groups (their committed offset) and
    /// assigned consumers (their position). Records below the lowest are freed.
    readers: Vec<(u64, i64)>,
}

/// One partition: its log and its offsets.
pub(super) struct Partition {
    /// Number of records (the offset of the next one); written under the log
    /// lock, readable without it.
    end: AtomicI64,
    /// Offset of the oldest retained record; written under the log lock.
    start: AtomicI64,
    log: Mutex<Log>,
    /// The broker's count of retained bytes.
    retained: Arc<Retained>,
}

impl Drop for Partition {
    fn drop(&mut self) {
        let log = self.log.lock();
        let counted = log.chunks.iter().map(|c| c.bytes).sum::<usize>() - log.unpublished;
        self.retained.free(counted);
    }
}

impl Partition {
    fn new(retained: Arc<Retained>) -> Self {
        Self {
            end: AtomicI64::new(0),
            start: AtomicI64::new(0),
            retained,
            log: Mutex::new(Log {
                chunks: VecDeque::new(),
                unpublished: 0,
                base: 0,
                watchers: Vec::new(),
                readers: Vec::new(),
            }),
        }
    }

    /// Offset of the next record.
    #[inline]
    pub(super) fn end(&self) -> i64 {
        self.end.load(Ordering::Acquire)
    }

    /// Offset of the oldest retained record.
    #[inline]
    pub(super) fn start(&self) -> i64 {
        self.start.load(Ordering::Acquire)
    }

    /// Register a reader that needs records from `low` on, unless known.
    pub(super) fn add_reader(&self, id: u64, low: i64) {
        let mut log = self.log.lock();
        if !log.readers.iter().any(|(r, _)| *r == id) {
            log.readers.push((id, low));
        }
    }

    /// Reader `id` needs nothing below `low` any more: free what no reader needs.
    pub(super) fn advance_reader(&self, id: u64, low: i64) {
        let mut log = self.log.lock();
        match log.readers.iter_mut().find(|(r, _)| *r == id) {
            Some((_, l)) if *l >= low => return,
            Some((_, l)) => *l = low,
            None => log.readers.push((id, low)),
        }
        self.trim(&mut log);
    }

    /// Forget reader `id` (an assigned consumer that closed).
    pub(super) fn remove_reader(&self, id: u64) {
        let mut log = self.log.lock();
        log.readers.retain(|(r, _)| *r != id);
        self.trim(&mut log);
    }

    fn trim(&self, log: &mut Log) {
        let Some(low) = log.readers.iter().map(|(_, l)| *l).min() else {
            return;
        };
        // Every chunk but the last is full. The last one goes too when the
        // broker is at its bound and every reader has read all of it (so
        // that a bound smaller than a chunk per partition still frees
        // room); the next append then starts a new one.
        let mut freed = 0;
        while log.chunks.len() > 1 && log.base + CHUNK as i64 <= low {
            freed += log.chunks.pop_front().map_or(0, |c| c.bytes);
            log.base += CHUNK as i64;
        }
        let end = self.end.load(Ordering::Relaxed);
        if log.chunks.len() == 1 && low >= end && log.base < end && self.retained.is_full() {
            let last = log.chunks.pop_front().map_or(0, |c| c.bytes);
            freed += last - std::mem::take(&mut log.unpublished);
            log.base = end;
        }
        if log.base > self.start.load(Ordering::Relaxed) {
            self.start.store(log.base, Ordering::Release);
        }
        self.retained.free(freed);
    }

    /// Append a record, wake the readers and return its offset.
    #[inline]
    pub(super) fn append(&self, stored: Stored) -> i64 {
        let size = stored.size();
        let mut log = self.log.lock();
        let offset = self.end.load(Ordering::Relaxed);
        let log = &mut *log;
        match log.chunks.back_mut() {
            Some(chunk) if chunk.records.len() < CHUNK => {
                chunk.records.push(stored);
                chunk.bytes += size;
                log.unpublished += size;
            }
            _ => {
                // The previous chunk is complete: count all of it.
                let previous = std::mem::replace(&mut log.unpublished, size);
                self.retained.hold(previous);
                let mut records = Vec::with_capacity(CHUNK);
                records.push(stored);
                log.chunks.push_back(Chunk {
                    records,
                    bytes: size,
                });
            }
        }
        if log.unpublished >= PUBLISH_BYTES {
            self.retained.hold(std::mem::take(&mut log.unpublished));
        }
        self.end.store(offset + 1, Ordering::Release);
        // Under the log lock, which a consumer going to sleep takes after
        // saying so: either it sees the new end, or this sees it sleeping.
        for w in &log.watchers {
            if w.sleeping.load(Ordering::Relaxed) {
                w.notify.notify_one();
            }
        }
        offset
    }

    /// Append `count` records from offset `from` (at or above `start()`,
    /// below `end()`) to `out`.
    #[inline]
    pub(super) fn read_into(
        &self,
        topic: &Arc<str>,
        partition: i32,
        from: i64,
        count: usize,
        out: &mut Vec<Record>,
    ) {
        let log = self.log.lock();
        let base = log.base as usize;
        let mut offset = (from.max(0) as usize).max(base);
        let end = offset + count;
        while offset < end {
            let Some(chunk) = log.chunks.get((offset - base) / CHUNK) else {
                break;
            };
            let start = (offset - base) % CHUNK;
            let n = (chunk.records.len().saturating_sub(start)).min(end - offset);
            if n == 0 {
                break;
            }
            out.extend(
                chunk.records[start..start + n]
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Record {
                        topic: topic.clone(),
                        partition,
                        offset: (offset + i) as i64,
                        timestamp: s.timestamp,
                        key: s.key.clone(),
                        value: s.value.clone(),
                        headers: s.headers.clone(),
                    }),
            );
            offset += n;
        }
    }

    /// Whether records at or above `position` exist, read under the log
    /// lock (so an append either is seen or sees the reader's state).
    #[inline]
    pub(super) fn has_records_from(&self, position: i64) -> bool {
        let _log = self.log.lock();
        self.end.load(Ordering::Acquire) > position
    }

    /// Wake `consumer` on appends while it sleeps.
    pub(super) fn watch(&self, consumer: u64, notify: &Arc<Notify>, sleeping: &Arc<AtomicBool>) {
        let mut log = self.log.lock();
        if !log.watchers.iter().any(|w| w.consumer == consumer) {
            log.watchers.push(Watcher {
                consumer,
                notify: notify.clone(),
                sleeping: sleeping.clone(),
            });
        }
    }

    /// Stop waking `consumer`.
    pub(super) fn unwatch(&self, consumer: u64) {
        self.log.lock().watchers.retain(|w| w.consumer != consumer);
    }
}

/// A topic: its partitions.
pub(super) struct Topic {
    pub(super) name: Arc<str>,
    pub(super) partitions: Box<[Partition]>,
    /// Next partition for records without key and partition.
    pub(super) round_robin: AtomicUsize,
}

impl Topic {
    /// A topic of `partitions` empty partitions (at least 1), counting
    /// what they hold in `retained`.
    pub(super) fn new(name: &str, partitions: i32, retained: &Arc<Retained>) -> Self {
        Self {
            name: name.into(),
            partitions: (0..partitions.max(1))
                .map(|_| Partition::new(retained.clone()))
                .collect(),
            round_robin: AtomicUsize::new(0),
        }
    }

    /// Number of partitions.
    #[inline]
    pub(super) fn count(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// Partition `p`, if it exists.
    #[inline]
    pub(super) fn partition(&self, p: i32) -> Option<&Partition> {
        usize::try_from(p).ok().and_then(|p| self.partitions.get(p))
    }
}

/// A partition a consumer reads.
pub(super) struct Fetch {
    pub(super) tp: TopicPartition,
    pub(super) topic: Arc<Topic>,
    /// Offset of the next record to return.
    pub(super) position: i64,
}

impl Fetch {
    /// The partition read.
    #[inline]
    pub(super) fn partition(&self) -> &Partition {
        &self.topic.partitions[self.tp.partition as usize]
    }
}

/// A consumer with nothing to fetch sleeps until an append to one of its
/// partitions `fetch` (whose `watch` names `notify` and `sleeping`), a
/// notification of its group, or `deadline`. Returns at once if records
/// arrived meanwhile.
///
/// Appends wake only a sleeping consumer: it says so, then looks once more
/// under each log's lock (see [`Partition::append`]).
pub(super) async fn sleep_until_appended(
    notify: &Notify,
    sleeping: &AtomicBool,
    fetch: &[Fetch],
    deadline: Option<Instant>,
) {
    let notified = notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    sleeping.store(true, Ordering::Relaxed);
    if fetch
        .iter()
        .any(|f| f.partition().has_records_from(f.position))
    {
        sleeping.store(false, Ordering::Relaxed);
        return;
    }
    match deadline {
        Some(deadline) => {
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        None => notified.await,
    }
    sleeping.store(false, Ordering::Relaxed);
}

/// loom model (`--cfg faust_loom`): a consumer going to sleep while a
/// producer appends, on the code above.
#[cfg(all(test, faust_loom))]
mod loom_tests {
    use super::*;

    /// The consumer looks (as `poll` does, without the lock), finds nothing
    /// and sleeps, while a record is appended: it must wake and see it,
    /// whatever the interleaving (a lost wake-up is a loom deadlock).
    #[test]
    fn loom_a_sleeping_consumer_sees_a_racing_append() {
        loom::model(|| {
            let topic = Arc::new(Topic::new("t", 1, &Arc::new(Retained::new(usize::MAX))));
            let notify = Arc::new(Notify::new());
            let sleeping = Arc::new(AtomicBool::new(false));
            topic.partitions[0].watch(1, &notify, &sleeping);
            let producer = {
                let topic = topic.clone();
                loom::thread::spawn(move || {
                    topic.partitions[0].append(Stored {
                        timestamp: 0,
                        key: None,
                        value: None,
                        headers: vec![],
                    })
                })
            };
            let fetch = [Fetch {
                tp: TopicPartition::new("t", 0),
                topic: topic.clone(),
                position: 0,
            }];
            while fetch[0].partition().end() == 0 {
                loom::future::block_on(sleep_until_appended(&notify, &sleeping, &fetch, None));
            }
            let mut out = Vec::new();
            fetch[0]
                .partition()
                .read_into(&topic.name, 0, 0, 1, &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(producer.join().unwrap(), 0);
        });
    }
}
