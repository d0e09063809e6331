//! The inbound path: the conductor that reads the group consumer and hands
//! records to agents, the agent queues between the conductor and the
//! actors, and the acks/commit bookkeeping (public as `faust_core::message`).

pub mod acks;
pub(crate) mod conductor;
pub(crate) mod queue;
