// A supervisor strategy of one's own: a path with `::` or an expression.
use faust::supervisor::{Crash, Decision, SupervisorStrategyT};
use faust::Stream;

#[derive(Debug, Default)]
pub struct Fatal;

impl SupervisorStrategyT for Fatal {
    fn name(&self) -> &str {
        "fatal"
    }
    fn on_crash(&self, _crash: &Crash<'_>) -> Decision {
        Decision::CrashApp
    }
}

#[faust::agent(supervisor = crate::Fatal)]
async fn by_path(mut s: Stream<i64>) -> faust::Result<()> {
    while s.next().await.is_some() {}
    Ok(())
}

#[faust::agent(supervisor = Fatal::default())]
async fn by_call(mut s: Stream<i64>) -> faust::Result<()> {
    while s.next().await.is_some() {}
    Ok(())
}

fn main() {}
