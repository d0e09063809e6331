//! The agent manager.

mod common;

use std::time::Duration;

use common::{app, partitions_of, within};
use faust_core::{AgentManagerT, AgentSpec, Error, Stream, TopicPartition};

fn idle(name: &str, topic: &str) -> AgentSpec {
    AgentSpec::consumer(name, |mut s: Stream<i64>| async move {
        while s.next().await.is_some() {}
        Ok::<_, Error>(())
    })
    .topic(topic)
}

#[tokio::test]
async fn a_new_manager_is_empty() {
    let app = app("mgr-empty").build().unwrap();
    assert!(app.agents().is_empty());
    assert!(app.agents().topics().is_empty());
    // No agents: returns at once (client-only app).
    within(
        1,
        "no agents to wait for",
        app.agents().wait_until_agents_started(),
    )
    .await;
}

#[tokio::test]
async fn duplicate_names_are_rejected_and_unknown_names_list_the_known_ones() {
    let app = app("mgr-dup").build().unwrap();
    app.add_agent(idle("a1", "t1")).unwrap();
    let err = app.add_agent(idle("a1", "t2")).unwrap_err();
    assert!(
        matches!(err, Error::DuplicateAgent(ref n) if n == "a1"),
        "{err}"
    );
    let err = app.agent("nope").unwrap_err().to_string();
    assert_eq!(err, "unknown agent `nope`; registered agents: a1");
    assert_eq!(app.agent("@a1").unwrap().name(), "a1");
}

#[tokio::test]
async fn topic_index_maps_topics_to_their_agents() {
    let app = app("mgr-index").build().unwrap();
    let a1 = app.add_agent(idle("a1", "t1")).unwrap();
    let a2 = app.add_agent(idle("a2", "t1")).unwrap();
    let a3 = app.add_agent(idle("a3", "t2")).unwrap();
    app.agents().update_topic_index();
    assert_eq!(*app.agents().by_topic("t1").unwrap(), vec![a1, a2]);
    assert_eq!(*app.agents().by_topic("t2").unwrap(), vec![a3]);
    assert!(app.agents().by_topic("t3").is_none());
    assert_eq!(app.agents().topics(), vec!["t1", "t2"]);
}

#[tokio::test]
async fn start_starts_every_agent_and_stop_stops_them() {
    let app = app("mgr-start").build().unwrap();
    let a = app.add_agent(idle("a", "t1").concurrency(2)).unwrap();
    let b = app.add_agent(idle("b", "t2")).unwrap();
    app.agents().start().await.unwrap();
    within(1, "started", app.agents().wait_until_agents_started()).await;
    assert_eq!((a.actor_count(), b.actor_count()), (2, 1));
    app.agents().stop().await.unwrap();
    assert_eq!((a.actor_count(), b.actor_count()), (0, 0));
    // Restart works after service_reset (done by stop).
    app.agents().service_reset();
    app.agents().start().await.unwrap();
    assert_eq!(a.actor_count(), 2);
    app.agents().stop().await.unwrap();
}

#[tokio::test]
async fn rebalance_routes_only_each_agents_topics_revoked_first() {
    let app = app("mgr-rebalance").build().unwrap();
    let a1 = app
        .add_agent(idle("a1", "t1").isolated_partitions(true))
        .unwrap();
    let a2 = app
        .add_agent(idle("a2", "t2").isolated_partitions(true))
        .unwrap();
    app.agents().start().await.unwrap();
    let tp = |t: &str, p| TopicPartition::new(t, p);
    app.agents()
        .on_rebalance(&[], &[tp("t1", 0), tp("t1", 1), tp("t2", 0), tp("t4", 3)])
        .await
        .unwrap();
    assert_eq!(partitions_of(&a1), vec![0, 1]);
    assert_eq!(partitions_of(&a2), vec![0]);
    // Revoked {t1:0, t1:1, t4:3} reaches only a1 (t4 is unknown); new {t2:1} only a2.
    let mgr: &dyn AgentManagerT = app.agents();
    mgr.on_rebalance(&[tp("t1", 0), tp("t1", 1), tp("t4", 3)], &[tp("t2", 1)])
        .await
        .unwrap();
    assert_eq!(partitions_of(&a1), Vec::<i32>::new());
    assert_eq!(partitions_of(&a2), vec![0, 1]);
    app.agents().stop().await.unwrap();
}

#[tokio::test]
async fn cancel_lets_actors_finish_and_end_cleanly() {
    let app = app("mgr-cancel").build().unwrap();
    let a = app.add_agent(idle("a", "t1").concurrency(3)).unwrap();
    app.agents().start().await.unwrap();
    app.agents().cancel();
    within(5, "actors end", async {
        while a.actor_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(a.stats().restarts(), 0, "a cancelled actor is not a crash");
    app.agents().stop().await.unwrap();
}

#[tokio::test]
async fn human_tracebacks_name_every_agent() {
    let app = app("mgr-tb").build().unwrap();
    app.add_agent(idle("alpha", "t1")).unwrap();
    app.add_agent(idle("beta", "t2")).unwrap();
    app.agents().start().await.unwrap();
    let text = app.agents().human_tracebacks();
    let alpha = text.find("* alpha ----->").expect("alpha listed");
    let beta = text.find("* beta ----->").expect("beta listed");
    assert!(alpha < beta, "in registration order");
    assert!(text.ends_with("-eof tracebacks-\n"));
    let map = app.agents().actor_tracebacks();
    assert_eq!(map.len(), 2);
    assert_eq!(map["alpha"].len(), 1);
    app.agents().stop().await.unwrap();
}

#[tokio::test]
async fn user_code_cannot_stop_or_rebalance_the_agents_of_a_running_app() {
    let app = app("mgr-run-by-app").topic_partitions(2).build().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let agent = app
        .add_agent(
            AgentSpec::consumer("iso", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(v) = s.next().await {
                        let _ = tx.send(v);
                    }
                    Ok::<_, Error>(())
                }
            })
            .isolated_partitions(true),
        )
        .unwrap();
    app.start().await.unwrap();
    let all: Vec<TopicPartition> = (0..2)
        .map(|p| TopicPartition::new(agent.topic(), p))
        .collect();
    within(5, "both partitions assigned", async {
        while partitions_of(&agent) != vec![0, 1] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Each hook that would leave the conductor's records without an actor
    // is refused, and changes nothing.
    let refused = [
        agent.on_partitions_revoked(&all).await.unwrap_err(),
        agent
            .on_isolated_partitions_revoked(&all)
            .await
            .unwrap_err(),
        agent.on_partitions_assigned(&all).await.unwrap_err(),
        agent.on_stop().await.unwrap_err(),
        app.agents().stop().await.unwrap_err(),
        app.agents().on_rebalance(&all, &[]).await.unwrap_err(),
    ];
    for err in refused {
        assert!(err.to_string().contains("its app runs it"), "{err}");
    }
    assert_eq!(partitions_of(&agent), vec![0, 1]);
    for v in 0..10_i64 {
        agent
            .send_with(
                &v,
                faust_core::SendOptions::default().partition((v % 2) as i32),
            )
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    within(5, "every event processed", async {
        while got.len() < 10 {
            got.push(rx.recv().await.unwrap());
        }
    })
    .await;
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    app.stop().await.unwrap();
    // Once the app stopped them, the agents are the user's to run again.
    app.agents().start().await.unwrap();
    app.agents().stop().await.unwrap();
}
