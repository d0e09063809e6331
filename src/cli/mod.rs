//! [`Cli`]: the command line of an app (`worker`, `agents`, `send`, `ask`,
//! and the app's own commands), its settings' layers and its start-up hooks.

mod args;
mod commands;

use std::future::Future;
use std::io::IsTerminal as _;

use anyhow::bail;
use clap::{CommandFactory as _, FromArgMatches as _};
use faust_core::app::APP_ID_ENV;
use faust_core::registry::Registry;
use faust_core::{App, AppBuilder};
use futures::future::BoxFuture;

use self::args::{Args, Command};

type Hook = Box<dyn FnOnce(App) -> BoxFuture<'static, anyhow::Result<()>> + Send>;
type Handler =
    Box<dyn FnOnce(App, clap::ArgMatches) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

/// The command line of an app: faust's commands (`worker`, the default,
/// `agents`, `send`, `ask`), hooks run once the worker has started, and
/// commands of the app's own.
///
/// [`run`](crate::run) and [`run_with`](crate::run_with) are this without
/// hooks and commands.
///
/// Settings come in layers, the later winning, the same for each:
/// faust's defaults, then the code ([`app`](Self::app)'s builder), then the
/// environment (`FAUST_BROKER`, `FAUST_APP_ID`), then the command line
/// (`--broker`, `--app-id`). When nothing names the app, its id is the
/// executable's name, and the worker's banner says so: renaming the binary
/// renames the consumer group.
///
/// ```no_run
/// use faust::{App, Cli};
///
/// #[tokio::main]
/// async fn main() -> anyhow::Result<()> {
///     Cli::new()
///         .app(faust::app_builder("orders").broker("memory://orders"))
///         .on_started(|app: App| async move {
///             tracing::info!(agents = app.agents().len(), "orders service ready");
///             Ok(())
///         })
///         .command(
///             faust::clap::Command::new("settings").about("Print the app id and broker"),
///             |app: App, _args| async move {
///                 println!("{} on {}", app.id(), app.config().broker);
///                 Ok(())
///             },
///         )
///         .run()
///         .await
/// }
/// ```
#[must_use = "a command line does nothing until `run` is awaited"]
#[derive(Default)]
pub struct Cli {
    builder: Option<AppBuilder>,
    on_started: Vec<Hook>,
    commands: Vec<(clap::Command, Handler)>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("builder", &self.builder)
            .field("on_started", &self.on_started.len())
            .field(
                "commands",
                &self
                    .commands
                    .iter()
                    .map(|(c, _)| c.get_name().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Cli {
    /// A command line for an app made of the registered agents, with
    /// faust's defaults for everything else.
    pub fn new() -> Self {
        Self::default()
    }

    /// Configure the app in code (the registered agents are added to it).
    /// The environment and the command line win over what it sets.
    pub fn app(mut self, builder: AppBuilder) -> Self {
        self.builder = Some(builder);
        self
    }

    /// Run `hook` once the worker has started: topics created, agents
    /// running, the consumer group joined (Faust's `on_started`). Hooks run
    /// in the order added; an error stops the worker and is its exit error.
    /// Other commands do not run hooks.
    pub fn on_started<F, Fut>(mut self, hook: F) -> Self
    where
        F: FnOnce(App) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.on_started
            .push(Box::new(move |app| Box::pin(hook(app))));
        self
    }

    /// Add a command of the app's own, with its arguments described by
    /// `command` (clap, re-exported as [`faust::clap`](crate::clap)).
    /// `run` gets the app, built with every setting but not started (call
    /// [`App::start`] for the agents to run in this process), and the
    /// command's parsed arguments; the app is stopped after it. The name
    /// of one of faust's commands is refused when the command line runs.
    pub fn command<F, Fut>(mut self, command: clap::Command, run: F) -> Self
    where
        F: FnOnce(App, clap::ArgMatches) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.commands
            .push((command, Box::new(move |app, args| Box::pin(run(app, args)))));
        self
    }

    /// Parse the process's arguments and run the command.
    ///
    /// A failing command prints its error, with its causes, as one message
    /// on stderr (`Error: ...`, whatever `RUST_BACKTRACE` says) and exits
    /// the process with status 1; this returns only on success.
    pub async fn run(self) -> anyhow::Result<()> {
        let result = self.run_inner().await;
        #[cfg(feature = "opentelemetry")]
        crate::telemetry::shutdown();
        match result {
            Ok(()) => Ok(()),
            Err(err) => {
                eprintln!("Error: {err:#}");
                std::process::exit(1)
            }
        }
    }

    async fn run_inner(self) -> anyhow::Result<()> {
        let Cli {
            builder,
            on_started,
            commands,
        } = self;
        let cli = command_line(&commands)?;
        let matches = cli.get_matches();
        let own = matches.subcommand().and_then(|(name, sub)| {
            commands
                .into_iter()
                .find(|(c, _)| c.get_name() == name)
                .map(|(_, run)| (run, sub.clone()))
        });
        let args = match &own {
            // The app's command: only the global flags are faust's.
            Some(_) => Args {
                broker: matches.get_one::<String>("broker").cloned(),
                app_id: matches.get_one::<String>("app_id").cloned(),
                loglevel: matches.get_one::<String>("loglevel").cloned(),
                command: None,
            },
            None => match Args::from_arg_matches(&matches) {
                Ok(args) => args,
                Err(e) => e.exit(),
            },
        };
        let is_worker = own.is_none() && matches!(args.command, None | Some(Command::Worker(_)));
        init_logging(
            args.loglevel.as_deref(),
            if is_worker { "info" } else { "warn" },
        );

        let registry = Registry::collect()?;
        if registry.descriptors().is_empty() && registry.timers().is_empty() && own.is_none() {
            bail!(
                "no agents are registered. Declare agents with #[faust::agent], and if they live \
                 in another crate, make sure it is linked: add `use my_agents as _;` to main.rs \
                 (the linker drops crates nothing refers to)"
            );
        }
        let settings = Settings::layered(builder, &args);
        let origin = commands::Origin {
            id_from_executable: settings.id_from_executable,
            reply_topic_generated: settings.builder.config().reply_to.is_empty(),
        };
        let app = settings.builder.build()?;
        registry.add_all(&app)?;

        if let Some((run, sub)) = own {
            let result = run(app.clone(), sub).await;
            app.stop().await?;
            return result;
        }
        commands::run(
            &app,
            args.command
                .unwrap_or_else(|| Command::Worker(args::WorkerArgs::from_env())),
            origin,
            on_started,
        )
        .await
    }
}

/// Faust's command line with the app's commands added; an app's command
/// named like one of faust's is an error.
fn command_line(commands: &[(clap::Command, Handler)]) -> anyhow::Result<clap::Command> {
    let mut cli = Args::command();
    for (command, _) in commands {
        if Command::NAMES.contains(&command.get_name()) {
            bail!(
                "the app's command `{}` has the name of one of faust's commands ({})",
                command.get_name(),
                Command::NAMES.join(", ")
            );
        }
        cli = cli.subcommand(command.clone());
    }
    Ok(cli)
}

/// The app's settings after every layer, and where its id came from.
struct Settings {
    builder: AppBuilder,
    /// No code, environment or flag named the app.
    id_from_executable: bool,
}

impl Settings {
    /// Code (or faust's defaults, with the executable's name as id), then
    /// the environment, then the command line.
    fn layered(code: Option<AppBuilder>, args: &Args) -> Self {
        let mut id_from_executable = code.is_none();
        let builder = code.unwrap_or_else(|| crate::app_builder(executable_name()));
        let env_id = std::env::var(APP_ID_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        id_from_executable &= env_id.is_none() && args.app_id.is_none();
        let mut builder = builder.with_env();
        if let Some(broker) = &args.broker {
            builder = builder.broker(broker.clone());
        }
        if let Some(id) = &args.app_id {
            builder = builder.app_id(id.clone());
        }
        Self {
            builder,
            id_from_executable,
        }
    }
}

pub(crate) fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "faust-app".to_string())
}

fn init_logging(level: Option<&str>, default: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let directives = match level {
        Some(l) => l.to_string(),
        None => std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV)
            .ok()
            .filter(|d| tracing_subscriber::EnvFilter::try_new(d).is_ok())
            .unwrap_or_else(|| default.to_string()),
    };
    let filter = tracing_subscriber::EnvFilter::new(&directives);
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let subscriber = tracing_subscriber::registry().with(output);
    #[cfg(feature = "opentelemetry")]
    let subscriber = subscriber.with(crate::telemetry::otlp_layer(&directives));
    let _ = subscriber.try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_app: App, _args: clap::ArgMatches) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    #[test]
    fn an_apps_command_cannot_take_the_name_of_one_of_fausts() {
        let taken: Vec<(clap::Command, Handler)> =
            vec![(clap::Command::new("send"), Box::new(noop))];
        let err = command_line(&taken).unwrap_err().to_string();
        assert!(
            err.contains("`send` has the name of one of faust's commands"),
            "{err}"
        );
        let free: Vec<(clap::Command, Handler)> =
            vec![(clap::Command::new("report"), Box::new(noop))];
        let cli = command_line(&free).unwrap();
        assert!(cli.get_subcommands().any(|c| c.get_name() == "report"));
        assert!(cli.get_subcommands().any(|c| c.get_name() == "worker"));
    }
}
