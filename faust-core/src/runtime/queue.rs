//! Agent queues: the bounded FIFO of deliveries between the conductor and
//! the actors of an agent (or of one isolated partition).
//!
//! A reader that finds events queued takes the oldest without waiting.
//! Readers waiting on an empty queue are woken in the order they began
//! waiting, one at a time: an event arriving while no woken reader is
//! still on its way wakes the reader that waited longest, with that event
//! promised to it, and each reader taking an event wakes the next waiting
//! one while more events wait. So readers that keep up run without being
//! woken at all (concurrency costs a trivial agent nothing), and readers
//! busy with slow events (I/O) are joined by the waiting ones as events
//! pile up, as Faust's actors take from their shared channel. A queue with
//! a single reader hands out events in batches kept with the queue, so
//! events taken but not yet processed survive an actor restart.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::runtime::acks::Lease;
use crate::sync::{Mutex, MutexGuard, Notify};

/// Events a single reader takes at once.
const READ_BATCH: usize = 64;

/// A shared handle to an agent queue.
pub(crate) type Queue = Arc<AgentQueue>;

/// Outcome of [`AgentQueue::try_push`].
pub(crate) enum Push {
    /// The event is queued (or handed to a waiting reader).
    Queued,
    /// The queue is full; the event is given back.
    Full(Lease),
    /// The queue is closed; the event is given back.
    Closed(Lease),
}

pub(crate) struct AgentQueue {
    state: Mutex<State>,
    /// Events a single reader took in a batch and has not processed yet.
    ready: Mutex<VecDeque<Lease>>,
    /// Events taken at once: 1 when several actors share the queue.
    batch: usize,
    capacity: usize,
    /// Wakes a producer waiting for room (or for the queue to close).
    room: Notify,
}

#[derive(Default)]
struct State {
    items: VecDeque<Lease>,
    /// Readers waiting for an event, in the order they began waiting.
    waiting: VecDeque<(u64, Waker)>,
    /// Readers woken with an event promised to them: that many events at
    /// the front of `items` are theirs.
    handed: Vec<u64>,
    next_reader: u64,
    closed: bool,
    /// A producer found the queue full and waits for room.
    wants_room: bool,
}

impl State {
    /// Promise the front event to the reader that has waited longest, if
    /// any; its waker is to be woken once the lock is released.
    fn hand_to_next_reader(&mut self) -> Option<Waker> {
        let (id, waker) = self.waiting.pop_front()?;
        self.handed.push(id);
        Some(waker)
    }
}

impl AgentQueue {
    /// A queue of `capacity` events; `shared` when several actors read it.
    pub(crate) fn new(capacity: usize, shared: bool) -> Queue {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            ready: Mutex::new(VecDeque::new()),
            batch: if shared { 1 } else { READ_BATCH },
            capacity: capacity.max(1),
            room: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    fn lock_ready(&self) -> MutexGuard<'_, VecDeque<Lease>> {
        self.ready.lock()
    }

    /// Events waiting in the queue (taken by no reader yet).
    pub(crate) fn len(&self) -> usize {
        let queued = self.lock().items.len();
        queued + self.lock_ready().len()
    }

    /// Queue an event if there is room, without waiting.
    pub(crate) fn try_push(&self, lease: Lease) -> Push {
        let mut st = self.lock();
        if st.closed {
            return Push::Closed(lease);
        }
        if st.items.len() >= self.capacity {
            st.wants_room = true;
            return Push::Full(lease);
        }
        st.items.push_back(lease);
        // A reader already woken will take this one or wake the next.
        let woken = if st.handed.is_empty() {
            st.hand_to_next_reader()
        } else {
            None
        };
        drop(st);
        if let Some(w) = woken {
            w.wake();
        }
        Push::Queued
    }

    /// Queue an event, waiting for room; gives it back if the queue closes.
    pub(crate) async fn push(&self, mut lease: Lease) -> Result<(), Lease> {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before looking, so a wake-up in between is kept.
            notified.as_mut().enable();
            match self.try_push(lease) {
                Push::Queued => return Ok(()),
                Push::Closed(d) => return Err(d),
                Push::Full(d) => lease = d,
            }
            notified.await;
        }
    }

    /// No more events: readers get what is queued, then `None`.
    pub(crate) fn close(&self) {
        let waiting = {
            let mut st = self.lock();
            st.closed = true;
            std::mem::take(&mut st.waiting)
        };
        for (_, w) in waiting {
            w.wake();
        }
        self.room.notify_waiters();
    }

    /// Close the queue and drop the events no reader has taken (an event
    /// already promised to a woken reader is still its own). Returns how
    /// many were dropped.
    pub(crate) fn close_and_drop(&self) -> usize {
        let dropped: Vec<Lease> = {
            let mut ready = self.lock_ready();
            let mut st = self.lock();
            let keep = st.handed.len().min(st.items.len());
            let mut dropped: Vec<Lease> = st.items.drain(keep..).collect();
            dropped.extend(ready.drain(..));
            dropped
        };
        self.close();
        dropped.len()
    }

    /// Put events back at the front of the queue, before every event not
    /// yet processed (those a single reader took in advance included), in
    /// the order given: the next readers take them first. Used for the
    /// events of an actor that ended without finishing them; they must be
    /// [released](Lease::release).
    pub(crate) fn give_back(&self, leases: Vec<Lease>) {
        if leases.is_empty() {
            return;
        }
        let woken: Vec<Waker> = {
            let mut ready = self.lock_ready();
            let mut st = self.lock();
            let n = leases.len() + ready.len();
            for lease in ready.drain(..).rev() {
                st.items.push_front(lease);
            }
            for lease in leases.into_iter().rev() {
                st.items.push_front(lease);
            }
            (0..n).map_while(|_| st.hand_to_next_reader()).collect()
        };
        for w in woken {
            w.wake();
        }
    }

    /// Release the lock after events were taken, waking a producer waiting
    /// for room once the queue is half empty (not on every event, so a full
    /// queue refills in runs), and the next waiting reader while events no
    /// reader was promised wait (one at a time: see the module docs).
    fn unlock_after_taking(&self, mut st: MutexGuard<'_, State>) {
        let room = st.wants_room && st.items.len() <= self.capacity / 2;
        if room {
            st.wants_room = false;
        }
        let next = if st.handed.is_empty() && !st.items.is_empty() {
            st.hand_to_next_reader()
        } else {
            None
        };
        drop(st);
        if room {
            self.room.notify_one();
        }
        if let Some(w) = next {
            w.wake();
        }
    }

    /// The next event if one is there, without waiting.
    pub(crate) fn try_next(&self) -> Option<Lease> {
        if self.batch > 1 {
            let mut ready = self.lock_ready();
            if let Some(d) = ready.pop_front() {
                return Some(d);
            }
            let mut st = self.lock();
            // Events promised to woken readers (a second reader of a
            // single-reader queue: `actor_from_stream`) stay for them.
            let free = st.items.len().saturating_sub(st.handed.len());
            if free == 0 {
                return None;
            }
            let n = free.min(self.batch);
            ready.extend(st.items.drain(..n));
            self.unlock_after_taking(st);
            return ready.pop_front();
        }
        let mut st = self.lock();
        // Events promised to woken readers stay for them.
        if st.items.len() <= st.handed.len() {
            return None;
        }
        let d = st.items.pop_front();
        self.unlock_after_taking(st);
        d
    }

    /// The next event; `None` once the queue is closed and empty.
    /// Cancel-safe: an event promised to a dropped wait goes to the next
    /// reader.
    pub(crate) async fn next(&self) -> Option<Lease> {
        loop {
            if let Some(d) = self.try_next() {
                return Some(d);
            }
            match (Take {
                queue: self,
                id: None,
            })
            .await
            {
                Taken::Event(d) => return Some(d),
                Taken::Closed => return None,
                Taken::Retry => {}
            }
        }
    }
}

enum Taken {
    Event(Lease),
    Closed,
    /// Events arrived before this reader began waiting: look again.
    Retry,
}

/// One reader waiting for an event.
struct Take<'a> {
    queue: &'a AgentQueue,
    /// Set while registered in `waiting` (or `handed`).
    id: Option<u64>,
}

impl Future for Take<'_> {
    type Output = Taken;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Taken> {
        let queue = self.queue;
        let mut st = queue.lock();
        let Some(id) = self.id else {
            let free = st.items.len() - st.handed.len();
            if free > 0 {
                return Poll::Ready(Taken::Retry);
            }
            if st.closed {
                return Poll::Ready(Taken::Closed);
            }
            let id = st.next_reader;
            st.next_reader += 1;
            self.id = Some(id);
            st.waiting.push_back((id, cx.waker().clone()));
            return Poll::Pending;
        };
        if let Some(i) = st.handed.iter().position(|h| *h == id) {
            st.handed.swap_remove(i);
            let d = st.items.pop_front();
            queue.unlock_after_taking(st);
            self.id = None;
            return Poll::Ready(d.map_or(Taken::Closed, Taken::Event));
        }
        if let Some((_, w)) = st.waiting.iter_mut().find(|(w, _)| *w == id) {
            if !w.will_wake(cx.waker()) {
                *w = cx.waker().clone();
            }
            return Poll::Pending;
        }
        // Neither waiting nor handed an event: the queue closed.
        drop(st);
        self.id = None;
        Poll::Ready(Taken::Closed)
    }
}

impl Drop for Take<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let mut st = self.queue.lock();
        if let Some(i) = st.waiting.iter().position(|(w, _)| *w == id) {
            st.waiting.remove(i);
            return;
        }
        let Some(i) = st.handed.iter().position(|h| *h == id) else {
            return;
        };
        // An event was promised to this reader: pass it on.
        st.handed.swap_remove(i);
        let next = st.hand_to_next_reader();
        drop(st);
        if let Some(w) = next {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::acks::{Message, MessageRef, PartitionAcks};
    use std::time::Duration;

    fn lease(offset: i64) -> Lease {
        let message = Message::for_test(offset, PartitionAcks::new(), 1);
        Lease::new(MessageRef::single(message))
    }

    fn pushed(q: &AgentQueue, offset: i64) {
        assert!(matches!(q.try_push(lease(offset)), Push::Queued));
    }

    /// Readers that each keep an event (busy with slow work) are woken in
    /// the order they began waiting, one per event.
    #[tokio::test]
    async fn waiting_readers_are_woken_in_turn_as_events_pile_up() {
        let q = AgentQueue::new(16, true);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hold = Arc::new(tokio::sync::Notify::new());
        let mut readers = Vec::new();
        for r in 0..3 {
            let (q, tx, hold) = (q.clone(), tx.clone(), hold.clone());
            readers.push(tokio::spawn(async move {
                let d = q.next().await.unwrap();
                tx.send((r, d.message().offset())).unwrap();
                hold.notified().await;
            }));
            tokio::task::yield_now().await;
        }
        for o in 0..3 {
            pushed(&q, o);
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv().await.unwrap());
        }
        assert_eq!(got, vec![(0, 0), (1, 1), (2, 2)]);
        hold.notify_waiters();
        for r in readers {
            tokio::time::timeout(Duration::from_secs(5), r)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// A reader that keeps up takes what is queued without waiting its
    /// turn: the other readers are woken only while events pile up (one
    /// here, for the last event), so concurrency costs a fast agent no
    /// wake-ups.
    #[tokio::test]
    async fn a_reader_that_keeps_up_is_not_made_to_wait_its_turn() {
        let q = AgentQueue::new(16, true);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut readers = Vec::new();
        for r in 0..3 {
            let (q, tx) = (q.clone(), tx.clone());
            readers.push(tokio::spawn(async move {
                while let Some(d) = q.next().await {
                    tx.send((r, d.message().offset())).unwrap();
                }
            }));
            tokio::task::yield_now().await;
        }
        for o in 0..9 {
            pushed(&q, o);
        }
        let mut got = Vec::new();
        for _ in 0..9 {
            got.push(rx.recv().await.unwrap());
        }
        let want: Vec<_> = (0..9).map(|o| (i32::from(o == 8), o)).collect();
        assert_eq!(got, want);
        q.close();
        for r in readers {
            tokio::time::timeout(Duration::from_secs(5), r)
                .await
                .unwrap()
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_dropped_wait_passes_its_event_on() {
        let q = AgentQueue::new(16, true);
        let first = q.clone();
        let a = tokio::spawn(async move { first.next().await.map(|d| d.message().offset()) });
        tokio::task::yield_now().await;
        let second = q.clone();
        let b = tokio::spawn(async move { second.next().await.map(|d| d.message().offset()) });
        tokio::task::yield_now().await;
        pushed(&q, 7); // promised to `a`
        a.abort();
        let _ = a.await;
        let got = tokio::time::timeout(Duration::from_secs(5), b)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, Some(7));
    }

    #[tokio::test]
    async fn a_full_queue_makes_push_wait_until_half_empty() {
        let q = AgentQueue::new(4, false);
        for o in 0..4 {
            pushed(&q, o);
        }
        assert!(matches!(q.try_push(lease(4)), Push::Full(_)));
        let p = q.clone();
        let mut push = tokio::spawn(async move { p.push(lease(4)).await.is_ok() });
        tokio::task::yield_now().await;
        assert!(!push.is_finished());
        // A single reader takes the whole queue as one batch.
        assert_eq!(q.try_next().unwrap().message().offset(), 0);
        let ok = tokio::time::timeout(Duration::from_secs(5), &mut push)
            .await
            .unwrap()
            .unwrap();
        assert!(ok);
        let offsets: Vec<i64> = std::iter::from_fn(|| q.try_next())
            .map(|d| d.message().offset())
            .collect();
        assert_eq!(offsets, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn close_ends_readers_after_the_queued_events_and_refuses_more() {
        let q = AgentQueue::new(4, true);
        pushed(&q, 0);
        q.close();
        assert!(matches!(q.try_push(lease(1)), Push::Closed(_)));
        assert_eq!(q.next().await.unwrap().message().offset(), 0);
        assert!(q.next().await.is_none());
        let waiter = AgentQueue::new(4, true);
        let w = waiter.clone();
        let h = tokio::spawn(async move { w.next().await.is_none() });
        tokio::task::yield_now().await;
        waiter.close();
        assert!(tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap()
            .unwrap());
        let full = AgentQueue::new(1, false);
        pushed(&full, 0);
        let f = full.clone();
        let p = tokio::spawn(async move { f.push(lease(1)).await.is_err() });
        tokio::task::yield_now().await;
        full.close();
        assert!(tokio::time::timeout(Duration::from_secs(5), p)
            .await
            .unwrap()
            .unwrap());
    }

    #[tokio::test]
    async fn given_back_events_come_first_in_order_even_before_those_taken_ahead() {
        for shared in [false, true] {
            let q = AgentQueue::new(16, shared);
            for o in 0..6 {
                pushed(&q, o);
            }
            // A reader took 0..3 (a single reader takes 0..6 ahead).
            let taken: Vec<Lease> = (0..3).map(|_| q.try_next().unwrap()).collect();
            q.give_back(taken);
            let order: Vec<i64> = (0..6)
                .map(|_| q.try_next().unwrap().message().offset())
                .collect();
            assert_eq!(order, vec![0, 1, 2, 3, 4, 5], "shared: {shared}");
        }
        // A waiting reader is woken for them.
        let q = AgentQueue::new(4, true);
        pushed(&q, 7);
        let lease = q.try_next().unwrap();
        let r = q.clone();
        let h = tokio::spawn(async move { r.next().await.map(|l| l.message().offset()) });
        tokio::task::yield_now().await;
        q.give_back(vec![lease]);
        let got = tokio::time::timeout(Duration::from_secs(5), h).await;
        assert_eq!(got.unwrap().unwrap(), Some(7));
    }
}

/// loom models (`--cfg faust_loom`): every interleaving of the conductor
/// pushing, actors taking and the queue closing, on the code above.
#[cfg(all(test, faust_loom))]
mod loom_tests {
    use super::*;
    use crate::runtime::acks::{Message, MessageRef, PartitionAcks};
    use futures::FutureExt;
    use loom::future::block_on;
    use loom::thread;

    fn lease(offset: i64) -> Lease {
        let message = Message::for_test(offset, PartitionAcks::new(), 1);
        Lease::new(MessageRef::single(message))
    }

    /// Offsets a reader takes until the queue is closed and empty.
    fn drain(q: &AgentQueue) -> Vec<i64> {
        std::iter::from_fn(|| block_on(q.next()))
            .map(|l| l.message().offset())
            .collect()
    }

    /// Two actors share a queue the conductor fills then closes: each
    /// event is taken once, and nobody sleeps through an event or the close.
    #[test]
    fn loom_shared_readers_take_every_event_once() {
        loom::model(|| {
            let q = AgentQueue::new(2, true);
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let q = q.clone();
                    thread::spawn(move || drain(&q))
                })
                .collect();
            for o in 0..2 {
                assert!(matches!(q.try_push(lease(o)), Push::Queued));
            }
            q.close();
            let mut got: Vec<i64> = readers
                .into_iter()
                .flat_map(|r| r.join().unwrap())
                .collect();
            got.sort_unstable();
            assert_eq!(got, vec![0, 1]);
        });
    }

    /// A conductor pushes three events through a queue of one to a single
    /// reader: it waits for room and is woken as the reader takes them.
    #[test]
    fn loom_a_full_queue_wakes_the_waiting_producer() {
        loom::model(|| {
            let q = AgentQueue::new(1, false);
            let reader = {
                let q = q.clone();
                thread::spawn(move || drain(&q))
            };
            for o in 0..3 {
                assert!(block_on(q.push(lease(o))).is_ok());
            }
            q.close();
            assert_eq!(reader.join().unwrap(), vec![0, 1, 2]);
        });
    }

    /// Two actors share a queue of one that the conductor keeps full: the
    /// producer's wait for room and the readers' waits for events interleave.
    #[test]
    fn loom_a_full_shared_queue_hands_every_event_once() {
        loom::model(|| {
            let q = AgentQueue::new(1, true);
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let q = q.clone();
                    thread::spawn(move || drain(&q))
                })
                .collect();
            for o in 0..2 {
                assert!(block_on(q.push(lease(o))).is_ok());
            }
            q.close();
            let mut got: Vec<i64> = readers
                .into_iter()
                .flat_map(|r| r.join().unwrap())
                .collect();
            got.sort_unstable();
            assert_eq!(got, vec![0, 1]);
        });
    }

    /// An actor gives up its wait (polled once, then dropped) while an
    /// event is pushed: an event promised to it goes to the other actor.
    #[test]
    fn loom_a_dropped_wait_passes_its_event_on() {
        loom::model(|| {
            let q = AgentQueue::new(2, true);
            let quitter = {
                let q = q.clone();
                thread::spawn(move || q.next().now_or_never().flatten().is_some())
            };
            let reader = {
                let q = q.clone();
                thread::spawn(move || drain(&q).len())
            };
            assert!(matches!(q.try_push(lease(0)), Push::Queued));
            let quitter_took = quitter.join().unwrap();
            q.close();
            let taken = reader.join().unwrap() + usize::from(quitter_took);
            assert_eq!(taken, 1, "the event is taken exactly once");
        });
    }
}
