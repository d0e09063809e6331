//! Runtime of faust for Rust: apps, agents, actors, streams, replies and the
//! embedded in-memory broker. No Kafka and no macros live here.

pub mod error;
pub mod record;
pub mod transport;

pub use error::{Error, Result};
pub use record::{Headers, ProducerRecord, Record, RecordMetadata, TopicPartition};
