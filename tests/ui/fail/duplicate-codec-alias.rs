use faust::{agent, Stream};

#[agent(codec = "json", value_codec = "bincode")]
async fn twice(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
