//! Kafka transport of faust for Rust, on rdkafka.

use std::sync::Arc;

use faust_core::transport::Transport;

/// Build the transport for a `kafka://host:port[,host:port]` URL.
pub fn factory(url: &str) -> faust_core::Result<Arc<dyn Transport>> {
    Err(faust_core::Error::BrokerUrl {
        url: url.to_string(),
        reason: "the Kafka transport is not implemented yet".into(),
    })
}
