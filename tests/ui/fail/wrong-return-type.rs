use faust::agent;

#[agent]
async fn handler(x: i64) -> i64 {
    x
}

fn main() {}
