//! Run with: cargo run --example service
//!
//! A service as it is deployed: settings in code (overridden by the
//! environment and the command line), an agent, a timer, a hook run once
//! the worker has started, and a command of the app's own.
//!
//! `cargo run --example service -- settings` prints the settings in effect;
//! try `FAUST_BROKER=memory://other cargo run --example service -- settings`
//! and `... -- --broker memory://flag settings`.

use std::sync::atomic::{AtomicU64, Ordering};

use faust::{App, Cli, Stream};

static GREETED: AtomicU64 = AtomicU64::new(0);

/// Greet everyone who arrives.
#[faust::agent(topic = "arrivals")]
async fn greet(mut names: Stream<String>) -> faust::Result<()> {
    while let Some(name) = names.next().await {
        GREETED.fetch_add(1, Ordering::Relaxed);
        tracing::info!("hello, {name}");
    }
    Ok(())
}

/// Report how many were greeted, every second.
#[faust::timer(interval = "1s")]
async fn report() -> faust::Result<()> {
    tracing::info!(greeted = GREETED.load(Ordering::Relaxed), "report");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::new()
        .app(faust::app_builder("service").broker("memory://service"))
        .on_started(|app: App| async move {
            // Agents are running: greet someone.
            app.agent("greet")?.send(&"the first visitor").await?;
            eprintln!("service ready: {} agent(s)", app.agents().len());
            Ok(())
        })
        .command(
            faust::clap::Command::new("settings")
                .about("Print the app id and broker in effect, as JSON"),
            |app: App, _args| async move {
                let settings = serde_json::json!({
                    "app_id": app.id(),
                    "broker": app.config().broker,
                    "timers": app.timers().iter().map(|t| t.name().to_string()).collect::<Vec<_>>(),
                });
                println!("{settings}");
                Ok(())
            },
        )
        .run()
        .await
}
