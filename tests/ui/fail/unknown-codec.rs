use faust::{agent, Stream};

#[agent(codec = "yaml", key_codec = "msgpack")]
async fn encoded(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
