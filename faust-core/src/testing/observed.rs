//! What a test context sees of its agent copy: the values it produced, the
//! inputs it consumed, and each event it is done with.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::context::EventHook;
use crate::error::Error;
use crate::runtime::acks::Message;
use crate::sync::Mutex;

/// Where an event is: partition and offset.
pub(super) type At = (i32, i64);

/// A value the copy produced, with the event it answered (if any).
#[derive(Clone, Debug)]
pub(super) struct Output {
    pub(super) at: Option<At>,
    pub(super) value: serde_json::Value,
}

#[derive(Default)]
struct State {
    outputs: Vec<Output>,
    /// Inputs of events processed without error, in order (a consumer's
    /// results).
    inputs: Vec<(At, Bytes)>,
    /// Each finished event and its error.
    finished: HashMap<At, Option<String>>,
}

/// Shared by the test context, the results sink and the app's event hook.
#[derive(Default)]
pub(super) struct Observed {
    state: Mutex<State>,
    changed: Notify,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Observed")
            .field("outputs", &st.outputs.len())
            .field("inputs", &st.inputs.len())
            .field("finished", &st.finished.len())
            .finish()
    }
}

impl Observed {
    /// The copy produced `value` (answering the event at `at`).
    pub(super) fn output(&self, at: Option<At>, value: serde_json::Value) {
        self.state.lock().outputs.push(Output { at, value });
        self.changed.notify_waiters();
    }

    pub(super) fn outputs(&self) -> Vec<Output> {
        self.state.lock().outputs.clone()
    }

    pub(super) fn inputs(&self) -> Vec<(At, Bytes)> {
        self.state.lock().inputs.clone()
    }

    /// How many results there are: outputs, or inputs for a consumer.
    fn count(&self, outputs: bool) -> usize {
        let st = self.state.lock();
        if outputs {
            st.outputs.len()
        } else {
            st.inputs.len()
        }
    }

    /// Wait until `check` gives something; every change wakes it.
    async fn until<T>(&self, check: impl Fn(&Self) -> Option<T>) -> T {
        loop {
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            if let Some(found) = check(self) {
                return found;
            }
            changed.await;
        }
    }

    /// Wait until the event at `at` is finished; its error, if it failed.
    pub(super) async fn finished(&self, at: At) -> Option<String> {
        self.until(|o| o.state.lock().finished.get(&at).cloned())
            .await
    }

    /// Wait until there are more than `seen` results (outputs, or inputs
    /// for a consumer).
    pub(super) async fn more_than(&self, seen: usize, outputs: bool) {
        self.until(|o| (o.count(outputs) > seen).then_some(()))
            .await
    }
}

/// The test context's hook in its private app: each finished event.
pub(super) struct Observer(pub(super) std::sync::Arc<Observed>);

impl EventHook for Observer {
    fn done(&self, _agent: &str, msg: &Message, error: Option<&Error>) {
        let at = (msg.partition(), msg.offset());
        {
            let mut st = self.0.state.lock();
            if error.is_none() {
                if let Some(value) = msg.value() {
                    st.inputs.push((at, value.clone()));
                }
            }
            st.finished.insert(at, error.map(ToString::to_string));
        }
        self.0.changed.notify_waiters();
    }
}
