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
