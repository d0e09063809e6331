//! Kafka transport of faust for Rust, on rdkafka.
