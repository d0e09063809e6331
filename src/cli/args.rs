//! The command line's arguments, parsed by clap.

use clap::{Parser, Subcommand};

/// A faust for Rust app.
#[derive(Debug, Parser)]
#[command(
    about = "Run and talk to the agents of this faust app",
    long_about = "Run and talk to the agents of this faust app.\n\nWithout a command, starts a worker.\n\nSettings come in layers, the later winning: code, then the environment (FAUST_BROKER, FAUST_APP_ID), then these flags.",
    after_help = "Examples:\n  app worker\n  app agents --json\n  app send @double 21\n  app send @double --from-file values.txt\n  app ask @double 21\n  FAUST_BROKER=kafka://127.0.0.1:9092 app worker"
)]
pub(super) struct Args {
    /// Broker URL: memory:// (default), memory://<name> or kafka://host:port.
    /// Wins over FAUST_BROKER and the code.
    #[arg(short, long, global = true)]
    pub(super) broker: Option<String>,

    /// App id (consumer group, default topic prefix). Wins over
    /// FAUST_APP_ID and the code; the executable's name if none says.
    #[arg(long, global = true)]
    pub(super) app_id: Option<String>,

    /// Log level (error, warn, info, debug, trace) or a RUST_LOG filter.
    #[arg(short = 'l', long, global = true)]
    pub(super) loglevel: Option<String>,

    #[command(subcommand)]
    pub(super) command: Option<Command>,
}

/// Faust's own commands.
#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Start a worker running every agent (the default). Stops on Ctrl-C/SIGTERM.
    Worker(WorkerArgs),
    /// List the agents: name, topic, concurrency, help.
    Agents {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also list agents reading an in-memory channel (topic `<LOCAL>`).
        #[arg(long)]
        local: bool,
    },
    /// Send a value, or each line of a file, to an agent (@name) or a topic;
    /// prints where it was written.
    Send {
        /// `@agent` or a topic name.
        target: String,
        /// The value: JSON, or a plain string (or --from-file).
        #[arg(required_unless_present = "from_file", conflicts_with = "from_file")]
        value: Option<String>,
        /// Send each line of this file (`-`: stdin) as a value, in order;
        /// blank lines are skipped. Prints a JSON summary.
        #[arg(short, long, value_name = "PATH")]
        from_file: Option<std::path::PathBuf>,
        /// With --from-file and stderr not a terminal: a progress line every
        /// N values (and at least one a second) [default: 10000].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        progress_every: Option<u64>,
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

/// The worker's options.
#[derive(Debug, clap::Args)]
pub(super) struct WorkerArgs {
    /// Serve the web endpoint (/metrics, /health, /ready, /agents,
    /// /tracebacks) on this port (Faust's is 6066). Off unless given.
    #[arg(long, env = "FAUST_WEB_PORT")]
    pub(super) web_port: Option<u16>,

    /// Address the web endpoint listens on.
    #[arg(long, env = "FAUST_WEB_BIND", default_value = "127.0.0.1")]
    pub(super) web_bind: std::net::IpAddr,
}

impl WorkerArgs {
    /// The options of a worker started without the `worker` command: the
    /// defaults and the environment.
    pub(super) fn from_env() -> Self {
        use clap::{Args as _, FromArgMatches as _};
        let command = Self::augment_args(clap::Command::new("worker"));
        command
            .try_get_matches_from(["worker"])
            .and_then(|m| Self::from_arg_matches(&m))
            .unwrap_or_else(|e| e.exit())
    }
}

impl Command {
    /// The names of faust's commands, which a command of the app cannot take.
    pub(super) const NAMES: [&'static str; 4] = ["worker", "agents", "send", "ask"];
}
