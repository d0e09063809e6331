use faust::agent;

#[agent(crate = "not a path")]
async fn a(x: i64) -> faust::Result<i64> {
    Ok(x)
}

#[agent(crate = my::faust)]
async fn b(x: i64) -> faust::Result<i64> {
    Ok(x)
}

fn main() {}
