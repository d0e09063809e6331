// `crate = "..."`: the generated code reaches faust through the path given,
// for a crate that re-exports faust instead of depending on it by name.

mod deps {
    pub use ::faust;
}

/// The whole facade re-exported under another name.
pub mod runtime {
    pub use ::faust::*;
}

use runtime::Stream;

#[runtime::agent(crate = "crate::deps::faust", codec = "json", supervisor = one_for_all)]
async fn through_reexport(x: i64) -> runtime::Result<i64> {
    Ok(x + 1)
}

#[runtime::agent(crate = "runtime", sink = ["out"])]
async fn glob_reexport(mut s: Stream<i64>, out: runtime::Yield<i64>) -> runtime::Result<()> {
    while let Some(v) = s.next().await {
        out.send(v).await?;
    }
    Ok(())
}

fn main() {}
