// Sinks: a topic, another agent, and callbacks of every accepted shape.
use faust::{agent, Stream, Yield};

fn print_it(x: &i64) {
    println!("{x}");
}

fn check_it(x: &i64) -> Result<(), std::io::Error> {
    let _ = x;
    Ok(())
}

async fn store_it(x: i64) {
    let _ = x;
}

async fn store_or_fail(x: i64) -> anyhow::Result<()> {
    let _ = x;
    Ok(())
}

mod callbacks {
    pub fn nested(_: &i64) {}
}

#[agent(sink = ["numbers", "@collect", print_it, check_it, store_it, store_or_fail, callbacks::nested])]
async fn handler(x: i64) -> faust::Result<i64> {
    Ok(x)
}

#[agent(sink = ["more-numbers", |x: &i64| println!("{x}"),])]
async fn producer(mut s: Stream<i64>, out: Yield<i64>) -> faust::Result<()> {
    while let Some(x) = s.next().await {
        out.send(x).await?;
    }
    Ok(())
}

// A single sink may be written without brackets.
#[agent(sink = "@collect")]
async fn single(x: i64) -> faust::Result<i64> {
    Ok(x)
}

#[agent]
async fn collect(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {
    for d in faust::registered_agents().unwrap() {
        let _ = (d.build)();
    }
}
