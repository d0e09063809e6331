//! [`DeliveryGroup`]: deliveries a transport reports by callback, counted
//! for a group of records (the outputs of one event), instead of a future
//! per record.

use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::record::RecordMetadata;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::Mutex;

/// What to do once every record of a group is reported.
enum OnDone {
    /// Not said yet: the group is open.
    Open,
    /// Run this with the first failure, if any.
    Call(Box<dyn FnOnce(Result<()>) + Send>),
    /// A group of one record: send its report, metadata included.
    Send(tokio::sync::oneshot::Sender<Result<RecordMetadata>>),
    /// Done already.
    Spent,
}

struct State {
    /// The first failure reported, kept until the group is done.
    failure: Option<Error>,
    on_done: OnDone,
}

/// Records handed to a transport whose deliveries it reports here, one
/// report per record, from whatever thread it likes; once the group is
/// closed and every record is reported, what the group was closed with runs
/// once, with the first failure if there was one.
///
/// The runtime makes a group for the outputs of one event (its reply and
/// sink records) and closes it when the event is done, so that acking the
/// event costs a count per record rather than a future per record. A
/// transport that reports through a group (see
/// [`Transport::try_enqueue_reported`](super::Transport::try_enqueue_reported))
/// keeps a clone of the `Arc` with each record until it reports it.
///
/// ```
/// # use faust_core as faust;
/// use faust::transport::DeliveryGroup;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // A transport that reports by callback still gives `try_enqueue`'s
/// // callers a future: a group of one record.
/// let (group, delivery) = DeliveryGroup::single();
/// group.delivered(|| faust::RecordMetadata {
///     topic: "orders".into(),
///     partition: 0,
///     offset: 7,
///     timestamp: 0,
/// });
/// assert_eq!(delivery.await.unwrap().offset, 7);
/// # }
/// ```
pub struct DeliveryGroup {
    /// Records handed over and not reported yet, plus one while open.
    pending: AtomicUsize,
    /// A group of one (made by [`single`](Self::single)).
    single: bool,
    created: Instant,
    state: Mutex<State>,
}

impl std::fmt::Debug for DeliveryGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryGroup")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl DeliveryGroup {
    /// An open group with no record yet.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: AtomicUsize::new(1),
            single: false,
            created: Instant::now(),
            state: Mutex::new(State {
                failure: None,
                on_done: OnDone::Open,
            }),
        })
    }

    /// A group for one record, and the future of that record's delivery
    /// (its metadata, or why it failed): what a transport that reports by
    /// callback returns from [`Transport::try_enqueue`](super::Transport::try_enqueue).
    pub fn single() -> (Arc<Self>, super::DeliveryFuture) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let group = Arc::new(Self {
            pending: AtomicUsize::new(1),
            single: true,
            created: Instant::now(),
            state: Mutex::new(State {
                failure: None,
                on_done: OnDone::Send(tx),
            }),
        });
        let delivery = Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(Error::Broker(
                    "the transport dropped the record without reporting its delivery".into(),
                ))
            })
        });
        (group, delivery)
    }

    /// When the group was made: a transport's delivery deadline for its
    /// records may count from here.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// One record of the group was delivered; `metadata` is called only if
    /// someone wants it (a group of one).
    pub fn delivered(&self, metadata: impl FnOnce() -> RecordMetadata) {
        if self.single {
            if let Some(tx) = self.take_sender() {
                let _ = tx.send(Ok(metadata()));
            }
            return;
        }
        self.reported();
    }

    /// One record of the group will not be delivered: the group is done
    /// with this failure (the first one reported, if there are several).
    pub fn failed(&self, error: Error) {
        if self.single {
            if let Some(tx) = self.take_sender() {
                let _ = tx.send(Err(error));
            }
            return;
        }
        self.state.lock().failure.get_or_insert(error);
        self.reported();
    }

    /// A record is about to be handed to the transport with this group.
    pub(crate) fn expect_one(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// The transport did not take the record [`expect_one`](Self::expect_one)
    /// counted (the group is open, so this never finishes it).
    pub(crate) fn not_taken(&self) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// No more records join the group: run `on_done` once every record
    /// handed over is reported (now, if they all are).
    pub(crate) fn close(&self, on_done: impl FnOnce(Result<()>) + Send + 'static) {
        {
            let mut st = self.state.lock();
            debug_assert!(matches!(st.on_done, OnDone::Open), "a group closes once");
            st.on_done = OnDone::Call(Box::new(on_done));
        }
        self.reported();
    }

    /// Close the group and wait until every record handed over is reported.
    pub(crate) async fn close_and_wait(&self) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.close(move |result| {
            let _ = tx.send(result);
        });
        rx.await.unwrap_or_else(|_| {
            Err(Error::Broker(
                "the transport dropped records without reporting their delivery".into(),
            ))
        })
    }

    /// The sender of a group of one, taken (none once reported).
    fn take_sender(&self) -> Option<tokio::sync::oneshot::Sender<Result<RecordMetadata>>> {
        match std::mem::replace(&mut self.state.lock().on_done, OnDone::Spent) {
            OnDone::Send(tx) => Some(tx),
            _ => None,
        }
    }

    /// One count less; the last one runs what the group was closed with.
    fn reported(&self) {
        // AcqRel: whatever a reporter did happens before the closure runs.
        if self.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let (failure, on_done) = {
            let mut st = self.state.lock();
            let on_done = std::mem::replace(&mut st.on_done, OnDone::Spent);
            (st.failure.take(), on_done)
        };
        if let OnDone::Call(f) = on_done {
            f(failure.map_or(Ok(()), Err));
        }
    }
}

#[cfg(all(test, not(faust_loom)))]
mod tests {
    use super::*;

    fn closed(group: &DeliveryGroup) -> Arc<Mutex<Option<Result<()>>>> {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        group.close(move |r| *s.lock() = Some(r));
        seen
    }

    fn md() -> RecordMetadata {
        RecordMetadata {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            timestamp: 0,
        }
    }

    #[test]
    fn a_closed_group_finishes_at_its_last_report() {
        let g = DeliveryGroup::new();
        g.expect_one();
        g.expect_one();
        g.delivered(md);
        let seen = closed(&g);
        assert!(seen.lock().is_none(), "one record is still out");
        g.delivered(|| unreachable!("nobody wants a group member's metadata"));
        assert!(matches!(*seen.lock(), Some(Ok(()))));
    }

    #[test]
    fn a_group_closed_with_nothing_out_finishes_at_once() {
        let g = DeliveryGroup::new();
        g.expect_one();
        g.not_taken();
        let seen = closed(&g);
        assert!(matches!(*seen.lock(), Some(Ok(()))));
    }

    #[test]
    fn the_first_failure_is_the_groups() {
        let g = DeliveryGroup::new();
        for _ in 0..3 {
            g.expect_one();
        }
        g.failed(Error::Broker("first".into()));
        g.delivered(md);
        g.failed(Error::Broker("second".into()));
        let seen = closed(&g);
        let seen = seen.lock().take();
        match seen {
            Some(Err(e)) => assert!(e.to_string().contains("first"), "{e}"),
            other => panic!("expected the first failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_group_of_one_sends_its_metadata_or_its_failure() {
        let (g, delivery) = DeliveryGroup::single();
        g.delivered(md);
        assert_eq!(delivery.await.unwrap().offset, 1);
        let (g, delivery) = DeliveryGroup::single();
        g.failed(Error::Broker("gone".into()));
        assert!(delivery.await.unwrap_err().to_string().contains("gone"));
        let (g, delivery) = DeliveryGroup::single();
        drop(g);
        let err = delivery.await.unwrap_err().to_string();
        assert!(err.contains("without reporting"), "{err}");
    }
}

#[cfg(all(test, faust_loom))]
mod loom_tests {
    use super::*;

    /// A report on another thread races the close: what the group was
    /// closed with runs exactly once, after both.
    #[test]
    fn loom_close_races_the_last_report() {
        loom::model(|| {
            let g = DeliveryGroup::new();
            g.expect_one();
            let runs = Arc::new(AtomicUsize::new(0));
            let reporter = {
                let g = g.clone();
                loom::thread::spawn(move || g.failed(Error::Broker("x".into())))
            };
            let r = runs.clone();
            g.close(move |res| {
                assert!(res.is_err());
                r.fetch_add(1, Ordering::SeqCst);
            });
            reporter.join().unwrap();
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        });
    }
}
