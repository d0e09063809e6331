//! Runtime of faust for Rust: apps, agents, actors, streams, replies and the
//! embedded in-memory broker. No Kafka and no macros live here.
//!
//! Users depend on the `faust` facade crate, which re-exports this one; the
//! examples here are written with its paths (`faust::App`).

mod actor;
pub mod agent;
pub mod app;
pub mod codec;
mod conductor;
pub mod error;
pub mod manager;
pub mod message;
mod queue;
pub mod record;
pub mod redact;
pub mod registry;
pub mod replies;
mod rpc;
pub mod sink;
pub mod stream;
pub mod supervisor;
pub mod testing;
pub mod transport;
pub mod wire;

pub use actor::current_agent;
pub use agent::{Agent, AgentInfo, AgentSpec, AgentStats, AgentT, OnError};
pub use app::{App, AppBuilder, AppConfig};
pub use codec::{Codec, Value};
pub use error::{Error, Result};
pub use manager::{AgentManager, AgentManagerT};
pub use message::{Message, MessageRef};
pub use record::{Headers, ProducerRecord, Record, RecordMetadata, TopicPartition};
pub use replies::{BarrierState, ReplyConsumer, ReplyPromise, ReplyTuple};
pub use rpc::SendOptions;
pub use sink::Sink;
pub use stream::{Event, Stream, Yield};
pub use supervisor::{RestartBudget, SupervisorStrategy};
pub use testing::{PutOptions, TestContext, TestEvent};
pub use transport::OffsetReset;
