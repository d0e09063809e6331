// Qualified types, a raw identifier and a `Stream` type from the facade path.
#[faust::agent]
async fn r#match(mut s: faust::Stream<i64>, out: faust::Yield<Vec<i64>>) -> faust::Result<()> {
    while let Some(x) = s.next().await {
        out.send(vec![x]).await?;
    }
    Ok(())
}

#[faust::agent(sink = [self::sink_fn])]
async fn handler(x: std::collections::BTreeMap<String, i64>) -> faust::Result<Option<i64>> {
    Ok(x.get("a").copied())
}

fn sink_fn(_: &Option<i64>) {}

fn main() {
    let names: Vec<_> = faust::registered_agents()
        .unwrap()
        .iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["handler", "match"]);
}
