use faust::agent;

#[agent(batch = 10, within = "1s")]
async fn sum(xs: Vec<i64>) -> faust::Result<i64> {
    Ok(xs.iter().sum())
}

fn main() {}
