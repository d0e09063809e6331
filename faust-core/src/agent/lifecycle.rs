//! The agent's lifecycle: starting and stopping its actors, the supervisor
//! that restarts (or forfeits) crashed ones, and what the live actors show
//! (count, tracebacks).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::codec::Value;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::runtime::queue::{AgentQueue, Queue};

use super::actor::ActorCtx;
use super::body::{run_actor, Outcome};
use super::stream::Stream;
use super::supervisor::{Crash, Decision, RestartBudget};
use super::{ActorHandle, Agent, Exit, QueueTx, Slot, State};

impl Agent {
    /// Start the agent: its supervisor and, unless partitions are isolated,
    /// its actors. Isolated actors start on partition assignment.
    ///
    /// [`App::start`](crate::App::start) starts its agents; call this only
    /// to run an agent without starting its app (its queue then gets
    /// nothing from a consumer). Starting a started agent does nothing.
    pub async fn on_start(&self) -> Result<()> {
        self.start(false).await
    }

    /// Whether the app started this agent (and alone stops and rebalances it).
    pub(crate) fn run_by_app(&self) -> bool {
        self.state().run_by_app
    }

    /// An error if the app runs this agent: `hook` is the app's to call.
    pub(crate) fn not_run_by_app(&self, hook: &str) -> Result<()> {
        if self.run_by_app() {
            return Err(Error::config(format!(
                "`{hook}` of agent `{}`: its app runs it, and alone stops and rebalances it \
                 (calling it here would leave records of its partitions without an actor)",
                self.name()
            )));
        }
        Ok(())
    }

    /// Start the agent; `by_app`: for a running app, whose conductor feeds it.
    pub(crate) async fn start(&self, by_app: bool) -> Result<()> {
        if self.is_remote() {
            return Ok(());
        }
        let cfg = &self.context().config;
        let capacity = cfg.stream_buffer_maxsize;
        let (tx, mut rx) = mpsc::unbounded_channel::<Exit>();
        {
            let mut st = self.state();
            if st.started {
                return Ok(());
            }
            st.started = true;
            st.run_by_app = by_app;
            st.stopping = false;
            st.budget = Some(RestartBudget::new(cfg.max_restarts, cfg.restart_window));
            st.exits = Some(tx);
            if !self.isolated_partitions() {
                let queue = AgentQueue::new(capacity, self.concurrency() > 1);
                if let Some(inbox) = self.inbox() {
                    inbox.attach(self.name(), queue.clone());
                }
                st.shared = Some(QueueTx(queue));
            }
        }
        if !self.isolated_partitions() {
            let n = self.concurrency();
            for i in 0..n {
                let index = (n > 1).then_some(i);
                let _ = self.spawn_actor(Slot::Index(index));
            }
        }
        let agent = self.clone();
        let supervisor = tokio::spawn(async move {
            while let Some(exit) = rx.recv().await {
                agent.on_actor_exit(exit).await;
            }
        });
        self.state().supervisor = Some(supervisor);
        Ok(())
    }

    fn queue_for(&self, st: &State, slot: &Slot) -> Option<Queue> {
        match slot {
            Slot::Index(_) => st.queue(None),
            Slot::Partition(tp) => st.queue(Some(tp)),
        }
    }

    /// Start a supervised actor for `slot`; its label, or `None` when the
    /// agent is not running.
    pub(super) fn spawn_actor(&self, slot: Slot) -> Option<String> {
        let mut st = self.state();
        if st.stopping {
            return None;
        }
        let (Some(queue), Some(exits)) = (self.queue_for(&st, &slot), st.exits.clone()) else {
            return None;
        };
        let (index, partition) = match &slot {
            Slot::Index(i) => (*i, None),
            Slot::Partition(tp) => (None, Some(tp.clone())),
        };
        let id = st.next_id;
        st.next_id += 1;
        let ctx = ActorCtx::new(
            self.clone(),
            index,
            partition,
            queue,
            CancellationToken::new(),
        );
        let root = self
            .context()
            .tracebacks
            .register((self.name().to_string(), id), ctx.label().to_string());
        let body = self.inner.spec.body.clone();
        let run_ctx = ctx.clone();
        let label = ctx.label().to_string();
        let join = tokio::spawn(async move {
            let outcome = run_actor(run_ctx, body, root).await;
            let _ = exits.send(Exit { id, outcome });
        });
        st.actors.insert(id, ActorHandle { slot, ctx, join });
        Some(label)
    }

    async fn on_actor_exit(&self, exit: Exit) {
        let handle = {
            let mut st = self.state();
            let Some(handle) = st.actors.remove(&exit.id) else {
                return; // stopped on purpose (revoked, stopped, restarted as a group)
            };
            if st.stopping {
                return;
            }
            if let Outcome::Finished = &exit.outcome {
                st.finished.push(handle.ctx.label().to_string());
                return;
            }
            handle
        };
        let Outcome::Crashed(err) = exit.outcome else {
            return;
        };
        // Decided without the agent's lock held: a strategy may look at
        // the agent.
        let decision = self.supervisor_strategy().on_crash(&Crash {
            agent: self,
            actor: handle.ctx.label(),
            error: &err,
            restarts: self.inner.stats.restarts.load(Ordering::Relaxed),
        });
        tracing::warn!(agent = %self.name(), actor = %handle.ctx.label(), error = %err, ?decision, "actor crashed");
        let ctx = self.context();
        match decision {
            Decision::RestartOne => {
                if self.spend_restart(ctx) {
                    let _ = self.spawn_actor(handle.slot);
                }
            }
            Decision::RestartAll => {
                let others = self.take_actors();
                let mut slots: Vec<Slot> = others.iter().map(|h| h.slot.clone()).collect();
                self.stop_actors(others, ctx.config.stop_timeout).await;
                slots.push(handle.slot);
                slots.sort_by(|a, b| match (a, b) {
                    (Slot::Index(a), Slot::Index(b)) => a.cmp(b),
                    (Slot::Partition(a), Slot::Partition(b)) => a.cmp(b),
                    (Slot::Index(_), Slot::Partition(_)) => std::cmp::Ordering::Less,
                    (Slot::Partition(_), Slot::Index(_)) => std::cmp::Ordering::Greater,
                });
                if self.spend_restart(ctx) {
                    for slot in slots {
                        let _ = self.spawn_actor(slot);
                    }
                }
            }
            Decision::ForfeitOne => {
                tracing::error!(agent = %self.name(), "actor forfeited after crash; not restarted");
                self.state()
                    .finished
                    .push(format!("{} (forfeited)", handle.ctx.label()));
            }
            Decision::ForfeitAll => {
                let others = self.take_actors();
                self.stop_actors(others, ctx.config.stop_timeout).await;
                tracing::error!(agent = %self.name(), "all actors forfeited after crash");
            }
            Decision::CrashApp => ctx.crash(Error::Crashed(format!(
                "agent `{}` crashed: {err}",
                self.name()
            ))),
        }
    }

    fn spend_restart(&self, ctx: &Context) -> bool {
        let ok = {
            let mut st = self.state();
            st.budget.as_mut().is_none_or(|b| b.try_restart())
        };
        if ok {
            self.inner.stats.restarts.fetch_add(1, Ordering::Relaxed);
        } else {
            let err = Error::MaxRestartsExceeded {
                agent: self.name().to_string(),
                max: ctx.config.max_restarts,
                over: ctx.config.restart_window,
            };
            tracing::error!(error = %err, "supervisor gives up");
            ctx.crash(err);
        }
        ok
    }

    fn take_actors(&self) -> Vec<ActorHandle> {
        self.state().actors.drain().map(|(_, h)| h).collect()
    }

    /// Cancel actors, let them finish their current event, abort them after `deadline`.
    pub(super) async fn stop_actors(&self, actors: Vec<ActorHandle>, deadline: Duration) {
        for h in &actors {
            h.ctx.cancel_token().cancel();
        }
        let until = tokio::time::Instant::now() + deadline;
        for mut h in actors {
            if tokio::time::timeout_at(until, &mut h.join).await.is_err() {
                tracing::warn!(actor = %h.ctx.label(), "actor did not stop in time; aborting it (its event stays uncommitted)");
                h.join.abort();
                let _ = h.join.await;
                h.ctx.abandon_current();
            }
        }
    }

    /// Stop every actor: each finishes its current event (up to the app's
    /// stop timeout; after that it is aborted and its event left uncommitted).
    ///
    /// An error for an agent its app runs: [`App::stop`](crate::App::stop)
    /// stops it, after the conductor stopped handing it records.
    pub async fn on_stop(&self) -> Result<()> {
        self.not_run_by_app("on_stop")?;
        self.stop().await
    }

    /// Stop every actor (see [`on_stop`](Self::on_stop)).
    pub(crate) async fn stop(&self) -> Result<()> {
        let (actors, supervisor) = {
            let mut st = self.state();
            if !st.started {
                return Ok(());
            }
            st.stopping = true;
            st.started = false;
            st.run_by_app = false;
            // Values waiting in a channel's queue are lost, as in Faust: the
            // channel takes no more, and what no actor took is dropped.
            if let Some(inbox) = self.inbox() {
                inbox.detach(self.name());
                if let Some(q) = &st.shared {
                    let dropped = q.0.close_and_drop();
                    if dropped > 0 {
                        tracing::info!(agent = %self.name(), channel = %inbox.name(), dropped, "values left in the channel are dropped");
                    }
                }
            }
            st.shared = None;
            st.isolated.clear();
            st.exits = None;
            (
                st.actors.drain().map(|(_, h)| h).collect::<Vec<_>>(),
                st.supervisor.take(),
            )
        };
        self.stop_actors(actors, self.context().config.stop_timeout)
            .await;
        if let Some(s) = supervisor {
            s.abort();
        }
        Ok(())
    }

    /// Ask every actor to stop after its current event, without waiting.
    /// A busy agent function is not interrupted.
    pub fn cancel(&self) {
        for h in self.state().actors.values() {
            h.ctx.cancel_token().cancel();
        }
    }

    /// Reset state so the agent can be started again.
    pub fn service_reset(&self) {
        let mut st = self.state();
        st.finished.clear();
        st.budget = None;
    }

    /// Throw `err` into every live actor: each ends at its next read as if
    /// its function had returned `err`, and the supervisor decides. The
    /// number of actors thrown at.
    pub(crate) fn throw(&self, err: &Error) -> usize {
        let st = self.state();
        for handle in st.actors.values() {
            handle.ctx.throw(err.clone());
        }
        st.actors.len()
    }

    /// Events waiting in the agent's queues for an actor.
    pub fn queue_depth(&self) -> usize {
        let st = self.state();
        st.shared
            .iter()
            .chain(st.isolated.values())
            .map(|q| q.0.len())
            .sum()
    }

    /// The actor holding the event at `offset` of `tp` (current, in a
    /// batch, or waiting for a manual ack), with where it is suspended.
    pub(crate) fn holder_of(&self, tp: &TopicPartition, offset: i64) -> Option<(String, String)> {
        let st = self.state();
        let (id, handle) = st.actors.iter().find(|(_, h)| h.ctx.holds(tp, offset))?;
        let traceback = self
            .context()
            .tracebacks
            .get((self.name().to_string(), *id))
            .map(|tree| tree.to_string())
            .unwrap_or_default();
        Some((handle.ctx.label().to_string(), traceback))
    }

    /// Number of live actors.
    pub fn actor_count(&self) -> usize {
        self.state().actors.len()
    }

    /// Where each actor is suspended right now, one entry per actor
    /// (finished actors give a placeholder).
    pub fn actor_tracebacks(&self) -> Vec<String> {
        let tracebacks = &self.context().tracebacks;
        let st = self.state();
        let mut ids: Vec<&u64> = st.actors.keys().collect();
        ids.sort();
        let mut out: Vec<String> = ids
            .into_iter()
            .map(|id| {
                let h = &st.actors[id];
                match tracebacks.get((self.name().to_string(), *id)) {
                    Some(tree) => tree.to_string(),
                    None => format!(
                        "Could not extract traceback for actor {}: not running",
                        h.ctx.label()
                    ),
                }
            })
            .collect();
        out.extend(
            st.finished
                .iter()
                .map(|l| format!("Could not extract traceback for actor {l}: finished")),
        );
        out
    }

    /// Start one more actor running the agent function on the queue of
    /// `stream` (from [`stream`](Self::stream) or
    /// [`channel_iterator`](Self::channel_iterator)), with concurrency
    /// index `index`: Faust's `actor_from_stream`. It is supervised like
    /// the agent's own actors (restarted by its strategy, counted in
    /// [`actor_count`](Self::actor_count), [`actor_tracebacks`](Self::actor_tracebacks)
    /// and the restarts of its stats) and stops with the agent; an actor on
    /// an isolated partition's queue stops when that partition is revoked.
    ///
    /// The new actor reads from where the stream is: pass a stream nothing
    /// read from (an event read before is acked when the stream drops).
    /// An error if the agent is not running.
    pub fn actor_from_stream<T: Value>(
        &self,
        stream: Stream<T>,
        index: Option<usize>,
    ) -> Result<ActorRef> {
        let partition = stream.active_partition();
        drop(stream);
        let slot = match &partition {
            Some(tp) => Slot::Partition(tp.clone()),
            None => Slot::Index(index),
        };
        let label = self
            .spawn_actor(slot)
            .ok_or_else(|| Error::Stopped(format!("agent `{}`", self.name())))?;
        Ok(ActorRef {
            label,
            index: if partition.is_some() { None } else { index },
            partition,
        })
    }
}

/// An actor started by [`Agent::actor_from_stream`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorRef {
    label: String,
    index: Option<usize>,
    partition: Option<crate::record::TopicPartition>,
}

impl ActorRef {
    /// Its label, as in tracebacks (`Agent*: name #1`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its concurrency index.
    pub fn index(&self) -> Option<usize> {
        self.index
    }

    /// The partitions it is limited to (one for an isolated partition's
    /// queue, none for the shared queue).
    pub fn active_partitions(&self) -> Vec<crate::record::TopicPartition> {
        self.partition.iter().cloned().collect()
    }
}
