use faust::agent;

#[agent(batch = 10)]
async fn f(xs: Vec<i64>) -> faust::Result<Vec<i64>> {
    Ok(xs)
}

fn main() {}
