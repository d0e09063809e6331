// `on_error` and `on_error_async` together: one handler only.
use faust::{Agent, Error};

fn log(_agent: &Agent, _err: &Error) {}
async fn alert(_agent: Agent, _err: Error) {}

#[faust::agent(on_error = log, on_error_async = alert)]
async fn twice(x: i64) -> faust::Result<i64> {
    Ok(x)
}

fn main() {}
