// The function stays as written: callable and testable directly, with its
// visibility, attributes and doc comment.
mod agents {
    use faust::agent;

    /// Double a number.
    #[agent]
    #[allow(clippy::unused_async)]
    pub async fn double(x: i64) -> faust::Result<i64> {
        Ok(x * 2)
    }
}

fn main() {
    let fut = agents::double(21);
    let out = futures::executor::block_on(fut).unwrap();
    assert_eq!(out, 42);
}
