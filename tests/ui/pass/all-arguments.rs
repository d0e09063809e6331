// Every argument at once, with a trailing comma.
use faust::{agent, Agent, Error};

fn report(_: &Agent, _: &Error) {}
fn audit(_: &i64) {}

/// Add one.
#[agent(
    topic = "numbers",
    name = "add-one",
    concurrency = 2,
    partitions = 4,
    isolated_partitions = false,
    sink = ["results", "@other", audit],
    on_error = report,
    supervisor = one_for_all,
    codec = "json",
    key_codec = "raw",
    use_reply_headers = true,
    help = "Add one to each number.",
)]
pub async fn add_one(x: i64) -> faust::Result<i64> {
    Ok(x + 1)
}

fn main() {}
