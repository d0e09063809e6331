use faust::agent;

struct Service;

impl Service {
    #[agent]
    async fn method(&self, x: i64) -> faust::Result<i64> {
        Ok(x)
    }
}

fn main() {}
