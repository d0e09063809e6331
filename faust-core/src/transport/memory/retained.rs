//! The bytes the embedded broker holds, against its bound (`max_bytes`),
//! and the wake-up of senders waiting for room.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::Notify;

/// Bytes of records held by one broker's partition logs, and its bound.
///
/// Partitions count their records in steps (see `log::PUBLISH_BYTES`), so
/// the count may lag by less than one step per partition.
pub(crate) struct Retained {
    bytes: AtomicUsize,
    max: AtomicUsize,
    /// Woken whenever records are freed.
    freed: Notify,
}

impl Retained {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            freed: Notify::new(),
        }
    }

    /// Records of `bytes` are held.
    #[inline]
    pub(crate) fn hold(&self, bytes: usize) {
        if bytes > 0 {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Records of `bytes` were freed: wake the senders waiting for room.
    pub(crate) fn free(&self, bytes: usize) {
        if bytes > 0 {
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.freed.notify_waiters();
        }
    }

    /// Bytes held now.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The bound.
    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
        self.freed.notify_waiters();
    }

    /// Whether the broker holds its bound or more.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.bytes() >= self.max()
    }

    /// Wait until records are freed (or the bound raised), or `deadline`.
    /// Returns at once when there is room already.
    pub(crate) async fn room(&self, deadline: tokio::time::Instant) {
        let freed = self.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        if !self.is_full() {
            return;
        }
        tokio::select! {
            _ = freed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
