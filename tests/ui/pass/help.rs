use faust::{agent, Stream};

/// Count the clicks.
///
///   Second paragraph, indented.
#[agent]
async fn from_doc(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

/// Ignored: `help` wins.
#[agent(help = "Explicit help.")]
async fn explicit(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent]
async fn no_help(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
