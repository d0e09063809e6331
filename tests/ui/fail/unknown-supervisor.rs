use faust::{agent, Stream};

#[agent(supervisor = restart_all)]
async fn supervised(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
