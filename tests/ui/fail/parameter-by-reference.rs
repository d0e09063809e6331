use faust::agent;

#[agent]
async fn borrowed(x: &str) -> faust::Result<usize> {
    Ok(x.len())
}

fn main() {}
