use faust::{agent, Schema, Stream, Yield};

#[agent(schema = Schema::<String, String>::new())]
async fn consumer(_s: Stream<u64>) -> faust::Result<()> {
    Ok(())
}

#[agent(schema = Schema::<String, u32>::new())]
async fn handler(value: u64) -> faust::Result<u64> {
    Ok(value)
}

#[agent(schema = Schema::<String, bool>::new())]
async fn yielding(_s: Stream<u64>, _out: Yield<u64>) -> faust::Result<()> {
    Ok(())
}

#[agent(channel = "lines", schema = Schema::<String, String>::new())]
async fn channel(_s: Stream<String>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
