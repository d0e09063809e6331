// Any `Result` whose error converts into `Box<dyn Error + Send + Sync>`.
use faust::{agent, Stream, Yield};

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyError {}

#[agent]
async fn with_anyhow(x: i64) -> anyhow::Result<i64> {
    Ok(x)
}

#[agent]
async fn with_own_error(_s: Stream<i64>) -> Result<(), MyError> {
    Ok(())
}

#[agent]
async fn with_std_result(
    _s: Stream<i64>,
    _out: Yield<i64>,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

#[agent]
async fn with_string_error(x: String) -> Result<String, String> {
    Ok(x)
}

#[agent]
async fn with_core_result(x: i64) -> ::core::result::Result<i64, std::io::Error> {
    Ok(x)
}

fn main() {
    assert_eq!(faust::registered_agents().unwrap().len(), 5);
}
