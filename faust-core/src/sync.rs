//! The synchronisation primitives of faust-core, from one place.
//!
//! A normal build gets parking_lot's locks, std's atomics and tokio's
//! `Notify`. Built with `--cfg faust_loom`, the same names are loom's models
//! (and a model of `Notify` on them), so the loom tests (`cargo test --lib
//! loom`) explore the interleavings of the real code. Code using these items
//! must keep to the interface common to both builds: `lock()`, `read()` and
//! `write()` return the guard directly (no poisoning), atomics are created
//! at run time (no `const` constructors), and `Notify` offers `notified()`,
//! `Notified::enable`, `notify_one()` and `notify_waiters()`.
//!
//! parking_lot's locks are not poisoned: a panic while one is held leaves
//! the data as it is (what the std locks' recoveries did before). `Arc` is
//! std's in both builds.

pub(crate) use imp::*;

/// std's atomics in both builds, for statics: loom's cannot be `static`, and
/// a process-wide counter is no part of a model.
pub(crate) mod std_atomic {
    pub(crate) use std::sync::atomic::AtomicU64;
}

#[cfg(not(faust_loom))]
mod imp {
    /// Atomic integers and booleans, and `Ordering`.
    pub(crate) use std::sync::atomic;

    /// A mutual-exclusion lock; `lock()` returns the guard.
    pub(crate) use parking_lot::{Mutex, MutexGuard};

    /// A reader-writer lock; `read()` and `write()` return the guards.
    pub(crate) use parking_lot::RwLock;

    /// Wakes tasks waiting for an event; see [`tokio::sync::Notify`].
    pub(crate) use tokio::sync::Notify;
}

#[cfg(faust_loom)]
mod imp {
    pub(crate) use loom::sync::atomic;
    pub(crate) use loom::sync::MutexGuard;
    pub(crate) use notify::Notify;

    /// loom's mutex, with the interface of parking_lot's.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().expect("a loom model panicked")
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Self::new(T::default())
        }
    }

    /// loom's reader-writer lock, with the interface of parking_lot's.
    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
            self.0.read().expect("a loom model panicked")
        }

        pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
            self.0.write().expect("a loom model panicked")
        }
    }

    impl<T: Default> Default for RwLock<T> {
        fn default() -> Self {
            Self::new(T::default())
        }
    }

    mod notify {
        //! A model of the part of tokio's `Notify` this crate uses, on
        //! loom's mutex, so loom sees (and permutes) every notification.

        use std::collections::VecDeque;
        use std::future::Future;
        use std::pin::Pin;
        use std::task::{Context, Poll, Waker};

        use super::Mutex;

        #[derive(Debug, Default)]
        pub(crate) struct Notify {
            state: Mutex<State>,
        }

        #[derive(Debug, Default)]
        struct State {
            /// A `notify_one` found nobody waiting: the next wait ends at once.
            permit: bool,
            /// Calls of `notify_waiters` so far: they end every wait created
            /// before them.
            rounds: u64,
            next_id: u64,
            /// Enabled waits not notified yet, oldest first.
            waiting: VecDeque<(u64, Option<Waker>)>,
            /// Waits notified but not yet completed, and whether by
            /// `notify_one` (passed on if the wait is dropped).
            woken: Vec<(u64, bool)>,
        }

        impl State {
            fn wake_one(&mut self) {
                match self.waiting.pop_front() {
                    Some((id, waker)) => {
                        self.woken.push((id, true));
                        if let Some(w) = waker {
                            w.wake();
                        }
                    }
                    None => self.permit = true,
                }
            }
        }

        impl Notify {
            pub(crate) fn new() -> Self {
                Self::default()
            }

            /// Wake the oldest enabled wait, or let the next one end at once.
            pub(crate) fn notify_one(&self) {
                self.state.lock().wake_one();
            }

            /// Wake every wait created so far.
            pub(crate) fn notify_waiters(&self) {
                let mut st = self.state.lock();
                st.rounds += 1;
                while let Some((id, waker)) = st.waiting.pop_front() {
                    st.woken.push((id, false));
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
            }

            pub(crate) fn notified(&self) -> Notified<'_> {
                let rounds = self.state.lock().rounds;
                Notified {
                    notify: self,
                    rounds,
                    id: None,
                    done: false,
                }
            }
        }

        /// A wait for a notification.
        #[derive(Debug)]
        pub(crate) struct Notified<'a> {
            notify: &'a Notify,
            /// `rounds` when created.
            rounds: u64,
            /// Set once enabled.
            id: Option<u64>,
            done: bool,
        }

        impl Notified<'_> {
            /// Receive `notify_one` calls from now on (polling does it too).
            pub(crate) fn enable(self: Pin<&mut Self>) {
                self.get_mut().poll_with(None);
            }

            fn poll_with(&mut self, waker: Option<&Waker>) -> bool {
                if self.done {
                    return true;
                }
                let mut st = self.notify.state.lock();
                let Some(id) = self.id else {
                    if st.rounds != self.rounds || std::mem::take(&mut st.permit) {
                        self.done = true;
                        return true;
                    }
                    let id = st.next_id;
                    st.next_id += 1;
                    st.waiting.push_back((id, waker.cloned()));
                    self.id = Some(id);
                    return false;
                };
                if let Some(i) = st.woken.iter().position(|(w, _)| *w == id) {
                    st.woken.swap_remove(i);
                    self.done = true;
                    return true;
                }
                if let Some(waker) = waker {
                    if let Some((_, w)) = st.waiting.iter_mut().find(|(w, _)| *w == id) {
                        *w = Some(waker.clone());
                    }
                }
                false
            }
        }

        impl Future for Notified<'_> {
            type Output = ();

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                if self.get_mut().poll_with(Some(cx.waker())) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        }

        impl Drop for Notified<'_> {
            fn drop(&mut self) {
                let (Some(id), false) = (self.id, self.done) else {
                    return;
                };
                if std::thread::panicking() {
                    // A failed model: leave loom alone, it is unwinding.
                    return;
                }
                let mut st = self.notify.state.lock();
                if let Some(i) = st.waiting.iter().position(|(w, _)| *w == id) {
                    st.waiting.remove(i);
                } else if let Some(i) = st.woken.iter().position(|(w, _)| *w == id) {
                    // A `notify_one` for a wait that ends unseen goes on.
                    if st.woken.swap_remove(i).1 {
                        st.wake_one();
                    }
                }
            }
        }
    }
}
