// The expansion adds no warnings under strict crate lints.
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    unreachable_pub,
    rust_2018_idioms,
    unused,
    non_snake_case
)]
//! A crate with strict lints.

use faust::{agent, Stream};

/// Documented consumer.
#[agent(concurrency = 2, partitions = 4)]
async fn strict(mut s: Stream<i64>) -> faust::Result<()> {
    while s.next().await.is_some() {}
    Ok(())
}

fn main() {}
