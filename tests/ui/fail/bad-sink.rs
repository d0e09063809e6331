use faust::agent;

#[agent(sink = [42, "", "@"])]
async fn handler(x: i64) -> faust::Result<i64> {
    Ok(x)
}

fn main() {}
