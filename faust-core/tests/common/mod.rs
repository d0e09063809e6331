#![allow(dead_code, unreachable_pub, missing_docs)]
//! Helpers shared by the integration tests.

use std::future::Future;
use std::time::Duration;

use faust_core::{App, AppBuilder};

/// A builder on a fresh private embedded broker.
pub fn app(id: &str) -> AppBuilder {
    App::builder(id).broker(format!("memory://{id}-{}", uuid::Uuid::new_v4()))
}

/// Fail the test instead of hanging.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Receive exactly `n` items from a channel (each within 10 s).
pub async fn take<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let item = within(10, &format!("item {i} of {n}"), rx.recv())
            .await
            .expect("channel closed");
        out.push(item);
    }
    out
}

/// Nothing more arrives within a short while.
pub async fn nothing_more<T: std::fmt::Debug>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) {
    if let Ok(Some(x)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("unexpected extra item: {x:?}");
    }
}

/// The partition numbers of an isolated agent's actors.
pub fn partitions_of(agent: &faust_core::Agent) -> Vec<i32> {
    agent
        .active_partitions()
        .iter()
        .map(|tp| tp.partition)
        .collect()
}
