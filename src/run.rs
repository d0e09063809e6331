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

/// Run the command line of an app made of every registered agent.
///
/// The app id is `FAUST_APP_ID`, or `--app-id`, or the executable's name.
/// See `--help` for the commands (`worker` is the default).
pub async fn run() -> anyhow::Result<()> {
    crate::cli::main(None, app_builder).await
}

/// Like [`run`], with an app configured by the caller (the registered
/// agents are added to it).
pub async fn run_with(builder: AppBuilder) -> anyhow::Result<()> {
    crate::cli::main(Some(builder), app_builder).await
}
