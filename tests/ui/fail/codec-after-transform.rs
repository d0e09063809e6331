use faust::{agent, Stream};

#[agent(codec = "binary|json")]
async fn encoded(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
