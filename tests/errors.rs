//! `?` inside an agent returning `faust::Result`, on the errors agent code
//! meets: they convert into a user error that reaches the asker.

use std::time::Duration;

use faust::{App, Error};

/// Parse a number and read a file named by it: `?` on a `ParseIntError`
/// and an `io::Error`.
#[faust::agent]
async fn parse_then_read(raw: String) -> faust::Result<i64> {
    let n: i64 = raw.trim().parse()?;
    if n < 0 {
        std::fs::read(format!("/nonexistent/{n}"))?;
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_mark_converts_std_errors_into_user_errors() {
    let app = App::builder("errors")
        .broker(format!("memory://errors-{}", std::process::id()))
        .ask_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    faust::Registry::collect().unwrap().add_all(&app).unwrap();
    app.start().await.unwrap();
    let agent = app.agent("parse_then_read").unwrap();
    assert_eq!(agent.ask::<_, i64>(&"12").await.unwrap(), 12);
    let err = agent.ask::<_, i64>(&"twelve").await.unwrap_err();
    assert!(err.to_string().contains("invalid digit"), "{err}");
    let err = agent.ask::<_, i64>(&"-1").await.unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
    app.stop().await.unwrap();
}

#[test]
fn anyhow_and_boxed_errors_convert_keeping_their_causes() {
    let io = std::io::Error::other("disk gone");
    let err: Error = anyhow::Error::new(io).context("saving").into();
    assert!(matches!(err, Error::User(_)));
    let chain: Vec<String> =
        std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .map(ToString::to_string)
        .collect();
    assert!(chain.iter().any(|m| m == "disk gone"), "{chain:?}");
    let boxed: Box<dyn std::error::Error + Send + Sync> = "plain".into();
    assert_eq!(Error::from(boxed).to_string(), "plain");
}
