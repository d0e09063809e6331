// `#[cfg]` on the function also applies to its registration.
use faust::{agent, Stream};

#[agent]
#[cfg(any())]
async fn compiled_out(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent]
#[cfg(all())]
async fn compiled_in(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {
    let names: Vec<_> = faust::registered_agents()
        .unwrap()
        .iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["compiled_in"]);
}
