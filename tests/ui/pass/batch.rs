// The batch form: `#[agent(batch = N, within = "..")] async fn(Vec<T>) -> Result<Vec<R>>`,
// one call per batch, one result per event; sinks take `R`.
use faust::{agent, Schema};

#[agent(batch = 100, within = "250ms", sink = ["lengths"])]
async fn lengths(words: Vec<String>) -> faust::Result<Vec<usize>> {
    Ok(words.iter().map(|w| w.len()).collect())
}

#[agent(batch = 10, within = "1s", schema = Schema::<String, i64>::new())]
async fn doubled(xs: Vec<i64>) -> anyhow::Result<Vec<i64>> {
    Ok(xs.into_iter().map(|x| x * 2).collect())
}

fn main() {
    let names: Vec<_> = faust::registered_agents()
        .unwrap()
        .iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["doubled", "lengths"]);
}
