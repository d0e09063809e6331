//! The agents as `agents --json` lists them (the CLI and the web endpoint
//! share it).

use faust_core::{Agent, App};

/// One row per agent (reading a channel too if `local`), in name order.
pub(crate) fn agent_rows(app: &App, local: bool) -> Vec<serde_json::Value> {
    app.agents()
        .all()
        .iter()
        .filter(|a| local || !a.reads_channel())
        .map(agent_row)
        .collect()
}

/// An agent's name (`@name`), topic, concurrency and first line of help.
pub(crate) fn agent_row(a: &Agent) -> serde_json::Value {
    let topic = if a.reads_channel() {
        "<LOCAL>".to_string()
    } else {
        a.get_topic_names().join(",")
    };
    serde_json::json!({
        "name": format!("@{}", a.name()),
        "topic": topic,
        "concurrency": a.concurrency(),
        "help": a.help().lines().next().filter(|l| !l.is_empty()).unwrap_or("<N/A>"),
    })
}
