use faust::agent;

#[agent(batch = 0, within = "1 second")]
async fn f(xs: Vec<i64>) -> faust::Result<Vec<i64>> {
    Ok(xs)
}

#[agent(within = "1s")]
async fn g(x: i64) -> faust::Result<i64> {
    Ok(x)
}

fn main() {}
