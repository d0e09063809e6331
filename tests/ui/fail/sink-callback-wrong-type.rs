use faust::agent;

fn takes_string(_: &String) {}

#[agent(sink = [takes_string])]
async fn handler(x: i64) -> faust::Result<i64> {
    Ok(x)
}

fn main() {}
