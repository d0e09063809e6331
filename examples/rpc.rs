//! Run with: cargo run --example rpc
//!
//! Request/reply on the embedded broker: `ask`, `map`, `join`, `kvjoin`,
//! `cast` and `ask_nowait` against a running agent, a timeout, and an agent
//! that answers with an error.

use std::time::Duration;

use futures::StreamExt;

/// Square a number (slowly for odd numbers, so `map` shows arrival order).
#[faust::agent(concurrency = 4)]
async fn square(x: i64) -> faust::Result<i64> {
    if x % 2 == 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(x * x)
}

/// Refuse negative numbers.
#[faust::agent]
async fn checked_sqrt(x: f64) -> Result<f64, String> {
    if x < 0.0 {
        return Err(format!("cannot take the square root of {x}"));
    }
    Ok(x.sqrt())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let app = faust::registered_app("rpc-example")?;
    app.start().await?;
    let square = app.agent("square")?;

    let nine: i64 = square.ask(&3).await?;
    println!("ask(3)            = {nine}");

    let mapped: Vec<i64> = square
        .map::<_, i64, _>(1..=6)
        .map(|r| r.expect("reply"))
        .collect()
        .await;
    println!("map(1..=6)        = {mapped:?}   (as they arrive)");

    let joined: Vec<i64> = square.join(1..=6).await?;
    println!("join(1..=6)       = {joined:?}   (input order)");

    let keyed: Vec<i64> = square.kvjoin([(Some("a"), 10), (Some("b"), 20)]).await?;
    println!("kvjoin(a=10,b=20) = {keyed:?}");

    let many: Vec<i64> = square.join(0..10_000).await?;
    println!("join of {} values, last = {}", many.len(), many[9_999]);

    square.cast(&5).await?;
    let promise = square.ask_nowait(&7, faust::SendOptions::default()).await?;
    println!("ask_nowait(7)     = {}", promise.await?);

    let sqrt = app.agent("checked_sqrt")?;
    let root: f64 = sqrt.ask(&2.25).await?;
    println!("checked_sqrt(2.25) = {root}");
    match sqrt.ask::<_, f64>(&-1.0).await {
        Err(e) => println!("checked_sqrt(-1)  -> error: {e}"),
        Ok(v) => println!("unexpected {v}"),
    }
    let quick = faust::SendOptions::default().timeout(Duration::from_millis(1));
    match square.ask_with::<_, i64>(&9, quick).await {
        Err(e) => println!("ask with 1 ms     -> {e}"),
        Ok(v) => println!("ask with 1 ms     = {v} (fast machine)"),
    }
    app.stop().await?;
    Ok(())
}
