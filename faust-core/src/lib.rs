//! Runtime of faust for Rust: apps, agents, actors, streams, replies and the
//! embedded in-memory broker. No Kafka and no macros live here.
//!
//! Users depend on the `faust` facade crate, which re-exports this one; the
//! examples here are written with its paths (`faust::App`).

pub mod agent;
pub mod app;
pub mod channel;
pub mod codec;
mod config;
mod context;
pub mod error;
pub mod metrics;
pub mod model;
pub mod record;
pub mod redact;
pub mod registry;
mod rpc;
mod runtime;
pub mod schema;
mod sync;
pub mod testing;
pub mod timer;
pub mod topic;
pub mod trace_context;
pub mod transport;

pub use agent::{manager, sink, stream, supervisor};
pub use rpc::wire;
pub use runtime::acks as message;

pub mod replies {
    //! Request/reply: promises for one reply, barriers for many, and the
    //! consumer that reads reply topics and fulfils them.

    pub use crate::agent::JoinResults;
    pub use crate::rpc::{
        BarrierState, OnDelivery, ReplyConsumer, ReplyPromise, ReplyTuple, ReplyWaiter,
    };
}

pub use agent::{current_agent, spawn, trace_context, EVENT_TARGET};
pub use agent::{Agent, AgentInfo, AgentSpec, AgentStats, AgentT, OnError};
pub use app::{App, AppBuilder, AppConfig, Health, Stall};
pub use channel::Channel;
pub use codec::{Codec, CodecRef, Value};
pub use error::{Error, Result};
pub use manager::{AgentManager, AgentManagerT};
#[doc(no_inline)]
pub use message::{Message, MessageRef};
pub use metrics::Metrics;
pub use record::{Headers, ProducerRecord, Record, RecordMetadata, TopicPartition};
pub use rpc::{BarrierState, ReplyConsumer, ReplyPromise, ReplyTuple, SendOptions};
pub use schema::Schema;
pub use sink::Sink;
pub use stream::{Event, Stream, Yield};
pub use supervisor::{RestartBudget, SupervisorStrategy};
pub use testing::{PutOptions, TestContext, TestEvent, TestOptions};
pub use timer::TimerSpec;
pub use topic::{CleanupPolicy, Topic};
pub use trace_context::TraceContext;
pub use transport::OffsetReset;
