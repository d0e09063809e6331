//! The broker password never reaches the logs or `Debug` of an app on
//! Kafka. Alone in its test binary: it installs the global log subscriber.

mod common;

use common::*;
use faust_core::{AgentSpec, App, Error};

/// Log lines written into a buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_logs_and_shows_its_broker_without_the_password() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    let reply_to = unique("f-reply");
    mock.create_topic(&reply_to, 1, 1).unwrap();
    let app = App::builder(unique("app"))
        .broker(format!(
            "{}&sasl.username=alice&sasl.password=Pw%2Dknown-4711",
            url(&mock)
        ))
        .scheme("kafka", faust_kafka::factory)
        .reply_to(&reply_to)
        .build()
        .unwrap();
    let echo = app
        .add_agent(AgentSpec::handler("echo", |x: i64| async move {
            Ok::<_, Error>(x)
        }))
        .unwrap();
    mock.create_topic(echo.topic(), 1, 1).unwrap();
    within(60, "start", app.start()).await.unwrap();
    within(30, "stop", app.stop()).await.unwrap();
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let started = text
        .lines()
        .find(|l| l.contains("app started"))
        .unwrap_or_else(|| panic!("no `app started` line in:\n{text}"));
    assert!(started.contains("sasl.password=***"), "{started}");
    for secret in ["Pw%2Dknown-4711", "Pw-known-4711", "known-4711"] {
        assert!(!text.contains(secret), "`{secret}` logged:\n{text}");
        assert!(!format!("{app:?}").contains(secret), "{app:?}");
        let config = format!("{:?}", app.config());
        assert!(!config.contains(secret), "{config}");
    }
}
