//! The command line: `worker`, `agents`, `send`, `ask`.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use faust_core::registry::Registry;
use faust_core::{App, AppBuilder, CodecRef, SendOptions};

/// A faust for Rust app.
#[derive(Debug, Parser)]
#[command(
    about = "Run and talk to the agents of this faust app",
    long_about = "Run and talk to the agents of this faust app.\n\nWithout a command, starts a worker.",
    after_help = "Examples:\n  app worker\n  app agents --json\n  app send @double 21\n  app ask @double 21\n  FAUST_BROKER=kafka://127.0.0.1:9092 app worker"
)]
struct Cli {
    /// Broker URL: memory:// (default), memory://<name> or kafka://host:port.
    #[arg(short, long, env = "FAUST_BROKER", global = true)]
    broker: Option<String>,

    /// App id (consumer group, default topic prefix). Default: executable name.
    #[arg(long, env = "FAUST_APP_ID", global = true)]
    app_id: Option<String>,

    /// Log level (error, warn, info, debug, trace) or a RUST_LOG filter.
    #[arg(short = 'l', long, global = true)]
    loglevel: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a worker running every agent (the default). Stops on Ctrl-C/SIGTERM.
    Worker,
    /// List the agents: name, topic, concurrency, help.
    Agents {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also list agents reading an in-memory channel (topic `<LOCAL>`).
        #[arg(long)]
        local: bool,
    },
    /// Send a value to an agent (@name) or a topic; prints where it was written.
    Send {
        /// `@agent` or a topic name.
        target: String,
        /// The value: JSON, or a plain string.
        value: String,
        /// Key (sent as raw bytes).
        #[arg(short, long)]
        key: Option<String>,
        /// Partition.
        #[arg(short, long)]
        partition: Option<i32>,
    },
    /// Ask an agent (@name) to process a value and print its reply as JSON.
    Ask {
        /// `@agent`.
        agent: String,
        /// The value: JSON, or a plain string.
        value: String,
        /// Key (sent as raw bytes).
        #[arg(short, long)]
        key: Option<String>,
        /// Seconds to wait for the reply.
        #[arg(short, long, default_value_t = 30.0)]
        timeout: f64,
    },
}

fn init_logging(level: Option<&str>, default: &str) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn default_app_id() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "faust-app".to_string())
}

fn parse_value(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()))
}

/// Parse the command line and run it; `new_builder` makes the app's builder
/// (from the app id) when the caller gave none.
pub(crate) async fn main(
    builder: Option<AppBuilder>,
    new_builder: fn(String) -> AppBuilder,
) -> anyhow::Result<()> {
    let cli = Cli::parse();
    let is_worker = matches!(cli.command, None | Some(Command::Worker));
    init_logging(
        cli.loglevel.as_deref(),
        if is_worker { "info" } else { "warn" },
    );

    let registry = Registry::collect()?;
    if registry.descriptors().is_empty() {
        bail!(
            "no agents are registered. Declare agents with #[faust::agent], and if they live in \
             another crate, make sure it is linked: add `use my_agents as _;` to main.rs \
             (the linker drops crates nothing refers to)"
        );
    }
    let mut builder = match builder {
        Some(b) => b,
        None => new_builder(cli.app_id.clone().unwrap_or_else(default_app_id)),
    };
    if let Some(b) = &cli.broker {
        builder = builder.broker(b.clone());
    }
    let app = builder.build()?;
    registry.add_all(&app)?;

    let command = cli.command.unwrap_or(Command::Worker);
    // On the embedded broker nobody else runs the agents: `send` and `ask`
    // start them in this process.
    let local = app.config().broker.starts_with("memory://")
        && matches!(command, Command::Send { .. } | Command::Ask { .. });
    if local {
        app.start().await?;
    }
    let result = match command {
        Command::Worker => worker(&app).await,
        Command::Agents { json, local } => agents(&app, json, local),
        Command::Send {
            target,
            value,
            key,
            partition,
        } => send(&app, &target, &value, key, partition).await,
        Command::Ask {
            agent,
            value,
            key,
            timeout,
        } => ask(&app, &agent, &value, key, timeout).await,
    };
    app.stop().await?;
    result
}

fn banner(app: &App) -> String {
    let mut out = format!(
        "faust for Rust v{}\napp id:  {}\nbroker:  {}\nagents:\n",
        env!("CARGO_PKG_VERSION"),
        app.id(),
        faust_core::redact::redact_url(&app.config().broker)
    );
    for a in app.agents().all() {
        out.push_str(&format!(
            "  @{:<24} topic={} concurrency={}{}\n",
            a.name(),
            if a.reads_channel() {
                format!("<LOCAL> channel={}", a.channel())
            } else {
                a.get_topic_names()
                    .into_iter()
                    .chain(a.topic_patterns().map(|p| format!("/{p}/")))
                    .collect::<Vec<_>>()
                    .join(",")
            },
            a.concurrency(),
            if a.isolated_partitions() {
                " isolated_partitions"
            } else {
                ""
            }
        ));
    }
    out
}

async fn worker(app: &App) -> anyhow::Result<()> {
    eprint!("{}", banner(app));
    app.run().await.context("worker stopped with an error")?;
    eprintln!("worker stopped; offsets committed");
    Ok(())
}

fn agents(app: &App, json: bool, local: bool) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = app
        .agents()
        .all()
        .iter()
        .filter(|a| local || !a.reads_channel())
        .map(|a| {
            let topic = if a.reads_channel() {
                "<LOCAL>".to_string()
            } else {
                a.get_topic_names().join(",")
            };
            serde_json::json!({
                "name": format!("@{}", a.name()),
                "topic": topic,
                "concurrency": a.concurrency(),
                "help": a.help().lines().next().filter(|l| !l.is_empty()).unwrap_or("<N/A>"),
            })
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&rows)?)?;
        return Ok(());
    }
    let width = |k: &str, min: usize| {
        rows.iter()
            .map(|r| r[k].as_str().map_or(0, str::len))
            .max()
            .unwrap_or(0)
            .max(min)
    };
    let (wn, wt) = (width("name", 4), width("topic", 5));
    writeln!(
        out,
        "{:<wn$}  {:<wt$}  {:>11}  help",
        "name", "topic", "concurrency"
    )?;
    writeln!(out, "{}", "-".repeat(wn + wt + 11 + 10))?;
    for r in &rows {
        writeln!(
            out,
            "{:<wn$}  {:<wt$}  {:>11}  {}",
            r["name"].as_str().unwrap_or_default(),
            r["topic"].as_str().unwrap_or_default(),
            r["concurrency"].as_u64().unwrap_or(1),
            r["help"].as_str().unwrap_or_default()
        )?;
    }
    Ok(())
}

/// The agent `name`, unless it reads an in-memory channel, which lives in
/// the worker's process and cannot be reached from this one.
fn in_reach(app: &App, name: &str) -> anyhow::Result<faust_core::Agent> {
    let agent = app.agent(name)?;
    if agent.reads_channel() {
        bail!(
            "agent `{}` reads the in-memory channel `{}`, which exists only inside the worker's \
             process: send to an agent on a topic that feeds it",
            agent.name(),
            agent.channel()
        );
    }
    Ok(agent)
}

async fn send(
    app: &App,
    target: &str,
    raw: &str,
    key: Option<String>,
    partition: Option<i32>,
) -> anyhow::Result<()> {
    let value = parse_value(raw);
    let meta = if let Some(name) = target.strip_prefix('@') {
        let agent = in_reach(app, name)?;
        let mut opts = SendOptions::default();
        opts.key = key.map(Into::into);
        opts.partition = partition;
        agent.send_with(&value, opts).await?
    } else {
        let bytes = CodecRef::JSON.encode(&value)?;
        app.send_record(faust_core::ProducerRecord {
            topic: target.into(),
            partition,
            key: key.map(Into::into),
            value: Some(bytes.into()),
            headers: Vec::new(),
            timestamp: None,
        })
        .await?
    };
    app.transport().flush(Duration::from_secs(10)).await?;
    println!("{}", serde_json::to_string(&meta)?);
    Ok(())
}

async fn ask(
    app: &App,
    name: &str,
    raw: &str,
    key: Option<String>,
    timeout: f64,
) -> anyhow::Result<()> {
    let Some(name) = name.strip_prefix('@') else {
        bail!("ask needs an agent: write `@{name}`");
    };
    if !(timeout > 0.0 && timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let agent = in_reach(app, name)?;
    let mut opts = SendOptions::default().timeout(Duration::from_secs_f64(timeout));
    opts.key = key.map(Into::into);
    let reply: serde_json::Value = agent.ask_with(&parse_value(raw), opts).await?;
    println!("{}", serde_json::to_string(&reply)?);
    Ok(())
}
