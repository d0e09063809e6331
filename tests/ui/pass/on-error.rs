use faust::{agent, Agent, Error, Stream};

fn report(agent: &Agent, err: &Error) {
    eprintln!("{}: {err}", agent.name());
}

#[agent(on_error = report)]
async fn with_fn(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(on_error = |agent, err| eprintln!("{}: {err}", agent.name()))]
async fn with_closure(x: i64) -> faust::Result<i64> {
    Ok(x)
}

fn main() {}
