//! Faust's commands: `worker`, `agents`, `send`, `ask`.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use faust_core::{App, CodecRef, SendOptions};

use super::args::{Command, WorkerArgs};
use super::Hook;

mod from_file;

fn parse_value(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()))
}

/// Whether the app's broker is the embedded one of this process.
fn embedded(app: &App) -> bool {
    app.config().broker.starts_with("memory://")
}

/// Where settings of the app came from.
pub(super) struct Origin {
    /// No code, environment or flag named the app.
    pub(super) id_from_executable: bool,
    /// The reply topic's name was generated for this process.
    pub(super) reply_topic_generated: bool,
}

/// Run one of faust's commands on `app`, then stop it.
pub(super) async fn run(
    app: &App,
    command: Command,
    origin: Origin,
    on_started: Vec<Hook>,
) -> anyhow::Result<()> {
    // On the embedded broker nobody else runs the agents: `send` and `ask`
    // start them in this process.
    let local = embedded(app) && matches!(command, Command::Send { .. } | Command::Ask { .. });
    if local {
        app.start().await?;
    }
    let asks = matches!(command, Command::Ask { .. });
    let result = match command {
        Command::Worker(opts) => worker(app, opts, origin.id_from_executable, on_started).await,
        Command::Agents { json, local } => agents(app, json, local),
        Command::Send {
            target,
            from_file: Some(path),
            progress_every,
            key,
            partition,
            ..
        } => {
            let args = from_file::FileSend {
                target: &target,
                path: &path,
                key,
                partition,
                every: progress_every.unwrap_or(from_file::PROGRESS_EVERY),
            };
            from_file::send(app, args).await
        }
        Command::Send {
            progress_every: Some(_),
            ..
        } => Err(anyhow::anyhow!("--progress-every goes with --from-file")),
        Command::Send {
            target,
            value,
            key,
            partition,
            ..
        } => send(app, &target, &value.unwrap_or_default(), key, partition).await,
        Command::Ask {
            agent,
            value,
            key,
            timeout,
        } => ask(app, &agent, &value, key, timeout).await,
    };
    // Only a reply topic that was made (the broker answered) is removed.
    let made = asks && origin.reply_topic_generated && !embedded(app);
    let made = made && app.replies().is_reading(&app.config().reply_to);
    let stopped = app.stop().await;
    if made {
        remove_reply_topic(app).await;
    }
    result?;
    Ok(stopped?)
}

/// Delete the reply topic this process's `ask` created: nobody will read
/// it again (its name is this process's), and each run would otherwise
/// leave one behind on the broker. A failure is only a warning.
async fn remove_reply_topic(app: &App) {
    let topic = &app.config().reply_to;
    let deadline = app.config().broker_timeout;
    match tokio::time::timeout(deadline, app.transport().delete_topic(topic)).await {
        Ok(Ok(())) => tracing::debug!(%topic, "reply topic deleted"),
        Ok(Err(e)) => tracing::warn!(%topic, error = %e, "could not delete the reply topic"),
        Err(_) => tracing::warn!(%topic, ?deadline, "deleting the reply topic timed out"),
    }
}

fn banner(app: &App, id_from_executable: bool) -> String {
    let mut out = format!(
        "faust for Rust v{}\napp id:  {}{}\nbroker:  {}\nagents:\n",
        env!("CARGO_PKG_VERSION"),
        app.id(),
        if id_from_executable {
            " (the executable's name: renaming the binary renames the consumer group; \
             set --app-id or FAUST_APP_ID)"
        } else {
            ""
        },
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
    let timers = app.timers();
    if !timers.is_empty() {
        out.push_str("timers:\n");
        for t in timers {
            out.push_str(&format!(
                "  {:<25} every {:?}{}\n",
                t.name(),
                t.interval(),
                if t.is_on_leader() { " on_leader" } else { "" }
            ));
        }
    }
    out
}

/// Start, run the hooks, run until Ctrl-C/SIGTERM or a crash (or a hook's
/// error), then stop.
async fn worker(
    app: &App,
    opts: WorkerArgs,
    id_from_executable: bool,
    on_started: Vec<Hook>,
) -> anyhow::Result<()> {
    eprint!("{}", banner(app, id_from_executable));
    // Installed now, so that a signal while starting or in a hook stops
    // the worker gracefully.
    let signal = faust_core::app::shutdown_signal();
    // Before the app starts: `/health` answers, `/ready` says it is not.
    let web = serve_web(app, &opts).await?;
    app.start().await?;
    let hooks = async {
        for hook in on_started {
            hook(app.clone())
                .await
                .context("an on_started hook failed")?;
        }
        std::future::pending::<anyhow::Result<()>>().await
    };
    let outcome = tokio::select! {
        () = signal => Ok(()),
        failed = hooks => failed,
        reason = app.wait_crashed() => Err(faust_core::Error::Crashed(reason.to_string()).into()),
    };
    let stopped = app.stop().await;
    if let Some(web) = web {
        web.stop().await;
    }
    outcome.context("worker stopped with an error")?;
    stopped.context("worker stopped with an error")?;
    eprintln!("worker stopped; offsets committed");
    Ok(())
}

/// The worker's web endpoint, if asked for.
#[cfg(feature = "web")]
async fn serve_web(app: &App, opts: &WorkerArgs) -> anyhow::Result<Option<crate::web::WebServer>> {
    let Some(port) = opts.web_port else {
        return Ok(None);
    };
    let web = crate::web::serve(app.clone(), (opts.web_bind, port).into()).await?;
    eprintln!("web:     http://{}/", web.local_addr());
    Ok(Some(web))
}

/// Without the `web` feature a web port is an error, not ignored.
#[cfg(not(feature = "web"))]
async fn serve_web(_app: &App, opts: &WorkerArgs) -> anyhow::Result<Option<NoWeb>> {
    match opts.web_port {
        None => Ok(None),
        Some(_) => bail!("--web-port needs faust's `web` feature, which this build leaves out"),
    }
}

#[cfg(not(feature = "web"))]
struct NoWeb;

#[cfg(not(feature = "web"))]
impl NoWeb {
    async fn stop(self) {}
}

fn agents(app: &App, json: bool, local: bool) -> anyhow::Result<()> {
    let rows = crate::listing::agent_rows(app, local);
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

/// On the embedded broker, nobody but this process reads what `send` sends.
fn warn_if_embedded(app: &App) {
    if embedded(app) {
        eprintln!(
            "warning: the broker is {}, embedded in this process: only this process's agents \
             read the value, and it is gone when the process exits. Give --broker \
             kafka://host:port (or FAUST_BROKER) to reach a worker.",
            app.config().broker
        );
    }
}

async fn send(
    app: &App,
    target: &str,
    raw: &str,
    key: Option<String>,
    partition: Option<i32>,
) -> anyhow::Result<()> {
    let value = parse_value(raw);
    warn_if_embedded(app);
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
