use faust::agent;

#[agent]
async fn no_input() -> faust::Result<()> {
    Ok(())
}

fn main() {}
