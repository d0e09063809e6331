//! Run with: cargo run --example quickstart
//!
//! Agents on the embedded broker, no setup: orders are priced by an agent
//! with four concurrent actors, each price goes to a sink agent that keeps a
//! running total and to one that counts large orders through an in-memory
//! channel, and a handler agent answers `ask`.
//!
//! With arguments it is a normal faust CLI app:
//! `cargo run --example quickstart -- agents`, `-- worker`, `-- --help`.

use std::sync::atomic::{AtomicU64, Ordering};

use faust::{Stream, Yield};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    quantity: u32,
}

/// Price each order; every price goes to the `totals` and `large` agents.
#[faust::agent(topic = "orders", concurrency = 4, sink = ["@totals", "@large"])]
async fn price(mut orders: Stream<Order>, prices: Yield<f64>) -> faust::Result<()> {
    while let Some(order) = orders.next().await {
        let unit = if order.item == "tea" { 2.5 } else { 4.0 };
        prices.send(unit * f64::from(order.quantity)).await?;
    }
    Ok(())
}

static TOTAL_CENTS: AtomicU64 = AtomicU64::new(0);
static COUNT: AtomicU64 = AtomicU64::new(0);

/// Keep a running total of prices.
#[faust::agent]
async fn totals(mut prices: Stream<f64>) -> faust::Result<()> {
    while let Some(p) = prices.next().await {
        TOTAL_CENTS.fetch_add((p * 100.0).round() as u64, Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

static LARGE: AtomicU64 = AtomicU64::new(0);
static LARGE_SEEN: AtomicU64 = AtomicU64::new(0);

/// Count prices of 10 or more; reads an in-memory channel (no topic).
#[faust::agent(channel = "prices")]
async fn large(mut prices: Stream<f64>) -> faust::Result<()> {
    while let Some(p) = prices.next().await {
        if p >= 10.0 {
            LARGE.fetch_add(1, Ordering::Relaxed);
        }
        LARGE_SEEN.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Quote the price of one order (request/reply).
#[faust::agent]
async fn quote(order: Order) -> faust::Result<String> {
    Ok(format!(
        "{} x {} = {:.2}",
        order.quantity,
        order.item,
        4.0 * f64::from(order.quantity)
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().len() > 1 {
        return faust::run().await;
    }
    let app = faust::registered_app("quickstart")?;
    app.start().await?;
    println!(
        "agents: {:?}",
        app.agents()
            .all()
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
    );

    let orders = app.agent("price")?;
    for id in 0..1000 {
        let item = if id % 2 == 0 { "tea" } else { "cake" }.to_string();
        orders
            .send(&Order {
                id,
                item,
                quantity: 1 + id % 3,
            })
            .await?;
    }
    let reply: String = app
        .agent("quote")?
        .ask(&Order {
            id: 0,
            item: "cake".into(),
            quantity: 3,
        })
        .await?;
    println!("quote: {reply}");

    // Wait (bounded) until the sink agent has seen every price.
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while COUNT.load(Ordering::Relaxed) < 1000 || LARGE_SEEN.load(Ordering::Relaxed) < 1000 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await?;
    println!(
        "priced {} orders with {} actors, total {:.2}, {} of 10 or more",
        COUNT.load(Ordering::Relaxed),
        orders.concurrency(),
        TOTAL_CENTS.load(Ordering::Relaxed) as f64 / 100.0,
        LARGE.load(Ordering::Relaxed)
    );
    app.stop().await?;
    Ok(())
}
