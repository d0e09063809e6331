use faust::{agent, Stream};

#[agent]
fn not_async(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {
    // The function is still emitted: no cascading "not found" error here.
    let _ = not_async;
}
