//! The inbound hand-off below the agents: the agent queues between the
//! conductor and the actors, the inboxes of in-memory channels, and the
//! acks/commit bookkeeping (public as `faust_core::message`).

pub mod acks;
pub(crate) mod inbox;
pub(crate) mod queue;
