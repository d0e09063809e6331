use faust::agent;

#[agent]
async fn handler(x: i64) -> Result<i64, i32> {
    Ok(x)
}

fn main() {}
