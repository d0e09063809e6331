//! Helpers shared by the integration tests of the facade.

#![allow(dead_code)] // each test file uses some of them

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use faust::App;

/// Fail the test instead of hanging.
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// An app on an embedded broker of its own (`suite` names the test file).
pub(crate) fn app(suite: &str, id: &str) -> App {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    App::builder(id)
        .broker(format!("memory://{suite}-{id}-{}-{n}", std::process::id()))
        .build()
        .unwrap()
}
