//! Request/reply: promises for one reply, barriers for many, and the
//! consumer that reads reply topics and fulfils them.

mod barrier;
mod consumer;
mod promise;

pub use barrier::{BarrierState, ReplyTuple};
pub use consumer::ReplyConsumer;
pub use promise::{ReplyPromise, ReplyWaiter};
