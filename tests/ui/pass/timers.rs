// Every timer form compiles: no parameter or the app, any convertible
// error, intervals as strings or seconds, on_leader as a flag or a bool.
use faust::App;

#[faust::timer(interval = "250ms")]
async fn plain() -> faust::Result<()> {
    Ok(())
}

#[faust::timer(interval = 1.5, on_leader = true, name = "with-app")]
async fn with_app(app: App) -> anyhow::Result<()> {
    let _ = app.is_leader();
    Ok(())
}

#[faust::timer(interval = 60, on_leader)]
async fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

fn main() {}
