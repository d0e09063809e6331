// An agent declared inside a function body registers too.
fn main() {
    #[faust::agent]
    async fn local(x: i64) -> faust::Result<i64> {
        Ok(x)
    }

    let names: Vec<_> = faust::registered_agents()
        .unwrap()
        .iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["local"]);
}
