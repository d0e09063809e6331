//! A group member driven by the checks, checking the consumer protocol as
//! it goes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::record::{Record, TopicPartition};
use crate::transport::{Consumer, ConsumerEvent};

use super::event_within;

/// A group member driven by a check. Each [`step`](Member::step) polls its
/// consumer once and checks the protocol:
///
/// - records come only for partitions it owns, never empty batches, with
///   consecutive offsets per partition while it owns the partition;
/// - `Revoked` names only owned partitions, `Assigned` only partitions not
///   owned already, neither is empty;
/// - on `Revoked` it commits the next offset of every revoked partition it
///   read (unless [`commit_on_revoke`](Member::commit_on_revoke) is off),
///   before polling again, as the runtime does.
pub struct Member {
    /// A name for messages.
    pub name: String,
    /// The consumer.
    pub consumer: Box<dyn Consumer>,
    /// The partitions it owns now.
    pub assigned: BTreeSet<TopicPartition>,
    /// The next offset to read per owned partition it has read from.
    pub next: BTreeMap<TopicPartition, i64>,
    /// Every record it was handed, in order.
    pub seen: Vec<Record>,
    /// Its rebalance events, as `revoked [..]` / `assigned [..]` with the
    /// partitions' debug form, in order.
    pub events: Vec<String>,
    /// Whether it commits on `Revoked` (default true).
    pub commit_on_revoke: bool,
    /// Whether a refused commit on `Revoked` is tolerated (see
    /// [`Harness::refuses_commits_during_rebalance`](super::Harness::refuses_commits_during_rebalance)).
    pub tolerate_refused_commits: bool,
    /// Ranges of offsets it read but could not commit, which the next
    /// owner may therefore read again.
    pub excused: Vec<(TopicPartition, Range<i64>)>,
    /// Per owned partition: the first offset read in this ownership, then
    /// its last accepted commit.
    low: BTreeMap<TopicPartition, i64>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("assigned", &self.assigned)
            .field("seen", &self.seen.len())
            .field("events", &self.events)
            .finish()
    }
}

impl Member {
    /// A member around a consumer that has just subscribed.
    pub fn new(name: impl Into<String>, consumer: Box<dyn Consumer>) -> Self {
        Self {
            name: name.into(),
            consumer,
            assigned: BTreeSet::new(),
            next: BTreeMap::new(),
            seen: Vec::new(),
            events: Vec::new(),
            commit_on_revoke: true,
            tolerate_refused_commits: false,
            excused: Vec::new(),
            low: BTreeMap::new(),
        }
    }

    /// Poll once for at most `d`, handling and checking the event; true if
    /// an event came.
    pub async fn step(&mut self, d: Duration) -> bool {
        let Some(ev) = event_within(&mut self.consumer, d).await else {
            return false;
        };
        let name = &self.name;
        match ev {
            ConsumerEvent::Records(rs) => {
                assert!(!rs.is_empty(), "{name}: an empty Records event");
                for r in rs {
                    let tp = r.topic_partition();
                    assert!(
                        self.assigned.contains(&tp),
                        "{name}: record {tp}@{} of a partition it does not own ({:?})",
                        r.offset,
                        self.assigned
                    );
                    if let Some(n) = self.next.get(&tp) {
                        assert_eq!(r.offset, *n, "{name}: offsets of {tp} not consecutive");
                    }
                    self.low.entry(tp.clone()).or_insert(r.offset);
                    self.next.insert(tp, r.offset + 1);
                    self.seen.push(r);
                }
            }
            ConsumerEvent::Revoked(tps) => {
                self.events.push(format!("revoked {tps:?}"));
                assert!(!tps.is_empty(), "{name}: an empty Revoked event");
                let mut offsets = Vec::new();
                for tp in &tps {
                    assert!(
                        self.assigned.remove(tp),
                        "{name}: revoked {tp} it does not own"
                    );
                    if let Some(n) = self.next.remove(tp) {
                        offsets.push((tp.clone(), n));
                    }
                }
                if self.commit_on_revoke && !offsets.is_empty() {
                    match self.consumer.commit(&offsets).await {
                        Ok(()) => {}
                        Err(e) if self.tolerate_refused_commits => {
                            tracing::info!(member = %name, error = %e, "commit on revoke refused (tolerated)");
                            for (tp, n) in &offsets {
                                if let Some(low) = self.low.get(tp) {
                                    self.excused.push((tp.clone(), *low..*n));
                                }
                            }
                        }
                        Err(e) => panic!("{name}: commit on revoke of {offsets:?} failed: {e}"),
                    }
                }
                for tp in &tps {
                    self.low.remove(tp);
                }
            }
            ConsumerEvent::Assigned(tps) => {
                self.events.push(format!("assigned {tps:?}"));
                assert!(!tps.is_empty(), "{name}: an empty Assigned event");
                for tp in tps {
                    assert!(
                        self.assigned.insert(tp.clone()),
                        "{name}: {tp} assigned while owned"
                    );
                }
            }
        }
        true
    }

    /// Commit the next offset of every owned partition it has read from;
    /// panics if the commit fails.
    pub async fn commit_all(&mut self) {
        let offsets: Vec<_> = self.next.iter().map(|(t, o)| (t.clone(), *o)).collect();
        if offsets.is_empty() {
            return;
        }
        self.consumer
            .commit(&offsets)
            .await
            .unwrap_or_else(|e| panic!("{}: commit of {offsets:?} failed: {e}", self.name));
        for (tp, o) in offsets {
            self.low.insert(tp, o);
        }
    }

    /// How many revocations it has seen.
    pub fn revocations(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e.starts_with("revoked"))
            .count()
    }

    /// The distinct (partition, offset) pairs it has seen.
    pub fn distinct(&self) -> BTreeSet<(TopicPartition, i64)> {
        self.seen
            .iter()
            .map(|r| (r.topic_partition(), r.offset))
            .collect()
    }
}

/// Step every member in turn until `done` holds, checking after every step
/// that no partition is owned by two members at once; panics after
/// `deadline` with `what`.
pub async fn drive_until(
    ms: &mut [&mut Member],
    deadline: Duration,
    what: &str,
    done: impl Fn(&[&mut Member]) -> bool,
) {
    let start = Instant::now();
    while !done(ms) {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting until {what}: {ms:?}"
        );
        for i in 0..ms.len() {
            ms[i].step(Duration::from_millis(5)).await;
            assert_disjoint(ms);
        }
    }
}

/// Step every member until none has had an event for `quiet` (at most
/// `deadline`), so that nothing in flight is missed by a final count.
pub async fn settle(ms: &mut [&mut Member], quiet: Duration, deadline: Duration) {
    let start = Instant::now();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        assert!(
            start.elapsed() < deadline,
            "members never settled within {deadline:?}: {ms:?}"
        );
        for i in 0..ms.len() {
            if ms[i].step(Duration::from_millis(5)).await {
                last = Instant::now();
            }
            assert_disjoint(ms);
        }
    }
}

fn assert_disjoint(ms: &[&mut Member]) {
    for (i, a) in ms.iter().enumerate() {
        for b in &ms[i + 1..] {
            let both: Vec<_> = a.assigned.intersection(&b.assigned).collect();
            assert!(
                both.is_empty(),
                "{both:?} owned by both {} and {}",
                a.name,
                b.name
            );
        }
    }
}

/// How many partitions each member owns.
pub fn sizes(ms: &[&mut Member]) -> Vec<usize> {
    ms.iter().map(|m| m.assigned.len()).collect()
}

/// Every record of `expected` (partition, offset) pairs was seen by the
/// members, and each exactly once, except records excused by a refused
/// commit (see [`Member::excused`]), which may come again.
pub fn assert_each_record_once(ms: &[&mut Member], expected: usize) {
    let mut all: BTreeSet<(TopicPartition, i64)> = BTreeSet::new();
    let excused = |tp: &TopicPartition, o: i64| {
        ms.iter()
            .flat_map(|m| m.excused.iter())
            .any(|(t, r)| t == tp && r.contains(&o))
    };
    for m in ms {
        for r in &m.seen {
            let tp = r.topic_partition();
            if !all.insert((tp.clone(), r.offset)) {
                assert!(
                    excused(&tp, r.offset),
                    "{tp}@{} delivered twice (the second time to {})",
                    r.offset,
                    m.name
                );
            }
        }
    }
    assert_eq!(all.len(), expected, "records seen by the members");
}
