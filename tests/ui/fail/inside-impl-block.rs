// Agents are free functions: inside an `impl` block the registration cannot
// name the function. (The message comes from rustc; see the docs of #[agent].)
use faust::agent;

struct Service;

impl Service {
    #[agent]
    async fn associated(x: i64) -> faust::Result<i64> {
        Ok(x)
    }
}

fn main() {}
