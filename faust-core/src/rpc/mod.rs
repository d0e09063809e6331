//! Everything of request/reply: the wire format, the agent RPC client
//! (`send` with a reply address, `ask`, `map`, `join`, ...), promises for
//! one reply, barriers for many, and the consumer that reads reply topics
//! and fulfils them.

mod barrier;
mod client;
mod promise;
mod reply_consumer;
pub mod wire;

pub use barrier::{BarrierState, ReplyTuple};
pub use client::SendOptions;
pub use promise::{ReplyPromise, ReplyWaiter};
pub use reply_consumer::ReplyConsumer;
