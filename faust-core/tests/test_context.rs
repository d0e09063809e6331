//! `test_context()`: the agent test harness.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app;
use faust_core::testing::TestOptions;
use faust_core::{
    current_agent, AgentSpec, Error, PutOptions, Sink, Stream, SupervisorStrategy, Yield,
};

#[tokio::test]
async fn a_consumer_agent_records_its_inputs() {
    let app = app("tc-consumer").build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let agent = app
        .add_agent(AgentSpec::consumer(
            "sinkless",
            move |mut s: Stream<String>| {
                let seen = s2.clone();
                async move {
                    while let Some(v) = s.next().await {
                        seen.lock().unwrap().push(v);
                    }
                    Ok::<_, Error>(())
                }
            },
        ))
        .unwrap();
    let ctx = agent.test_context().await.unwrap();
    let event = ctx.put("hello").await.unwrap();
    assert_eq!(event.value.as_deref(), Some(&br#""hello""#[..]));
    assert_eq!((event.partition, event.offset), (0, 0));
    assert_eq!(event.topic, agent.topic());
    assert_eq!(*seen.lock().unwrap(), vec!["hello"]);
    assert_eq!(ctx.results::<String>().unwrap(), vec!["hello"]);
    ctx.stop().await.unwrap();
}

#[tokio::test]
async fn a_yielding_agent_records_its_outputs_even_two_per_input() {
    let app = app("tc-yield").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::yielding(
            "twice",
            |mut s: Stream<i64>, out: Yield<i64>| async move {
                while let Some(v) = s.next().await {
                    out.send(v).await?;
                    out.send(v + 100).await?;
                }
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    let ctx = agent.test_context().await.unwrap();
    ctx.put(&1).await.unwrap();
    ctx.put(&2).await.unwrap();
    assert_eq!(ctx.results::<i64>().unwrap(), vec![1, 101, 2, 102]);
}

#[tokio::test]
async fn a_handler_agent_records_each_result_once_with_concurrency() {
    let app = app("tc-handler").build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::handler("upper", |s: String| async move {
                Ok::<_, Error>(s.to_uppercase())
            })
            .concurrency(3),
        )
        .unwrap();
    let ctx = agent.test_context().await.unwrap();
    for w in ["a", "b", "c", "d"] {
        ctx.put(w).await.unwrap();
    }
    let mut got = ctx.results::<String>().unwrap();
    got.sort();
    assert_eq!(got, vec!["A", "B", "C", "D"]);
}

#[tokio::test]
async fn put_surfaces_the_agent_error() {
    let app = app("tc-error").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::consumer(
            "fails",
            |mut s: Stream<i64>| async move {
                while let Some(v) = s.next().await {
                    if v < 0 {
                        return Err(Error::config("negative"));
                    }
                }
                Ok(())
            },
        ))
        .unwrap();
    // By default a crash fails the test (Faust's crashing supervisor).
    let ctx = agent.test_context().await.unwrap();
    ctx.put(&1).await.unwrap();
    let err = ctx.put(&-1).await.unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
    let t0 = std::time::Instant::now();
    let err = ctx.put(&2).await.unwrap_err();
    assert!(matches!(err, Error::Crashed(_)), "{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "said at once, not at the deadline"
    );
    // With a restarting strategy the next put works.
    let ctx = agent
        .test_context_with(TestOptions::default().supervisor(SupervisorStrategy::OneForOne))
        .await
        .unwrap();
    let err = ctx.put(&-1).await.unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
    ctx.put(&2).await.unwrap();
}

#[tokio::test]
async fn on_error_and_the_input_channel_can_be_given() {
    let app = app("tc-options").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::handler("picky", |v: i64| async move {
            if v < 0 {
                return Err(Error::config("negative"));
            }
            Ok::<_, Error>(v * 10)
        }))
        .unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let ctx = agent
        .test_context_with(
            TestOptions::default()
                .on_error(move |agent, err| {
                    seen.lock()
                        .unwrap()
                        .push(format!("{}: {err}", agent.name()));
                })
                .channel("picky-input")
                .timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    assert!(ctx.agent().reads_channel());
    assert_eq!(ctx.agent().channel(), "picky-input");
    let event = ctx.put(&4).await.unwrap();
    assert_eq!(event.topic, "picky-input");
    assert!(ctx.put(&-1).await.is_err());
    assert_eq!(ctx.results::<i64>().unwrap(), vec![40]);
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("picky: ") && errors[0].contains("negative"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn an_agent_sinking_into_another_agent_runs_in_a_test_context() {
    let app = app("tc-agent-sink").build().unwrap();
    app.add_agent(AgentSpec::consumer(
        "totals",
        |mut s: Stream<i64>| async move {
            while s.next().await.is_some() {}
            Ok::<_, Error>(())
        },
    ))
    .unwrap();
    let double = app
        .add_agent(
            AgentSpec::handler("double", |v: i64| async move { Ok::<_, Error>(v * 2) })
                .sink(Sink::<i64>::agent("@totals")),
        )
        .unwrap();
    let ctx = double.test_context().await.unwrap();
    ctx.put(&21).await.unwrap();
    assert_eq!(ctx.results::<i64>().unwrap(), vec![42]);
    // The value went to the stand-in's topic on the private broker.
    let totals = ctx.app().agent("totals").unwrap();
    assert!(totals.is_remote());
    let topic = totals.topic().to_string();
    let transport = ctx.app().transport();
    let partitions = transport.partition_count(&topic).await.unwrap().unwrap();
    let tps = (0..partitions)
        .map(|p| faust_core::TopicPartition::new(topic.as_str(), p))
        .collect();
    let mut consumer = transport.assign(tps).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let faust_core::transport::ConsumerEvent::Records(r) = consumer.poll().await.unwrap()
            {
                if let Some(r) = r.into_iter().next() {
                    return r.value;
                }
            }
        }
    })
    .await
    .unwrap();
    assert!(got.is_some());
}

#[tokio::test]
async fn a_sink_that_fails_makes_put_fail() {
    let app = app("tc-sink").build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::handler("h", |x: i64| async move { Ok::<_, Error>(x) }).sink(
                Sink::callback(|v: &i64| if *v == 13 { Err("unlucky") } else { Ok(()) }),
            ),
        )
        .unwrap();
    let ctx = agent.test_context().await.unwrap();
    ctx.put(&1).await.unwrap();
    let err = ctx.put(&13).await.unwrap_err();
    assert!(err.to_string().contains("unlucky"), "{err}");
}

#[tokio::test]
async fn a_filtered_input_does_not_hang_put() {
    let app = app("tc-filter").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::yielding(
            "evens",
            |mut s: Stream<i64>, out: Yield<i64>| async move {
                while let Some(v) = s.next().await {
                    if v % 2 == 0 {
                        out.send(v).await?;
                    }
                }
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    let ctx = agent.test_context().await.unwrap();
    ctx.put(&1).await.unwrap();
    ctx.put(&2).await.unwrap();
    assert_eq!(ctx.results::<i64>().unwrap(), vec![2]);
}

#[tokio::test]
async fn put_times_out_with_a_clear_error_when_the_agent_is_stuck() {
    let app = app("tc-stuck").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::consumer(
            "stuck",
            |mut s: Stream<i64>| async move {
                s.next().await;
                std::future::pending::<()>().await;
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    let ctx = agent.test_context().await.unwrap();
    let err = ctx
        .put_with(
            &1,
            PutOptions::default().timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    // no_wait returns at once.
    ctx.put_with(&2, PutOptions::default().no_wait())
        .await
        .unwrap();
}

#[tokio::test]
async fn key_partition_and_headers_reach_the_event() {
    let app = app("tc-meta").build().unwrap();
    let got = Arc::new(Mutex::new(None));
    let g2 = got.clone();
    let agent = app
        .add_agent(AgentSpec::consumer("meta", move |mut s: Stream<i64>| {
            let got = g2.clone();
            async move {
                while let Some(ev) = s.next_event().await {
                    let m = ev.message();
                    *got.lock().unwrap() = Some((
                        ev.key::<String>().unwrap(),
                        m.partition(),
                        m.headers().clone(),
                        current_agent().map(|a| a.name().to_string()),
                    ));
                }
                Ok::<_, Error>(())
            }
        }))
        .unwrap();
    let ctx = agent.test_context().await.unwrap();
    ctx.put_with(
        &5,
        PutOptions::default()
            .key("k1")
            .partition(3)
            .header("trace", "abc"),
    )
    .await
    .unwrap();
    let (key, partition, headers, who) = got.lock().unwrap().clone().unwrap();
    assert_eq!(key.as_deref(), Some("k1"));
    assert_eq!(partition, 3);
    assert_eq!(
        headers,
        vec![("trace".to_string(), bytes::Bytes::from_static(b"abc"))]
    );
    assert_eq!(who.as_deref(), Some("meta"));
}

#[tokio::test]
async fn a_stream_producer_answers_and_records_each_value() {
    use futures::StreamExt;
    let app = app("tc-producer").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::producer("tenfold", |s: Stream<i64>| {
            s.map(|v| Ok::<_, Error>(v * 10))
        }))
        .unwrap();
    assert!(agent.produces_values());
    let ctx = agent.test_context().await.unwrap();
    ctx.put(&1).await.unwrap();
    ctx.put(&2).await.unwrap();
    assert_eq!(ctx.results::<i64>().unwrap(), vec![10, 20]);
    // The same form answers requests.
    app.start().await.unwrap();
    let r: i64 = agent.ask(&7).await.unwrap();
    assert_eq!(r, 70);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn results_are_keyed_by_the_offset_of_the_event_they_answer() {
    let app = app("tc-by-offset").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::yielding(
            "twice_or_never",
            |mut s: Stream<i64>, out: Yield<i64>| async move {
                while let Some(v) = s.next().await {
                    // Odd values give two results, even ones none.
                    if v % 2 == 1 {
                        out.send(v).await?;
                        out.send(v * 100).await?;
                    }
                }
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    let ctx = agent.test_context().await.unwrap();
    let one = ctx.put(&1).await.unwrap();
    let two = ctx.put(&2).await.unwrap();
    let three = ctx.put(&3).await.unwrap();
    assert_eq!(ctx.results_for::<i64>(&one).unwrap(), vec![1, 100]);
    assert!(ctx.results_for::<i64>(&two).unwrap().is_empty());
    let by_offset = ctx.results_by_offset::<i64>().unwrap();
    assert_eq!(
        by_offset.into_iter().collect::<Vec<_>>(),
        vec![(one.offset, vec![1, 100]), (three.offset, vec![3, 300])]
    );
}

#[tokio::test]
async fn the_outputs_can_be_awaited_one_by_one() {
    let app = app("tc-next").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::handler("inc", |v: i64| async move {
            Ok::<_, Error>(v + 1)
        }))
        .unwrap();
    let ctx = agent
        .test_context_with(TestOptions::default().timeout(Duration::from_millis(500)))
        .await
        .unwrap();
    for v in [10, 20, 30] {
        ctx.put_with(&v, PutOptions::default().no_wait())
            .await
            .unwrap();
    }
    assert_eq!(ctx.next_result::<i64>().await.unwrap(), 11);
    let rest: Vec<Result<i64, Error>> = {
        use futures::StreamExt;
        ctx.outputs::<i64>().collect().await
    };
    // 21 and 31, then the timeout ends the stream.
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert_eq!(rest[0].as_ref().unwrap(), &21);
    assert_eq!(rest[1].as_ref().unwrap(), &31);
    assert!(matches!(rest[2], Err(Error::Timeout { .. })), "{rest:?}");
}

/// A consumer that reports each value it reads.
fn reporting(
    app: &faust_core::App,
    tx: tokio::sync::mpsc::UnboundedSender<i64>,
) -> faust_core::Agent {
    app.add_agent(AgentSpec::consumer("reads", move |mut s: Stream<i64>| {
        let tx = tx.clone();
        async move {
            while let Some(v) = s.next().await {
                let _ = tx.send(v);
            }
            Ok::<_, Error>(())
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn an_error_thrown_into_the_agent_crashes_it_as_its_own_would() {
    let app = app("tc-throw").build().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let agent = reporting(&app, tx);
    // Default: the crashing supervisor, so the copy crashes with it.
    let ctx = agent.test_context().await.unwrap();
    ctx.put(&1).await.unwrap();
    assert_eq!(rx.recv().await, Some(1));
    ctx.throw(Error::config("thrown in")).unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), ctx.app().wait_crashed())
        .await
        .unwrap();
    assert!(reason.to_string().contains("thrown in"), "{reason}");
    assert!(matches!(ctx.put(&2).await, Err(Error::Crashed(_))));
    // One-for-one: restarted, and it reads on.
    let ctx = agent
        .test_context_with(TestOptions::default().supervisor(SupervisorStrategy::OneForOne))
        .await
        .unwrap();
    ctx.throw(Error::config("thrown in")).unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while ctx.agent().stats().restarts() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    ctx.put(&3).await.unwrap();
    assert_eq!(rx.recv().await, Some(3));
}
