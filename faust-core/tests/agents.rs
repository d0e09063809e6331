//! Agents, actors and streams through the public API, with the ported
//! Faust agent tests (docs/faust-tests.md).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{app, nothing_more, partitions_of, take, within};
use faust_core::{current_agent, AgentSpec, Error, Sink, Stream, SupervisorStrategy, Yield};
use tokio::sync::mpsc;

type Seen = (Option<usize>, i32, i64, i64);

fn recording_agent(name: &str, concurrency: usize, tx: mpsc::UnboundedSender<Seen>) -> AgentSpec {
    AgentSpec::consumer(name, move |mut s: Stream<i64>| {
        let tx = tx.clone();
        async move {
            while let Some(ev) = s.next_event().await {
                let m = ev.message();
                let _ = tx.send((s.concurrency_index(), m.partition(), m.offset(), ev.value));
            }
            Ok::<_, Error>(())
        }
    })
    .concurrency(concurrency)
}

async fn concurrency_round_robin(actors: usize, events: usize) {
    let app = app("concurrency").topic_partitions(4).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(recording_agent("worker", actors, tx))
        .unwrap();
    app.start().await.unwrap();
    assert_eq!(agent.actor_count(), actors);

    // Idle actors take events in turn: each event that arrives while they
    // all wait goes to the one that has waited longest, so dispatch is
    // round-robin by index, as in Faust.
    let turns = 3 * actors;
    for i in 0..turns {
        agent.send(&(i as i64)).await.unwrap();
        let (idx, ..) = take(&mut rx, 1).await[0];
        if actors > 1 {
            assert_eq!(idx, Some(i % actors), "event #{i} went to actor {idx:?}");
        } else {
            assert_eq!(idx, None);
        }
    }

    // A burst goes to whichever actors are free (a fast actor is not made
    // to wait its turn): every event once, none lost.
    for i in turns..turns + events {
        agent.send(&(i as i64)).await.unwrap();
    }
    let seen = take(&mut rx, events).await;
    nothing_more(&mut rx).await;
    let mut coords = HashSet::new();
    for (_, p, o, _) in &seen {
        assert!(coords.insert((*p, *o)), "event {p}@{o} processed twice");
    }
    let values: HashSet<i64> = seen.iter().map(|s| s.3).collect();
    assert_eq!(values.len(), events, "every event processed");
    let indexes: HashSet<Option<usize>> = seen.iter().map(|s| s.0).collect();
    if actors > 1 {
        assert!(indexes.iter().all(|i| i.is_some_and(|i| i < actors)));
    } else {
        assert_eq!(indexes.into_iter().collect::<Vec<_>>(), vec![None]);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn concurrency_2_actors_round_robin_without_duplicates() {
    concurrency_round_robin(2, 100).await;
}

#[tokio::test]
async fn concurrency_10_actors_round_robin_without_duplicates() {
    concurrency_round_robin(10, 1000).await;
}

#[tokio::test]
async fn concurrency_100_actors_round_robin_without_duplicates() {
    concurrency_round_robin(100, 1000).await;
}

#[tokio::test]
async fn concurrency_1_has_no_index() {
    concurrency_round_robin(1, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_on_a_multi_thread_runtime_processes_each_event_once() {
    let app = app("concurrency-mt").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app.add_agent(recording_agent("worker", 8, tx)).unwrap();
    app.start().await.unwrap();
    for i in 0..2000i64 {
        agent.send(&i).await.unwrap();
    }
    let seen = take(&mut rx, 2000).await;
    nothing_more(&mut rx).await;
    let values: HashSet<i64> = seen.iter().map(|s| s.3).collect();
    assert_eq!(values.len(), 2000);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn isolated_partitions_with_concurrency_is_rejected() {
    let app = app("iso-conc").build().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = app
        .add_agent(recording_agent("a", 2, tx).isolated_partitions(true))
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    assert!(err
        .to_string()
        .contains("concurrency must be 1 when using isolated partitions"));
}

#[tokio::test]
async fn concurrency_zero_is_rejected() {
    let app = app("conc0").build().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = app.add_agent(recording_agent("a", 0, tx)).unwrap_err();
    assert!(
        err.to_string().contains("concurrency must be at least 1"),
        "{err}"
    );
}

#[tokio::test]
async fn isolated_partitions_one_actor_per_partition_each_sees_only_its_own() {
    let app = app("isolated").topic_partitions(8).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("iso", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    let mine = s.active_partition().map(|tp| tp.partition);
                    while let Some(ev) = s.next_event().await {
                        let _ = tx.send((mine, ev.message().partition(), ev.message().offset()));
                    }
                    Ok::<_, Error>(())
                }
            })
            .isolated_partitions(true),
        )
        .unwrap();
    app.start().await.unwrap();
    for i in 0..400i64 {
        agent
            .send_with(
                &i,
                faust_core::SendOptions::default().partition((i % 8) as i32),
            )
            .await
            .unwrap();
    }
    let seen = take(&mut rx, 400).await;
    let mut per_tp: HashMap<i32, Vec<i64>> = HashMap::new();
    for (mine, p, o) in seen {
        assert_eq!(
            mine,
            Some(p),
            "an isolated actor receives only its partition"
        );
        per_tp.entry(p).or_default().push(o);
    }
    assert_eq!(per_tp.len(), 8);
    for (p, offsets) in per_tp {
        assert_eq!(
            offsets,
            (0..50).collect::<Vec<_>>(),
            "partition {p} in order, uniform"
        );
    }
    assert_eq!(partitions_of(&agent), (0..8).collect::<Vec<_>>());
    assert_eq!(agent.actor_count(), 8);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn isolated_partitions_rebalancing_starts_and_truly_stops_actors() {
    // Drive the manager like Faust's harness: [0],[1],[0,1],[2,3],[0..3],[4..7].
    let app = app("iso-rebalance").build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::consumer("iso", |mut s: Stream<i64>| async move {
                while s.next().await.is_some() {}
                Ok::<_, Error>(())
            })
            .topic("iso-topic")
            .isolated_partitions(true),
        )
        .unwrap();
    app.agents().start().await.unwrap();
    let tps = |ps: &[i32]| -> Vec<faust_core::TopicPartition> {
        ps.iter()
            .map(|p| faust_core::TopicPartition::new("iso-topic", *p))
            .collect()
    };
    let mut current: Vec<i32> = vec![];
    for next in [
        vec![0],
        vec![1],
        vec![0, 1],
        vec![2, 3],
        vec![0, 1, 2, 3],
        vec![4, 5, 6, 7],
    ] {
        let revoked: Vec<i32> = current
            .iter()
            .copied()
            .filter(|p| !next.contains(p))
            .collect();
        let assigned: Vec<i32> = next
            .iter()
            .copied()
            .filter(|p| !current.contains(p))
            .collect();
        app.agents()
            .on_rebalance(&tps(&revoked), &tps(&assigned))
            .await
            .unwrap();
        assert_eq!(
            partitions_of(&agent),
            next,
            "actors after rebalance to {next:?}"
        );
        assert_eq!(agent.actor_count(), next.len(), "no zombie actors");
        current = next;
    }
    // Unknown topics are ignored.
    app.agents()
        .on_rebalance(&[faust_core::TopicPartition::new("other", 0)], &[])
        .await
        .unwrap();
    assert_eq!(agent.actor_count(), 4);
    app.agents().stop().await.unwrap();
    assert_eq!(agent.actor_count(), 0);
}

#[tokio::test]
async fn current_agent_is_set_inside_the_body_only() {
    assert!(current_agent().is_none());
    let app = app("current").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(AgentSpec::consumer("who", move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while s.next().await.is_some() {
                    let _ = tx.send(current_agent().map(|a| a.name().to_string()));
                }
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    app.start().await.unwrap();
    agent.send(&1).await.unwrap();
    assert_eq!(take(&mut rx, 1).await, vec![Some("who".to_string())]);
    assert!(current_agent().is_none());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn yielded_values_go_to_every_sink_in_order() {
    let app = app("sinks").build().unwrap();
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let (o1, o2) = (order.clone(), order.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let target = app
        .add_agent(AgentSpec::consumer("target", move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while let Some(v) = s.next().await {
                    let _ = tx.send(v);
                }
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    let source = app
        .add_agent(
            AgentSpec::yielding("double", |mut s: Stream<i64>, out: Yield<i64>| async move {
                while let Some(v) = s.next().await {
                    out.send(v * 2).await?;
                }
                Ok::<_, Error>(())
            })
            .sink(Sink::callback(move |v: &i64| {
                o1.lock().unwrap().push(format!("sync {v}"))
            }))
            .sink(Sink::callback(move |v: i64| {
                let o2 = o2.clone();
                async move {
                    tokio::task::yield_now().await;
                    o2.lock().unwrap().push(format!("async {v}"));
                }
            }))
            .sink(Sink::<i64>::agent("target"))
            .sink(Sink::<i64>::topic("doubled")),
        )
        .unwrap();
    // Same sink twice is ignored.
    source.add_sink(Sink::<i64>::topic("doubled")).unwrap();
    assert_eq!(source.info().sinks.len(), 4);
    app.start().await.unwrap();
    source.send(&21).await.unwrap();
    source.send(&1).await.unwrap();
    let mut got = take(&mut rx, 2).await;
    got.sort();
    assert_eq!(got, vec![2, 42]);
    assert_eq!(
        *order.lock().unwrap(),
        vec!["sync 42", "async 42", "sync 2", "async 2"]
    );
    assert_eq!(target.stats().events_in(), 2);
    assert_eq!(
        app.transport().partition_count("doubled").await.unwrap(),
        Some(8),
        "the topic sink produced"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sinks_on_a_consumer_or_of_the_wrong_type_are_rejected() {
    let app = app("sink-errors").build().unwrap();
    let consumer = AgentSpec::consumer("c", |mut s: Stream<i64>| async move {
        while s.next().await.is_some() {}
        Ok::<_, Error>(())
    });
    let err = app
        .add_agent(consumer.clone().sink(Sink::<i64>::topic("x")))
        .unwrap_err();
    assert!(
        err.to_string().contains("must produce values to use sinks"),
        "{err}"
    );
    let c = app.add_agent(consumer).unwrap();
    assert!(c.add_sink(Sink::<i64>::topic("x")).is_err());
    let h = app
        .add_agent(AgentSpec::handler("h", |x: i64| async move {
            Ok::<_, Error>(x)
        }))
        .unwrap();
    let err = h.add_sink(Sink::<String>::topic("x")).unwrap_err();
    assert!(err.to_string().contains("produces `i64`"), "{err}");
}

#[tokio::test]
async fn one_for_one_restarts_the_crashed_actor_and_goes_on_with_the_next_event() {
    let app = app("one-for-one").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let errs = errors.clone();
    let agent = app
        .add_agent(
            AgentSpec::consumer("flaky", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(v) = s.next().await {
                        if v == 2 {
                            return Err(Error::config("two is bad"));
                        }
                        if v == 4 {
                            panic!("four panics");
                        }
                        let _ = tx.send(v);
                    }
                    Ok(())
                }
            })
            .partitions(1)
            .on_error(move |agent, err| {
                errs.lock()
                    .unwrap()
                    .push(format!("{}: {err}", agent.name()))
            }),
        )
        .unwrap();
    app.start().await.unwrap();
    for v in 1..=6i64 {
        agent.send(&v).await.unwrap();
    }
    assert_eq!(take(&mut rx, 4).await, vec![1, 3, 5, 6]);
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("two is bad"));
    assert!(errors[1].contains("panicked: four panics"));
    assert_eq!(agent.stats().restarts(), 2);
    assert_eq!(agent.actor_count(), 1);
    assert!(app.crash_reason().is_none());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn one_for_all_restarts_every_actor() {
    let app = app("one-for-all").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("group", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(("started", s.concurrency_index()));
                    while let Some(v) = s.next().await {
                        if v == 0 {
                            return Err(Error::config("boom"));
                        }
                    }
                    Ok(())
                }
            })
            .concurrency(3)
            .supervisor(SupervisorStrategy::OneForAll),
        )
        .unwrap();
    app.start().await.unwrap();
    let mut first: Vec<_> = take(&mut rx, 3).await.into_iter().map(|x| x.1).collect();
    first.sort();
    assert_eq!(first, vec![Some(0), Some(1), Some(2)]);
    agent.send(&0).await.unwrap();
    let mut again: Vec<_> = take(&mut rx, 3).await.into_iter().map(|x| x.1).collect();
    again.sort();
    assert_eq!(
        again,
        vec![Some(0), Some(1), Some(2)],
        "all three restarted"
    );
    assert_eq!(agent.actor_count(), 3);
    app.stop().await.unwrap();
}

async fn crash_with(
    strategy: SupervisorStrategy,
    concurrency: usize,
) -> (faust_core::App, faust_core::Agent) {
    let app = app("forfeit").build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::consumer("f", |mut s: Stream<i64>| async move {
                while let Some(v) = s.next().await {
                    if v == 0 {
                        return Err(Error::config("boom"));
                    }
                }
                Ok::<_, Error>(())
            })
            .concurrency(concurrency)
            .supervisor(strategy),
        )
        .unwrap();
    app.start().await.unwrap();
    agent.send(&0).await.unwrap();
    within(5, "crash handled", async {
        while agent.stats().crashes() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    (app, agent)
}

#[tokio::test]
async fn forfeit_one_for_one_does_not_restart_the_crashed_actor() {
    let (app, agent) = crash_with(SupervisorStrategy::ForfeitOneForOne, 2).await;
    within(5, "actor gone", async {
        while agent.actor_count() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(agent.stats().restarts(), 0);
    assert!(agent
        .actor_tracebacks()
        .iter()
        .any(|t| t.contains("forfeited")));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn forfeit_one_for_all_stops_every_actor() {
    let (app, agent) = crash_with(SupervisorStrategy::ForfeitOneForAll, 3).await;
    within(5, "all actors gone", async {
        while agent.actor_count() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(agent.stats().restarts(), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn crashing_supervisor_crashes_the_app() {
    let (app, _agent) = crash_with(SupervisorStrategy::Crashing, 1).await;
    let reason = within(5, "app crash", app.wait_crashed()).await;
    assert!(reason.to_string().contains("boom"), "{reason}");
    app.stop().await.unwrap();
}

/// Restarts after errors, forfeits the actor on a panic; remembers what
/// it was asked.
#[derive(Debug, Default)]
struct PanicsForfeit {
    seen: std::sync::Mutex<Vec<(String, String, u64)>>,
}

impl faust_core::supervisor::SupervisorStrategyT for PanicsForfeit {
    fn name(&self) -> &str {
        "panics_forfeit"
    }
    fn on_crash(
        &self,
        crash: &faust_core::supervisor::Crash<'_>,
    ) -> faust_core::supervisor::Decision {
        use faust_core::supervisor::Decision;
        // The agent can be looked at from here (no lock is held).
        let _ = crash.agent.info();
        self.seen.lock().unwrap().push((
            crash.agent.name().to_string(),
            crash.error.to_string(),
            crash.restarts,
        ));
        match crash.error {
            Error::Panic { .. } => Decision::ForfeitOne,
            _ => Decision::RestartOne,
        }
    }
}

#[tokio::test]
async fn a_custom_strategy_decides_per_crash_and_an_app_default_applies_to_agents_without_one() {
    let strategy = std::sync::Arc::new(PanicsForfeit::default());
    let app = app("custom-strategy")
        .agent_supervisor(strategy.clone())
        .build()
        .unwrap();
    let agent = app
        .add_agent(AgentSpec::consumer(
            "moody",
            |mut s: Stream<i64>| async move {
                while let Some(v) = s.next().await {
                    match v {
                        0 => return Err(Error::config("an error")),
                        1 => panic!("a panic"),
                        _ => {}
                    }
                }
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    let own = app
        .add_agent(
            AgentSpec::consumer("own", |mut s: Stream<i64>| async move {
                while s.next().await.is_some() {}
                Ok::<_, Error>(())
            })
            .supervisor(SupervisorStrategy::Crashing),
        )
        .unwrap();
    assert_eq!(agent.supervisor_strategy().name(), "panics_forfeit");
    assert_eq!(agent.info().supervisor_strategy, "panics_forfeit");
    assert_eq!(own.supervisor_strategy().name(), "crashing");
    app.start().await.unwrap();
    agent.send(&0).await.unwrap();
    within(5, "the restart after an error", async {
        while agent.stats().restarts() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    agent.send(&1).await.unwrap();
    within(5, "the forfeit after a panic", async {
        while agent.actor_count() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(agent.stats().restarts(), 1);
    let seen = strategy.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "moody");
    assert!(seen[0].1.contains("an error"), "{seen:?}");
    assert_eq!(seen[0].2, 0);
    assert!(seen[1].1.contains("a panic"), "{seen:?}");
    assert_eq!(seen[1].2, 1);
    assert!(app.crash_reason().is_none());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn exceeding_the_restart_budget_crashes_the_app() {
    let app = app("budget")
        .max_restarts(3)
        .restart_window(Duration::from_secs(60))
        .build()
        .unwrap();
    let agent = app
        .add_agent(AgentSpec::consumer(
            "always-fails",
            |mut s: Stream<i64>| async move {
                s.next().await;
                Err::<(), _>(Error::config("no"))
            },
        ))
        .unwrap();
    let run = {
        let app = app.clone();
        tokio::spawn(async move { app.run_until(std::future::pending()).await })
    };
    within(5, "started", async {
        while !app.is_running().await {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for v in 0..10i64 {
        agent.send(&v).await.unwrap();
    }
    let result = within(10, "run returns", run).await.unwrap();
    let err = result.unwrap_err().to_string();
    assert!(err.contains("exceeded its restart budget of 3"), "{err}");
}

#[tokio::test]
async fn an_agent_that_returns_is_finished_not_restarted() {
    let app = app("finish").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::consumer(
            "once",
            |mut s: Stream<i64>| async move {
                s.next().await;
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    app.start().await.unwrap();
    agent.send(&1).await.unwrap();
    within(5, "actor finished", async {
        while agent.actor_count() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(agent.stats().restarts(), 0);
    let tbs = agent.actor_tracebacks();
    assert_eq!(tbs.len(), 1);
    assert!(
        tbs[0].starts_with("Could not extract traceback for actor"),
        "{tbs:?}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn undecodable_messages_are_reported_dead_lettered_and_skipped() {
    let app = app("decode").dead_letter_topic("dlq").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let errs = errors.clone();
    let agent = app
        .add_agent(
            AgentSpec::consumer("typed", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(v) = s.next().await {
                        let _ = tx.send(v);
                    }
                    Ok::<_, Error>(())
                }
            })
            .partitions(1)
            .on_error(move |_, e| errs.lock().unwrap().push(e.to_string())),
        )
        .unwrap();
    app.start().await.unwrap();
    agent
        .send_raw(None, Some("not json".into()), None, vec![])
        .await
        .unwrap();
    agent.send(&7).await.unwrap();
    assert_eq!(take(&mut rx, 1).await, vec![7]);
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1);
    let topic = agent.topic().to_string();
    assert!(
        errors[0].contains(&format!(
            "cannot decode message {topic}[0]@0 with the json codec"
        )),
        "{errors:?}"
    );
    assert_eq!(agent.stats().restarts(), 0, "a bad message is not a crash");
    // The dead-letter topic has the original bytes and the error.
    let mut dlq = app
        .transport()
        .assign(vec![faust_core::TopicPartition::new("dlq", 0)])
        .await
        .unwrap();
    let records = within(5, "dead letter", async {
        loop {
            if let faust_core::transport::ConsumerEvent::Records(r) = dlq.poll().await.unwrap() {
                if !r.is_empty() {
                    return r;
                }
            }
        }
    })
    .await;
    assert_eq!(records[0].value.as_deref(), Some(&b"not json"[..]));
    assert!(records[0].headers.iter().any(|(k, _)| k == "faust-error"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn tracebacks_show_where_each_actor_waits() {
    let app = app("tracebacks").build().unwrap();
    app.add_agent(
        AgentSpec::consumer("waiter", |mut s: Stream<i64>| async move {
            while s.next().await.is_some() {}
            Ok::<_, Error>(())
        })
        .concurrency(2),
    )
    .unwrap();
    app.start().await.unwrap();
    within(5, "both actors waiting", async {
        loop {
            let tbs = app.agents().actor_tracebacks();
            if tbs["waiter"]
                .iter()
                .filter(|t| t.contains("waiting for the next event"))
                .count()
                == 2
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let tbs = app.agents().actor_tracebacks();
    assert_eq!(tbs["waiter"].len(), 2);
    for tb in &tbs["waiter"] {
        assert!(tb.contains("Agent*: waiter"), "{tb}");
        assert!(tb.contains("waiting for the next event"), "{tb}");
    }
    let human = app.agents().human_tracebacks();
    assert!(human.contains("TRACEBACK OF ALL RUNNING AGENT ACTORS"));
    assert!(human.contains("* waiter ----->"));
    assert!(
        !human.contains("[\""),
        "not a debug dump of a list: {human}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bincode_and_raw_codecs_work_end_to_end() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Point {
        x: i32,
        y: i32,
    }
    let app = app("codecs").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tx2 = tx.clone();
    let bin = app
        .add_agent(
            AgentSpec::consumer("bin", move |mut s: Stream<Point>| {
                let tx = tx.clone();
                async move {
                    while let Some(p) = s.next().await {
                        let _ = tx.send(format!("{p:?}"));
                    }
                    Ok::<_, Error>(())
                }
            })
            .value_codec(faust_core::codec::Bincode),
        )
        .unwrap();
    let raw = app
        .add_agent(
            AgentSpec::consumer("raw", move |mut s: Stream<String>| {
                let tx = tx2.clone();
                async move {
                    while let Some(p) = s.next().await {
                        let _ = tx.send(p);
                    }
                    Ok::<_, Error>(())
                }
            })
            .value_codec(faust_core::codec::Raw),
        )
        .unwrap();
    app.start().await.unwrap();
    bin.send(&Point { x: 1, y: 2 }).await.unwrap();
    assert_eq!(take(&mut rx, 1).await, vec!["Point { x: 1, y: 2 }"]);
    raw.send_raw(None, Some("plain bytes".into()), None, vec![])
        .await
        .unwrap();
    assert_eq!(take(&mut rx, 1).await, vec!["plain bytes"]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_extra_stream_and_actor_from_stream_share_the_queue() {
    let app = app("extra-stream").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(AgentSpec::consumer("q", move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while let Some(v) = s.next().await {
                    let _ = tx.send(v);
                }
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    app.start().await.unwrap();
    assert_eq!(agent.channel(), agent.topic());
    let stream = agent.channel_iterator::<i64>().unwrap();
    let extra = agent.actor_from_stream(stream, Some(7)).unwrap();
    assert_eq!(extra.index(), Some(7));
    assert!(extra.active_partitions().is_empty());
    assert_eq!(agent.actor_count(), 2);
    assert!(
        agent.actor_tracebacks().iter().any(|t| t.contains("#7")),
        "{:?}",
        agent.actor_tracebacks()
    );
    for v in 0..20i64 {
        agent.send(&v).await.unwrap();
    }
    let mut got = take(&mut rx, 20).await;
    got.sort();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    app.stop().await.unwrap();
    assert_eq!(agent.actor_count(), 0, "it stops with the agent");
}

#[tokio::test]
async fn an_actor_from_a_stream_is_restarted_after_a_crash() {
    let app = app("extra-restart").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("q", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(("started", s.concurrency_index()));
                    while let Some(v) = s.next().await {
                        if v == 0 {
                            return Err(Error::config("boom"));
                        }
                    }
                    Ok::<_, Error>(())
                }
            })
            .isolated_partitions(false),
        )
        .unwrap();
    app.start().await.unwrap();
    assert_eq!(take(&mut rx, 1).await, vec![("started", None)]);
    agent
        .actor_from_stream(agent.stream::<i64>(None).unwrap(), Some(1))
        .unwrap();
    assert_eq!(take(&mut rx, 1).await, vec![("started", Some(1))]);
    // Crash both actors, one after the other: each is restarted in its slot.
    agent.send(&0).await.unwrap();
    agent.send(&0).await.unwrap();
    let mut restarted: Vec<_> = take(&mut rx, 2).await.into_iter().map(|x| x.1).collect();
    restarted.sort();
    assert_eq!(restarted, vec![None, Some(1)]);
    assert_eq!(agent.stats().restarts(), 2);
    assert_eq!(agent.actor_count(), 2);
    app.stop().await.unwrap();
}

/// A tight loop of sends to `memory://` (which never waits) still lets the
/// agents on the same thread run: sends spend tokio's cooperative budget,
/// as sends to Kafka would. Without it the agent saw nothing until the
/// loop ended and the broker had to buffer everything.
#[tokio::test(flavor = "current_thread")]
async fn a_send_loop_does_not_starve_agents_on_its_thread() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let app = app("send-loop").build().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    let agent = app
        .add_agent(AgentSpec::consumer("count", move |mut s: Stream<u64>| {
            let seen = s2.clone();
            async move {
                while s.next().await.is_some() {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    app.start().await.unwrap();
    let n = 5_000u64;
    for i in 0..n {
        agent.send(&i).await.unwrap();
    }
    let during = seen.load(Ordering::Relaxed);
    assert!(
        during > 0,
        "the agent processed nothing while {n} events were sent"
    );
    within(10, "all events processed", async {
        while seen.load(Ordering::Relaxed) < n as usize {
            tokio::task::yield_now().await;
        }
    })
    .await;
    app.stop().await.unwrap();
}

/// An agent sink resolves its target once per app: the same sink (a spec
/// copied with `to_spec`) in a second app, where the target agent has
/// another topic, still reaches that app's agent; an unknown target is a
/// clear error for the event, not a crash.
#[tokio::test]
async fn an_agent_sink_finds_its_target_in_each_app() {
    let relay = |name: &str| {
        AgentSpec::handler(name, |v: i64| async move { Ok::<_, Error>(v + 1) })
            .sink(Sink::<i64>::agent("target"))
    };
    let target = |tx: mpsc::UnboundedSender<i64>| {
        AgentSpec::consumer("target", move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while let Some(v) = s.next().await {
                    let _ = tx.send(v);
                }
                Ok::<_, Error>(())
            }
        })
    };
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let first = app("sink-app-one").build().unwrap();
    let second = app("sink-app-two").build().unwrap();
    let t1 = first.add_agent(target(tx1)).unwrap();
    let t2 = second.add_agent(target(tx2)).unwrap();
    assert_ne!(t1.topic(), t2.topic(), "default topics differ by app id");
    let r1 = first.add_agent(relay("relay")).unwrap();
    let r2 = second.add_agent(r1.to_spec()).unwrap();
    first.start().await.unwrap();
    second.start().await.unwrap();
    for v in [1, 2] {
        r1.send(&v).await.unwrap();
        r2.send(&(v * 10)).await.unwrap();
    }
    let mut got1 = take(&mut rx1, 2).await;
    let mut got2 = take(&mut rx2, 2).await;
    got1.sort();
    got2.sort();
    assert_eq!(got1, vec![2, 3]);
    assert_eq!(got2, vec![11, 21]);
    first.stop().await.unwrap();
    second.stop().await.unwrap();

    // No agent of that name in this app: the app does not start (rather
    // than failing every event at its sink).
    let third = app("sink-app-three").build().unwrap();
    third.add_agent(relay("lonely")).unwrap();
    let err = third.start().await.unwrap_err().to_string();
    assert!(err.contains("unknown agent `target`"), "{err}");
}

#[tokio::test]
async fn a_sink_to_an_unknown_agent_fails_the_start_naming_the_known_agents() {
    let typo = app("sink-typo").build().unwrap();
    let double = || {
        AgentSpec::handler("double", |x: i64| async move { Ok::<_, Error>(x * 2) })
            .sink(Sink::<i64>::agent("totlas"))
    };
    typo.add_agent(double()).unwrap();
    typo.add_agent(AgentSpec::consumer(
        "totals",
        |mut s: Stream<i64>| async move {
            while s.next().await.is_some() {}
            Ok::<_, Error>(())
        },
    ))
    .unwrap();
    let err = typo.start().await.unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid configuration: agent `double` has a sink to unknown agent `totlas`; registered agents: double, totals"
    );
    assert!(!typo.is_running().await);
    // A sink added to a running agent is checked at once.
    let fixed = app("sink-typo-2").build().unwrap();
    let agent = fixed
        .add_agent(AgentSpec::handler("double", |x: i64| async move {
            Ok::<_, Error>(x * 2)
        }))
        .unwrap();
    fixed.start().await.unwrap();
    let err = agent.add_sink(Sink::<i64>::agent("nope")).unwrap_err();
    assert!(err.to_string().contains("unknown agent `nope`"), "{err}");
    assert_eq!(agent.info().sinks, Vec::<String>::new());
    fixed.stop().await.unwrap();
}

#[tokio::test]
async fn sink_records_keep_the_source_key_or_take_the_one_given() {
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Order {
        customer: String,
        amount: i64,
    }
    let app = app("sink-keys").build().unwrap();
    // Each agent reports the key of what it receives.
    let keys_of = |name: &str, tx: mpsc::UnboundedSender<(String, Option<String>)>| {
        let name = name.to_string();
        AgentSpec::consumer(name.clone(), move |mut s: Stream<Order>| {
            let (tx, name) = (tx.clone(), name.clone());
            async move {
                while let Some(ev) = s.next_event().await {
                    let key: Option<String> = ev.key().unwrap();
                    let _ = tx.send((format!("{name} {}", ev.value.customer), key));
                }
                Ok::<_, Error>(())
            }
        })
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.add_agent(keys_of("passed", tx.clone())).unwrap();
    app.add_agent(keys_of("rekeyed", tx.clone())).unwrap();
    app.add_agent(keys_of("given", tx.clone())).unwrap();
    let forward = app
        .add_agent(
            AgentSpec::handler("forward", |o: Order| async move { Ok::<_, Error>(o) })
                .sink(Sink::<Order>::agent("passed"))
                .sink(Sink::<Order>::agent("rekeyed").key_by(|o: &Order| o.customer.clone())),
        )
        .unwrap();
    let yielding = app
        .add_agent(AgentSpec::yielding(
            "yielding",
            |mut s: Stream<Order>, out: Yield<Order>| async move {
                while let Some(o) = s.next().await {
                    out.send_keyed(&format!("k-{}", o.customer), o).await?;
                }
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    yielding.add_sink(Sink::<Order>::agent("given")).unwrap();
    app.start().await.unwrap();
    let order = Order {
        customer: "ada".into(),
        amount: 3,
    };
    forward.send_keyed(&"source-key", &order).await.unwrap();
    yielding.send(&order).await.unwrap();
    let mut got = take(&mut rx, 3).await;
    got.sort();
    assert_eq!(
        got,
        vec![
            ("given ada".to_string(), Some("k-ada".to_string())),
            ("passed ada".to_string(), Some("source-key".to_string())),
            ("rekeyed ada".to_string(), Some("ada".to_string())),
        ]
    );
    // key_by on a callback is refused: it makes no record to key.
    let err = forward
        .add_sink(Sink::callback(|_: &Order| {}).key_by(|o: &Order| o.amount))
        .unwrap_err();
    assert!(err.to_string().contains("makes no record to key"), "{err}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_agent_reads_several_topics_and_says_where_each_event_came_from() {
    let app = app("two-topics").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("both", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(ev) = s.next_event().await {
                        let _ = tx.send((ev.message().topic().to_string(), ev.value));
                    }
                    Ok::<_, Error>(())
                }
            })
            .topics(["orders-eu", "orders-us"]),
        )
        .unwrap();
    assert_eq!(agent.get_topic_names(), vec!["orders-eu", "orders-us"]);
    assert_eq!(agent.info().topics, vec!["orders-eu", "orders-us"]);
    app.start().await.unwrap();
    app.send("orders-us", &2).await.unwrap();
    app.send("orders-eu", &1).await.unwrap();
    // Sending to the agent produces to its first topic.
    agent.send(&3).await.unwrap();
    let mut got = take(&mut rx, 3).await;
    got.sort();
    assert_eq!(
        got,
        vec![
            ("orders-eu".to_string(), 1),
            ("orders-eu".to_string(), 3),
            ("orders-us".to_string(), 2),
        ]
    );
    app.stop().await.unwrap();

    // Bad lists are refused when the agent is added.
    let bad = |topics: &[&str]| {
        app.add_agent(
            AgentSpec::consumer("bad", |mut s: Stream<i64>| async move {
                while s.next().await.is_some() {}
                Ok::<_, Error>(())
            })
            .topics(topics.iter().copied()),
        )
        .unwrap_err()
        .to_string()
    };
    assert!(bad(&["a", "a"]).contains("topic `a` is listed twice"));
    assert!(bad(&["a", " "]).contains("is empty"));
}

#[tokio::test]
async fn a_pattern_agent_reads_matching_topics_including_ones_created_later() {
    let app = app("pattern").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = move |name: &'static str, tx: mpsc::UnboundedSender<(String, String, i64)>| {
        move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while let Some(ev) = s.next_event().await {
                    let _ = tx.send((name.to_string(), ev.message().topic().to_string(), ev.value));
                }
                Ok::<_, Error>(())
            }
        }
    };
    let pattern = app
        .add_agent(
            AgentSpec::consumer("all-orders", seen("all-orders", tx.clone()))
                .topic_pattern("orders-.*"),
        )
        .unwrap();
    // A named topic another agent's pattern matches goes to both.
    app.add_agent(AgentSpec::consumer("eu", seen("eu", tx.clone())).topic("orders-eu"))
        .unwrap();
    assert_eq!(
        pattern.topic_patterns().collect::<Vec<_>>(),
        vec!["orders-.*"]
    );
    app.start().await.unwrap();
    app.send("orders-eu", &1).await.unwrap();
    // Created after the start, by the first record sent to it.
    app.send("orders-us", &2).await.unwrap();
    // The whole name must match.
    app.send("old-orders-us", &3).await.unwrap();
    let mut got = take(&mut rx, 3).await;
    got.sort();
    assert_eq!(
        got,
        vec![
            ("all-orders".to_string(), "orders-eu".to_string(), 1),
            ("all-orders".to_string(), "orders-us".to_string(), 2),
            ("eu".to_string(), "orders-eu".to_string(), 1),
        ]
    );
    nothing_more(&mut rx).await;
    // An agent with only a pattern has no topic to send to.
    let err = pattern.send(&4).await.unwrap_err().to_string();
    assert!(err.contains("reads topic patterns only"), "{err}");
    app.stop().await.unwrap();

    let err = app
        .add_agent(
            AgentSpec::consumer("bad", |mut s: Stream<i64>| async move {
                while s.next().await.is_some() {}
                Ok::<_, Error>(())
            })
            .topic_pattern("orders-("),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid configuration: agent `bad`: invalid topic pattern `orders-(`"),
        "{err}"
    );
}

#[tokio::test]
async fn isolated_partitions_of_several_topics_and_a_pattern_get_an_actor_each() {
    let app = app("isolated-topics").topic_partitions(2).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("iso", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    let mine = s
                        .active_partition()
                        .expect("an isolated actor has a partition");
                    while let Some(ev) = s.next_event().await {
                        let _ = tx.send((mine.clone(), ev.message().topic_partition(), ev.value));
                    }
                    Ok::<_, Error>(())
                }
            })
            .topics(["iso-a", "iso-b"])
            .topic_pattern("iso-p-.*")
            .isolated_partitions(true),
        )
        .unwrap();
    use faust_core::transport::TopicSpec;
    app.transport()
        .create_topic(&TopicSpec::new("iso-p-1", 2))
        .await
        .unwrap();
    within(10, "start", app.start()).await.unwrap();
    let tp = |t: &str, p: i32| faust_core::TopicPartition::new(t, p);
    let all = [
        tp("iso-a", 0),
        tp("iso-a", 1),
        tp("iso-b", 0),
        tp("iso-b", 1),
        tp("iso-p-1", 0),
        tp("iso-p-1", 1),
    ];
    within(10, "an actor per topic partition", async {
        while agent.active_partitions() != all {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for (i, t) in all.iter().enumerate() {
        let mut record = faust_core::ProducerRecord::new(t.topic.clone(), i.to_string());
        record.partition = Some(t.partition);
        app.send_record(record).await.unwrap();
    }
    let seen = take(&mut rx, all.len()).await;
    for (mine, from, _) in &seen {
        assert_eq!(
            mine, from,
            "an isolated actor receives only its topic partition"
        );
    }
    let mut got: Vec<_> = seen.into_iter().map(|(_, from, v)| (from, v)).collect();
    got.sort();
    let want: Vec<_> = all.iter().cloned().zip(0..).collect();
    assert_eq!(got, want);
    within(10, "stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn tasks_spawned_with_faust_spawn_inherit_the_current_agent() {
    let app = app("spawned").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(AgentSpec::consumer("parent", move |mut s: Stream<i64>| {
            let tx = tx.clone();
            async move {
                while s.next().await.is_some() {
                    let inherited = faust_core::spawn(async {
                        faust_core::current_agent().map(|a| a.name().to_string())
                    });
                    let plain = tokio::spawn(async {
                        faust_core::current_agent().map(|a| a.name().to_string())
                    });
                    let _ = tx.send((inherited.await.unwrap(), plain.await.unwrap()));
                }
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    app.start().await.unwrap();
    agent.send(&1).await.unwrap();
    let (inherited, plain) = within(5, "the tasks", rx.recv()).await.unwrap();
    assert_eq!(inherited.as_deref(), Some("parent"));
    assert_eq!(plain, None);
    // Outside an agent it is tokio::spawn.
    let outside = faust_core::spawn(async { faust_core::current_agent().is_none() });
    assert!(outside.await.unwrap());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_async_on_error_is_awaited_before_the_failed_event_is_answered() {
    let app = app("async-on-error").build().unwrap();
    let (began_tx, mut began) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let go = release.clone();
    let agent = app
        .add_agent(
            AgentSpec::handler("fails", |v: i64| async move {
                Err::<i64, _>(Error::config(format!("no {v}")))
            })
            .on_error_async(move |agent, err| {
                let (began_tx, go) = (began_tx.clone(), go.clone());
                async move {
                    let current = current_agent().map(|a| a.name().to_string());
                    let _ = began_tx.send((agent.name().to_string(), err.to_string(), current));
                    go.notified().await;
                }
            }),
        )
        .unwrap();
    app.start().await.unwrap();
    let asking = tokio::spawn({
        let agent = agent.clone();
        async move { agent.ask::<_, i64>(&7).await }
    });
    let (name, err, current) = within(5, "on_error", began.recv()).await.unwrap();
    assert_eq!(name, "fails");
    assert!(err.contains("no 7"), "{err}");
    assert_eq!(
        current.as_deref(),
        Some("fails"),
        "current_agent() is set in on_error"
    );
    // The error reply waits for on_error.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!asking.is_finished(), "answered before on_error finished");
    release.notify_one();
    let answer = within(5, "the error reply", asking).await.unwrap();
    assert!(answer.unwrap_err().to_string().contains("no 7"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn on_error_runs_within_the_agent_after_a_crash() {
    let app = app("on-error-crash").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("crashes", |mut s: Stream<i64>| async move {
                if s.next().await.is_some() {
                    panic!("crash");
                }
                Ok::<_, Error>(())
            })
            .on_error(move |_agent, err| {
                let _ = tx.send((
                    current_agent().map(|a| a.name().to_string()),
                    err.to_string(),
                ));
            }),
        )
        .unwrap();
    app.start().await.unwrap();
    agent.send(&1).await.unwrap();
    let (current, err) = within(5, "on_error", rx.recv()).await.unwrap();
    assert_eq!(current.as_deref(), Some("crashes"));
    assert!(err.contains("panicked"), "{err}");
    app.stop().await.unwrap();
}
