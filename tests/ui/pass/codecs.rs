use faust::{agent, Stream};

#[agent(codec = "json")]
async fn json(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(value_codec = "bincode", key_codec = "json")]
async fn bincode(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(codec = raw, key_codec = raw)]
async fn raw(_s: Stream<String>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
