//! `faust::run()`: collect the registered agents, build the app, run the CLI.

use faust_core::registry::{self, AgentDescriptor, Registry};
use faust_core::{App, AppBuilder};

/// The agents registered with `#[agent]` in every linked crate, sorted by
/// name. A duplicate name is an error naming both declarations.
pub fn registered_agents() -> faust_core::Result<Vec<&'static AgentDescriptor>> {
    registry::descriptors()
}

/// An app builder with every transport this build supports registered
/// (`memory://`, and `kafka://` with the `kafka` feature).
pub fn app_builder(id: impl Into<String>) -> AppBuilder {
    let builder = App::builder(id);
    #[cfg(feature = "kafka")]
    let builder = builder.scheme("kafka", faust_kafka::factory);
    builder
}

/// An app (built with [`app_builder`]) holding every registered agent.
pub fn registered_app(id: impl Into<String>) -> faust_core::Result<App> {
    let app = app_builder(id).build()?;
    Registry::collect()?.add_all(&app)?;
    Ok(app)
}

/// Run the command line of an app made of every registered agent: see
/// [`Cli`](crate::Cli) for the commands (`worker` is the default), the
/// settings' layers and how errors are printed.
///
/// The app id is `--app-id`, else `FAUST_APP_ID`, else the executable's
/// name; the broker `--broker`, else `FAUST_BROKER`, else `memory://`.
pub async fn run() -> anyhow::Result<()> {
    crate::Cli::new().run().await
}

/// Like [`run`], with an app configured in code (the registered agents are
/// added to it). The environment and the command line win over the code:
/// `FAUST_BROKER` over `builder.broker(..)`, `--broker` over both, and the
/// same for the app id.
pub async fn run_with(builder: AppBuilder) -> anyhow::Result<()> {
    crate::Cli::new().app(builder).run().await
}
