//! TLS and SASL/SCRAM.
//!
//! Offline: a build without the `ssl` feature refuses TLS and SCRAM at
//! `build()` with an error naming the feature.
//!
//! Against a broker with a SASL_SSL (SCRAM-SHA-256) and an SSL listener, as
//! `scripts/suites/15-security.sh` starts one (with `--features ssl`):
//!
//! ```text
//! FAUST_TEST_KAFKA_SASL_SSL=127.0.0.1:9192 FAUST_TEST_KAFKA_SSL=127.0.0.1:9194 \
//! FAUST_TEST_KAFKA_CA=.../ca.pem FAUST_TEST_KAFKA_OTHER_CA=.../other-ca.pem \
//!     cargo test -p faust-kafka --features ssl --test security -- --test-threads=1
//! ```
//!
//! The broker knows the SCRAM user `alice` with the password `alice-secret`.

mod common;

#[cfg(not(feature = "ssl"))]
#[test]
fn without_the_ssl_feature_tls_and_scram_name_the_feature() {
    use faust_core::Error;
    use faust_kafka::KafkaTransport;
    for url in [
        "kafka://127.0.0.1:1?security.protocol=ssl",
        "kafka://127.0.0.1:1?security.protocol=SASL_SSL&sasl.mechanisms=PLAIN",
        "kafka://127.0.0.1:1?security.protocol=sasl_plaintext&sasl.mechanism=SCRAM-SHA-256",
        "kafka://127.0.0.1:1?consumer.sasl.mechanisms=scram-sha-512",
        "kafka://127.0.0.1:1?ssl.ca.location=/nowhere/ca.pem",
        "kafka://127.0.0.1:1?producer.security.protocol=ssl",
    ] {
        let err = KafkaTransport::from_url(url).unwrap_err();
        assert!(matches!(err, Error::BrokerUrl { .. }), "{url}: {err}");
        let text = err.to_string();
        assert!(text.contains("`ssl` feature"), "{url}: {text}");
        assert!(text.contains(r#"features = ["ssl"]"#), "{url}: {text}");
    }
    let err = KafkaTransport::from_url("kafka://127.0.0.1:1?sasl.mechanisms=GSSAPI").unwrap_err();
    assert!(err.to_string().contains("`gssapi` feature"), "{err}");
    // SASL/PLAIN needs no feature.
    KafkaTransport::from_url(
        "kafka://127.0.0.1:1?security.protocol=sasl_plaintext&sasl.mechanisms=PLAIN&sasl.username=a&sasl.password=b",
    )
    .unwrap();
}

#[cfg(feature = "ssl")]
mod broker {
    use std::time::{Duration, Instant};

    use super::common::{init_tracing, tp, unique, within};
    use faust_core::transport::{ConsumerEvent, SubscribeOptions, TopicSpec, Transport};
    use faust_core::{AgentSpec, App, Error, ProducerRecord};
    use faust_kafka::KafkaTransport;

    /// How fast a wrong password or certificate must fail: well under the
    /// 15 s operation timeout.
    const FAST: Duration = Duration::from_secs(5);

    struct Broker {
        sasl_ssl: String,
        ssl: String,
        ca: String,
        other_ca: Option<String>,
    }

    fn broker() -> Option<Broker> {
        init_tracing();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (
            var("FAUST_TEST_KAFKA_SASL_SSL"),
            var("FAUST_TEST_KAFKA_SSL"),
            var("FAUST_TEST_KAFKA_CA"),
        ) {
            (Some(sasl_ssl), Some(ssl), Some(ca)) => Some(Broker {
                sasl_ssl,
                ssl,
                ca,
                other_ca: var("FAUST_TEST_KAFKA_OTHER_CA"),
            }),
            _ => {
                eprintln!(
                    "FAUST_TEST_KAFKA_SASL_SSL, FAUST_TEST_KAFKA_SSL or FAUST_TEST_KAFKA_CA is not set: \
                     security test skipped (scripts/suites/15-security.sh sets them)"
                );
                None
            }
        }
    }

    impl Broker {
        fn sasl_ssl_url(&self, password: &str) -> String {
            format!(
                "kafka://{}?security.protocol=sasl_ssl&sasl.mechanisms=SCRAM-SHA-256\
                 &sasl.username=alice&sasl.password={password}&ssl.ca.location={}",
                self.sasl_ssl, self.ca
            )
        }

        fn ssl_url(&self, ca: Option<&str>) -> String {
            let mut url = format!("kafka://{}?security.protocol=ssl", self.ssl);
            if let Some(ca) = ca {
                url.push_str(&format!("&ssl.ca.location={ca}"));
            }
            url
        }
    }

    /// Create a topic, send three records, read them back.
    async fn round_trip(t: &KafkaTransport) {
        let topic = unique("secure");
        within(30, "create", t.create_topic(&TopicSpec::new(&topic, 1)))
            .await
            .unwrap();
        for i in 0..3 {
            within(
                30,
                "send",
                t.send(ProducerRecord::new(topic.clone(), format!("v{i}"))),
            )
            .await
            .unwrap();
        }
        let mut c = t.assign(vec![tp(&topic, 0)]).await.unwrap();
        let mut values = Vec::new();
        within(30, "read back", async {
            while values.len() < 3 {
                if let ConsumerEvent::Records(records) = c.poll().await.unwrap() {
                    values.extend(records.into_iter().map(|r| r.value.unwrap_or_default()));
                }
            }
        })
        .await;
        assert_eq!(values, ["v0", "v1", "v2"].map(bytes::Bytes::from));
        c.close(Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sasl_ssl_scram_round_trip() {
        let Some(b) = broker() else { return };
        let t = KafkaTransport::from_url(&b.sasl_ssl_url("alice-secret")).unwrap();
        round_trip(&t).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ssl_round_trip_with_the_ca() {
        let Some(b) = broker() else { return };
        let t = KafkaTransport::from_url(&b.ssl_url(Some(&b.ca))).unwrap();
        round_trip(&t).await;
    }

    fn assert_names_authentication(err: &Error) {
        let text = err.to_string();
        assert!(text.contains("uthentication"), "{text}");
        assert!(!text.contains("wrong-secret"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_password_fails_fast_naming_authentication() {
        let Some(b) = broker() else { return };
        let t = KafkaTransport::from_url(&b.sasl_ssl_url("wrong-secret")).unwrap();
        let started = Instant::now();
        let err = within(
            30,
            "create",
            t.create_topic(&TopicSpec::new(unique("t"), 1)),
        )
        .await
        .unwrap_err();
        eprintln!("create_topic failed after {:?}: {err}", started.elapsed());
        assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
        assert_names_authentication(&err);

        let started = Instant::now();
        let err = within(30, "send", t.send(ProducerRecord::new(unique("t"), "x")))
            .await
            .unwrap_err();
        eprintln!("send failed after {:?}: {err}", started.elapsed());
        assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
        assert_names_authentication(&err);

        // A record enqueued after the failure: its delivery fails at once too.
        let started = Instant::now();
        let delivery = t
            .enqueue(ProducerRecord::new(unique("t"), "x"))
            .await
            .unwrap();
        let err = within(30, "delivery", delivery).await.unwrap_err();
        eprintln!("delivery failed after {:?}: {err}", started.elapsed());
        assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
        assert_names_authentication(&err);
        drop(t);

        // A fresh transport: the record is queued before the failure.
        let t = KafkaTransport::from_url(&b.sasl_ssl_url("wrong-secret")).unwrap();
        let started = Instant::now();
        let delivery = t
            .enqueue(ProducerRecord::new(unique("t"), "x"))
            .await
            .unwrap();
        let err = within(30, "delivery", delivery).await.unwrap_err();
        eprintln!("first delivery failed after {:?}: {err}", started.elapsed());
        assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
        assert_names_authentication(&err);

        // A consumer of a fresh transport: its own client meets the failure.
        let t = KafkaTransport::from_url(&b.sasl_ssl_url("wrong-secret")).unwrap();
        let started = Instant::now();
        let mut c = t
            .subscribe(SubscribeOptions {
                group: unique("g"),
                topics: vec![unique("t")],
                patterns: Vec::new(),
                offset_reset: Default::default(),
            })
            .await
            .unwrap();
        let err = within(30, "poll", c.poll()).await.unwrap_err();
        eprintln!("poll failed after {:?}: {err}", started.elapsed());
        assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
        assert_names_authentication(&err);
        let _ = c.close(Duration::from_secs(5)).await;
    }

    /// A worker whose start failed this way exits at once: nothing of the
    /// abandoned lookups holds up the runtime's shutdown.
    #[test]
    fn after_a_wrong_password_the_runtime_shuts_down_at_once() {
        let Some(b) = broker() else { return };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let started = Instant::now();
        let err = rt
            .block_on(async {
                let t = KafkaTransport::from_url(&b.sasl_ssl_url("wrong-secret")).unwrap();
                within(
                    30,
                    "create",
                    t.create_topic(&TopicSpec::new(unique("t"), 1)),
                )
                .await
            })
            .unwrap_err();
        assert_names_authentication(&err);
        drop(rt);
        eprintln!("failed and shut down after {:?}", started.elapsed());
        assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_or_unrelated_ca_names_the_certificate_verification() {
        let Some(b) = broker() else { return };
        let mut cases = vec![("no CA (the system's)", b.ssl_url(None))];
        if let Some(other) = &b.other_ca {
            cases.push(("an unrelated CA", b.ssl_url(Some(other))));
        }
        for (what, url) in cases {
            let t = KafkaTransport::from_url(&url).unwrap();
            let started = Instant::now();
            let err = within(30, "metadata", t.partition_count("any"))
                .await
                .unwrap_err();
            eprintln!("{what}: failed after {:?}: {err}", started.elapsed());
            assert!(started.elapsed() < FAST, "{what}: {:?}", started.elapsed());
            assert!(
                err.to_string().contains("certificate verify failed"),
                "{what}: {err}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_app_answers_over_sasl_ssl() {
        let Some(b) = broker() else { return };
        let app = App::builder(unique("secure-app"))
            .broker(b.sasl_ssl_url("alice-secret"))
            .scheme("kafka", faust_kafka::factory)
            .topic_partitions(2)
            .build()
            .unwrap();
        let double = app
            .add_agent(AgentSpec::handler("double", |x: i64| async move {
                Ok::<_, Error>(x * 2)
            }))
            .unwrap();
        within(60, "start", app.start()).await.unwrap();
        let answer: i64 = within(60, "ask", double.ask(&21i64)).await.unwrap();
        assert_eq!(answer, 42);
        within(30, "stop", app.stop()).await.unwrap();
    }
}
