//! [`BarrierState`]: the replies of a group of requests (`map`/`join`).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::IntoFuture;
use std::pin::pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::Stream;
use serde_json::Value;
use tokio::sync::Notify;

use super::promise::{ReplyPromise, ReplyWaiter};
use crate::error::{Error, Result};
use crate::sync::Mutex;

/// One reply received by a [`BarrierState`].
///
/// `value` is `Ok` with the reply value, or `Err` with the error message of
/// an agent that failed to answer (see [`ReplyWaiter::fail`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplyTuple {
    /// Correlation id of the request this answers.
    pub correlation_id: String,
    /// The reply value, or the agent's error message.
    pub value: std::result::Result<Value, String>,
}

impl ReplyTuple {
    /// The value, or [`Error::Remote`] (with an empty `agent`) for a failed
    /// reply.
    pub fn into_result(self) -> Result<Value> {
        self.value.map_err(|message| Error::Remote {
            agent: String::new(),
            message,
        })
    }
}

/// The state of a group of requests whose replies are collected together.
///
/// Requests are [`add`](Self::add)ed while they are sent, then the barrier
/// is [`finalize`](Self::finalize)d. Replies may arrive at any time after
/// their request was added, also before `finalize`. The barrier is done once
/// it is finalized and every added request got exactly one reply (a value or
/// an error); replies for unknown or already answered correlation ids are
/// ignored.
///
/// Received replies queue up (unbounded) in arrival order and are read with
/// [`get_nowait`](Self::get_nowait), [`next`](Self::next) or
/// [`iterate`](Self::iterate); each reply is read once. [`wait`](Self::wait)
/// (or `barrier.await`) waits for completion without reading anything.
///
/// Cloning gives another handle to the same barrier. One mutex guards the
/// state, so a barrier of any size costs no task per request.
#[derive(Clone)]
pub struct BarrierState {
    inner: Arc<Inner>,
}

struct Inner {
    reply_to: String,
    state: Mutex<State>,
    /// Signalled on every new reply and on completion.
    results: Notify,
    /// Signalled on completion only.
    done: Notify,
}

#[derive(Default)]
struct State {
    size: usize,
    total: usize,
    fulfilled: usize,
    finalized: bool,
    pending: HashSet<String>,
    results: VecDeque<ReplyTuple>,
}

impl State {
    fn is_done(&self) -> bool {
        self.finalized && self.pending.is_empty()
    }
}

impl BarrierState {
    /// An empty barrier whose replies are expected on topic `reply_to`.
    pub fn new(reply_to: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                reply_to: reply_to.into(),
                state: Mutex::new(State::default()),
                results: Notify::new(),
                done: Notify::new(),
            }),
        }
    }

    /// The topic the replies are expected on.
    pub fn reply_to(&self) -> &str {
        &self.inner.reply_to
    }

    /// The number of requests added so far (the tentative total).
    pub fn size(&self) -> usize {
        self.inner.state.lock().size
    }

    /// The final number of requests; `0` until [`finalize`](Self::finalize).
    pub fn total(&self) -> usize {
        self.inner.state.lock().total
    }

    /// The number of replies received (values and errors).
    pub fn fulfilled(&self) -> usize {
        self.inner.state.lock().fulfilled
    }

    /// The number of added requests still waiting for their reply.
    pub fn pending(&self) -> usize {
        self.inner.state.lock().pending.len()
    }

    /// Whether the barrier is finalized and every request got its reply.
    pub fn is_done(&self) -> bool {
        self.inner.state.lock().is_done()
    }

    /// Add the request of promise `p` (only its correlation id is kept).
    ///
    /// Fails with [`Error::Rpc`] after [`finalize`](Self::finalize) or if
    /// the correlation id was already added.
    pub fn add(&self, p: ReplyPromise) -> Result<()> {
        self.add_correlation_id(p.correlation_id())
    }

    /// Add a request by its correlation id, without building a promise.
    ///
    /// Fails with [`Error::Rpc`] after [`finalize`](Self::finalize), for an
    /// empty id, or if the id was already added.
    pub fn add_correlation_id(&self, correlation_id: impl Into<String>) -> Result<()> {
        let correlation_id = correlation_id.into();
        let mut st = self.inner.state.lock();
        if st.finalized {
            return Err(Error::Rpc(
                "cannot add to a BarrierState after finalize".to_owned(),
            ));
        }
        if correlation_id.is_empty() {
            return Err(Error::Rpc("BarrierState: empty correlation_id".to_owned()));
        }
        if !st.pending.insert(correlation_id) {
            return Err(Error::Rpc(
                "BarrierState: duplicate correlation_id".to_owned(),
            ));
        }
        st.size += 1;
        Ok(())
    }

    /// Fix the total at the current size; no more requests can be added.
    /// Completes the barrier at once if every reply is already in (or it is
    /// empty). Calling it again does nothing.
    pub fn finalize(&self) {
        let done = {
            let mut st = self.inner.state.lock();
            if st.finalized {
                return;
            }
            st.finalized = true;
            st.total = st.size;
            st.is_done()
        };
        if done {
            self.wake(true);
        }
    }

    /// Record the reply `value` for request `correlation_id`. Returns
    /// `false` (and changes nothing) for an id that was never added or was
    /// already answered.
    pub fn fulfill(&self, correlation_id: &str, value: Value) -> bool {
        self.record(correlation_id, Ok(value))
    }

    /// Record that the agent failed to answer request `correlation_id` with
    /// `message`; it counts as its reply. Returns `false` (and changes
    /// nothing) for an id that was never added or was already answered.
    pub fn fail(&self, correlation_id: &str, message: String) -> bool {
        self.record(correlation_id, Err(message))
    }

    fn record(&self, correlation_id: &str, value: std::result::Result<Value, String>) -> bool {
        let done = {
            let mut st = self.inner.state.lock();
            // Take the stored id: no allocation for the tuple.
            let Some(correlation_id) = st.pending.take(correlation_id) else {
                return false;
            };
            st.results.push_back(ReplyTuple {
                correlation_id,
                value,
            });
            st.fulfilled += 1;
            st.is_done()
        };
        self.wake(done);
        true
    }

    fn wake(&self, done: bool) {
        self.inner.results.notify_waiters();
        if done {
            self.inner.done.notify_waiters();
        }
    }

    /// The next unread reply, if one is queued.
    pub fn get_nowait(&self) -> Option<ReplyTuple> {
        self.inner.state.lock().results.pop_front()
    }

    /// All unread replies, in arrival order.
    pub fn drain(&self) -> Vec<ReplyTuple> {
        self.inner.state.lock().results.drain(..).collect()
    }

    /// The next unread reply, waiting for one to arrive; `None` once the
    /// barrier is done and every reply has been read.
    pub async fn next(&self) -> Option<ReplyTuple> {
        loop {
            let mut notified = pin!(self.inner.results.notified());
            // Register before checking, so a reply in between is seen.
            notified.as_mut().enable();
            {
                let mut st = self.inner.state.lock();
                if let Some(t) = st.results.pop_front() {
                    return Some(t);
                }
                if st.is_done() {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The replies as they arrive, in arrival order; ends once the barrier
    /// is done and every reply has been read.
    pub fn iterate(&self) -> impl Stream<Item = ReplyTuple> + Send + 'static {
        futures::stream::unfold(self.clone(), |b| async move {
            let t = b.next().await?;
            Some((t, b))
        })
    }

    /// Wait until the barrier is done (finalized, every reply in). Reads no
    /// replies.
    pub async fn wait(&self) {
        loop {
            let mut notified = pin!(self.inner.done.notified());
            notified.as_mut().enable();
            if self.is_done() {
                return;
            }
            notified.await;
        }
    }
}

impl ReplyWaiter for BarrierState {
    fn fulfill(&self, correlation_id: &str, value: Value) -> bool {
        BarrierState::fulfill(self, correlation_id, value)
    }

    fn fail(&self, correlation_id: &str, message: String) -> bool {
        BarrierState::fail(self, correlation_id, message)
    }
}

impl IntoFuture for BarrierState {
    type Output = ();
    type IntoFuture = BoxFuture<'static, ()>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.wait().await })
    }
}

impl fmt::Debug for BarrierState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("BarrierState")
            .field("reply_to", &self.inner.reply_to)
            .field("size", &st.size)
            .field("total", &st.total)
            .field("fulfilled", &st.fulfilled)
            .field("pending", &st.pending.len())
            .field("unread", &st.results.len())
            .field("done", &st.is_done())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use serde_json::json;
    use tokio::time::{sleep, timeout};

    use super::*;

    const T: Duration = Duration::from_secs(5);
    const N: usize = 100;

    // Helpers ported from Faust's t/unit/agents/test_replies.py.

    async fn adder(p: &BarrierState) {
        for i in 0..N {
            assert_eq!(p.size(), i);
            let r = ReplyPromise::new(p.reply_to(), i.to_string()).unwrap();
            p.add(r).unwrap();
            assert_eq!(p.pending(), i + 1 - p.fulfilled());
        }
        sleep(Duration::from_millis(500)).await;
        assert_eq!(p.size(), N);
    }

    async fn finalizer(p: &BarrierState, sleep_for: Duration) {
        sleep(sleep_for).await;
        p.finalize();
        assert_eq!(p.total(), N);
    }

    async fn fulfiller(p: &BarrierState) {
        for i in 0..N {
            sleep(Duration::from_millis(10)).await;
            assert!(p.fulfill(&i.to_string(), json!(i.to_string())));
        }
    }

    async fn joiner(p: &BarrierState) {
        p.clone().await;
    }

    async fn consumer(p: &BarrierState) {
        let mut results = vec![None; N];
        let mut it = pin!(p.iterate());
        while let Some(ReplyTuple {
            correlation_id,
            value,
        }) = it.next().await
        {
            let i: usize = correlation_id.parse().unwrap();
            assert!(results[i].is_none(), "reply {i} seen twice");
            results[i] = Some((correlation_id, value.unwrap()));
        }
        for (i, r) in results.into_iter().enumerate() {
            let (cid, value) = r.unwrap_or_else(|| panic!("reply {i} missing"));
            assert_eq!(cid, i.to_string());
            assert_eq!(value, json!(i.to_string()));
        }
    }

    fn fresh() -> BarrierState {
        let p = BarrierState::new("rt");
        assert_eq!(p.pending(), 0);
        assert_eq!(p.size(), 0);
        p
    }

    #[tokio::test(start_paused = true)]
    async fn test_parallel_join() {
        let p = fresh();
        timeout(T, async {
            tokio::join!(
                adder(&p),
                fulfiller(&p),
                finalizer(&p, Duration::from_secs(1)),
                joiner(&p),
            )
        })
        .await
        .unwrap();
        assert!(p.is_done());
        assert_eq!(p.fulfilled(), N);
    }

    #[tokio::test(start_paused = true)]
    async fn test_parallel_join_spawned() {
        // The same with spawned tasks, each role holding its own clone.
        let p = fresh();
        let a = tokio::spawn({
            let p = p.clone();
            async move { adder(&p).await }
        });
        // Let the adder add everything before the fulfiller starts.
        tokio::task::yield_now().await;
        let f = tokio::spawn({
            let p = p.clone();
            async move { fulfiller(&p).await }
        });
        let z = tokio::spawn({
            let p = p.clone();
            async move { finalizer(&p, Duration::from_secs(1)).await }
        });
        timeout(T, p.clone()).await.unwrap();
        a.await.unwrap();
        f.await.unwrap();
        z.await.unwrap();
    }

    #[tokio::test]
    async fn test_get_nowait_exhausted() {
        let p = fresh();
        assert_eq!(p.get_nowait(), None);
        p.add_correlation_id("a").unwrap();
        assert!(p.fulfill("a", json!(1)));
        assert_eq!(
            p.get_nowait(),
            Some(ReplyTuple {
                correlation_id: "a".into(),
                value: Ok(json!(1)),
            })
        );
        assert_eq!(p.get_nowait(), None);
        p.finalize();
        assert!(p.is_done());
        assert_eq!(p.get_nowait(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn test_iterate_completion() {
        // Iteration ends once the barrier becomes done, with nothing queued.
        let p = fresh();
        p.add_correlation_id("a").unwrap();
        assert!(p.fulfill("a", json!(1)));
        assert_eq!(p.drain().len(), 1);
        let it = tokio::spawn({
            let p = p.clone();
            async move { p.iterate().collect::<Vec<_>>().await }
        });
        sleep(Duration::from_millis(100)).await;
        assert!(!it.is_finished());
        p.finalize();
        let got = timeout(T, it).await.unwrap().unwrap();
        assert!(got.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn test_parallel_iterate() {
        let p = fresh();
        timeout(T, async {
            tokio::join!(
                adder(&p),
                fulfiller(&p),
                finalizer(&p, Duration::from_secs(1)),
                consumer(&p),
            )
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "test did not return in 5s: size={} total={} fulfilled={} pending={}",
                p.size(),
                p.total(),
                p.fulfilled(),
                p.pending()
            )
        });
    }

    #[tokio::test(start_paused = true)]
    async fn test_sync_join() {
        let p = fresh();
        adder(&p).await;
        fulfiller(&p).await;
        finalizer(&p, Duration::ZERO).await;
        timeout(T, joiner(&p)).await.unwrap();
        assert!(p.get_nowait().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn test_sync_iterate() {
        let p = fresh();
        adder(&p).await;
        finalizer(&p, Duration::ZERO).await;
        fulfiller(&p).await;
        assert!(p.is_done());
        timeout(T, consumer(&p)).await.unwrap();
    }

    #[tokio::test]
    async fn join_of_ten_thousand_has_no_limit() {
        const BIG: usize = 10_000;
        let p = BarrierState::new("rt");
        for i in 0..BIG {
            p.add_correlation_id(format!("cid-{i}")).unwrap();
        }
        // All replies arrive before anyone reads (Faust's queue overflowed
        // at 1001 here).
        for i in (0..BIG).rev() {
            assert!(p.fulfill(&format!("cid-{i}"), json!(i)));
        }
        p.finalize();
        timeout(T, p.clone()).await.unwrap();
        assert_eq!(p.fulfilled(), BIG);
        let all = p.drain();
        assert_eq!(all.len(), BIG);
        assert_eq!(all[0].correlation_id, format!("cid-{}", BIG - 1));
        assert_eq!(p.next().await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn join_of_ten_thousand_concurrently() {
        const BIG: usize = 10_000;
        let p = BarrierState::new("rt");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let replier = tokio::spawn({
            let p = p.clone();
            async move {
                while let Some(cid) = rx.recv().await {
                    let waiter: &dyn ReplyWaiter = &p;
                    assert!(waiter.fulfill(&cid, json!(cid)));
                }
            }
        });
        let reader = tokio::spawn({
            let p = p.clone();
            async move { p.iterate().count().await }
        });
        for i in 0..BIG {
            let cid = format!("cid-{i}");
            p.add_correlation_id(cid.clone()).unwrap();
            tx.send(cid).unwrap();
        }
        p.finalize();
        drop(tx);
        timeout(T, p.clone()).await.unwrap();
        assert_eq!(timeout(T, reader).await.unwrap().unwrap(), BIG);
        replier.await.unwrap();
    }

    #[tokio::test]
    async fn duplicate_and_unknown_replies_ignored() {
        let p = BarrierState::new("rt");
        p.add_correlation_id("a").unwrap();
        p.add_correlation_id("b").unwrap();
        assert!(!p.fulfill("zzz", json!(0)));
        assert!(p.fulfill("a", json!(1)));
        assert!(!p.fulfill("a", json!(2)));
        assert!(!p.fail("a", "late".into()));
        p.finalize();
        assert_eq!(p.total(), 2);
        assert_eq!(p.fulfilled(), 1);
        assert_eq!(p.pending(), 1);
        assert!(!p.is_done());
        assert!(p.fulfill("b", json!(3)));
        assert!(p.is_done());
        assert!(!p.fulfill("b", json!(4)));
        let got: Vec<_> = p.iterate().collect().await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].value, Ok(json!(1)));
        assert_eq!(got[1].value, Ok(json!(3)));
    }

    #[tokio::test]
    async fn failed_reply_counts_and_carries_error() {
        let p = BarrierState::new("rt");
        p.add_correlation_id("a").unwrap();
        p.add_correlation_id("b").unwrap();
        p.finalize();
        assert!(p.fail("a", "boom".into()));
        assert!(p.fulfill("b", json!(2)));
        timeout(T, p.wait()).await.unwrap();
        let first = p.get_nowait().unwrap();
        assert_eq!(first.value, Err("boom".to_owned()));
        assert!(matches!(
            first.into_result(),
            Err(Error::Remote { ref message, .. }) if message == "boom"
        ));
        assert_eq!(p.get_nowait().unwrap().into_result().unwrap(), json!(2));
    }

    #[tokio::test]
    async fn results_before_finalize_complete_on_finalize() {
        let p = BarrierState::new("rt");
        p.add_correlation_id("a").unwrap();
        assert!(p.fulfill("a", json!(1)));
        assert!(!p.is_done());
        assert_eq!(p.total(), 0);
        p.finalize();
        assert!(p.is_done());
        timeout(T, p.clone()).await.unwrap();
    }

    #[tokio::test]
    async fn empty_barrier_completes_on_finalize() {
        let p = BarrierState::new("rt");
        assert!(!p.is_done());
        p.finalize();
        assert!(p.is_done());
        assert_eq!(p.total(), 0);
        timeout(T, p.clone()).await.unwrap();
        assert_eq!(timeout(T, p.next()).await.unwrap(), None);
        p.finalize(); // idempotent
        assert!(p.is_done());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_before_finalize_wakes_on_finalize() {
        let p = BarrierState::new("rt");
        let w = tokio::spawn(p.clone().into_future());
        sleep(Duration::from_millis(100)).await;
        assert!(!w.is_finished());
        p.finalize();
        timeout(T, w).await.unwrap().unwrap();
    }

    #[test]
    fn add_after_finalize_errors() {
        let p = BarrierState::new("rt");
        p.finalize();
        let r = ReplyPromise::new("rt", "a").unwrap();
        assert!(matches!(p.add(r), Err(Error::Rpc(_))));
        assert_eq!(p.size(), 0);
    }

    #[test]
    fn add_duplicate_or_empty_errors() {
        let p = BarrierState::new("rt");
        p.add_correlation_id("a").unwrap();
        assert!(matches!(p.add_correlation_id("a"), Err(Error::Rpc(_))));
        assert!(matches!(p.add_correlation_id(""), Err(Error::Rpc(_))));
        assert_eq!(p.size(), 1);
        assert!(format!("{p:?}").contains("size: 1"));
    }
}
