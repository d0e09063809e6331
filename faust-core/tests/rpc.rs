//! Agent RPC on the embedded broker, including the Faust faults we fix.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{app, within};
use faust_core::transport::ConsumerEvent;
use faust_core::wire::{self, ReqRepRequest, ReqRepResponse};
use faust_core::{AgentSpec, App, Error, Record, SendOptions, Sink, Stream, TopicPartition, Yield};
use futures::StreamExt;

fn doubler(app: &App, headers: bool) -> faust_core::Agent {
    app.add_agent(
        AgentSpec::handler("double", |x: i64| async move { Ok::<_, Error>(x * 2) })
            .use_reply_headers(headers)
            .concurrency(2),
    )
    .unwrap()
}

async fn records(app: &App, topic: &str, n: usize) -> Vec<Record> {
    let mut c = app
        .transport()
        .assign(vec![TopicPartition::new(topic, 0)])
        .await
        .unwrap();
    let mut out = Vec::new();
    within(5, "records", async {
        while out.len() < n {
            if let ConsumerEvent::Records(r) = c.poll().await.unwrap() {
                out.extend(r);
            }
        }
    })
    .await;
    out
}

#[tokio::test]
async fn ask_in_headers_mode() {
    let app = app("ask-headers").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    let r: i64 = agent.ask(&21).await.unwrap();
    assert_eq!(r, 42);
    assert_eq!(app.replies().pending(), 0, "entry removed once answered");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ask_in_envelope_mode() {
    let app = app("ask-envelope").build().unwrap();
    let agent = doubler(&app, false);
    app.start().await.unwrap();
    let r: i64 = agent.ask(&5).await.unwrap();
    assert_eq!(r, 10);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn requests_and_replies_use_faust_wire_format() {
    let app = app("wire").topic_partitions(1).build().unwrap();
    let h = app
        .add_agent(
            AgentSpec::handler("h", |x: i64| async move { Ok::<_, Error>(x + 1) }).topic("h-topic"),
        )
        .unwrap();
    let e = app
        .add_agent(
            AgentSpec::handler("e", |x: i64| async move { Ok::<_, Error>(x + 1) })
                .topic("e-topic")
                .use_reply_headers(false),
        )
        .unwrap();
    app.start().await.unwrap();
    let opts = || SendOptions::default().correlation_id("cid-1").key("k");
    let _: i64 = h.ask_with(&1, opts()).await.unwrap();
    let _: i64 = e.ask_with(&1, opts()).await.unwrap();
    let reply_to = app.config().reply_to.clone();

    let req = &records(&app, "h-topic", 1).await[0];
    assert_eq!(
        req.value.as_deref(),
        Some(&b"1"[..]),
        "headers mode: value unchanged"
    );
    assert_eq!(req.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(
        wire::request_from_headers(&req.headers),
        Some((reply_to.clone(), Some("cid-1".to_string())))
    );
    let req = &records(&app, "e-topic", 1).await[0];
    let expected = format!(
        r#"{{"value":1,"reply_to":"{reply_to}","correlation_id":"cid-1","__faust":{{"ns":"@ReqRepRequest"}}}}"#
    );
    assert_eq!(
        std::str::from_utf8(req.value.as_deref().unwrap()).unwrap(),
        expected
    );

    let replies = records(&app, &reply_to, 2).await;
    for r in &replies {
        assert_eq!(r.key, None, "the reply record key is null");
        assert_eq!(
            std::str::from_utf8(r.value.as_deref().unwrap()).unwrap(),
            r#"{"key":"k","value":2,"correlation_id":"cid-1","__faust":{"ns":"@ReqRepResponse"}}"#,
            "the request key is copied inside"
        );
    }
    assert_eq!(
        app.transport().partition_count(&reply_to).await.unwrap(),
        Some(1)
    );
    assert!(reply_to.starts_with("f-reply-"));
    assert_eq!(reply_to.len(), "f-reply-".len() + 36, "uuid4 suffix");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ask_times_out_naming_the_agent_when_a_request_is_skipped() {
    let app = app("ask-skip").build().unwrap();
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
    app.start().await.unwrap();
    let err = agent
        .ask_with::<_, i64>(
            &1,
            SendOptions::default().timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    // The error names the agent, the step and the deadline, and states
    // the time actually spent (at least the deadline).
    assert!(
        err.to_string().contains(
            "ask to agent `evens` while waiting for the reply (deadline 200ms) timed out after"
        ),
        "{err}"
    );
    match err {
        Error::Timeout { after, .. } => assert!(after >= Duration::from_millis(200), "{after:?}"),
        other => panic!("expected a timeout, got {other}"),
    }
    assert_eq!(app.replies().pending(), 0, "the abandoned entry is freed");
    let ok: i64 = agent.ask(&2).await.unwrap();
    assert_eq!(ok, 2);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ask_timeout_defaults_to_the_app_setting() {
    let app = app("ask-default")
        .ask_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let agent = app
        .add_agent(AgentSpec::consumer(
            "silent",
            |mut s: Stream<i64>| async move {
                while s.next().await.is_some() {}
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    app.start().await.unwrap();
    let err = agent.ask::<_, i64>(&1).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_agent_answers_with_an_error() {
    let app = app("ask-error").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::handler("picky", |x: i64| async move {
            if x < 0 {
                Err(Error::config("negative input"))
            } else {
                Ok(x)
            }
        }))
        .unwrap();
    app.start().await.unwrap();
    let err = agent.ask::<_, i64>(&-1).await.unwrap_err();
    match &err {
        Error::Remote { agent, message } => {
            assert_eq!(agent, "picky");
            assert!(message.contains("negative input"), "{message}");
        }
        other => panic!("expected a remote error, got {other}"),
    }
    let ok: i64 = agent.ask(&3).await.unwrap();
    assert_eq!(ok, 3, "the handler goes on after a failed event");
    // A request that cannot be decoded is answered with the decode error too.
    let err = agent.ask::<_, i64>(&"not a number").await.unwrap_err();
    assert!(err.to_string().contains("cannot decode"), "{err}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn map_yields_as_they_arrive_and_join_keeps_input_order() {
    let app = app("map-join").build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::handler("slow-double", |x: i64| async move {
                // Later inputs finish first.
                tokio::time::sleep(Duration::from_millis((10 - x as u64 % 10) * 3)).await;
                Ok::<_, Error>(x * 2)
            })
            .concurrency(10),
        )
        .unwrap();
    app.start().await.unwrap();
    let mut mapped: Vec<i64> = agent
        .map::<_, i64, _>(0..10i64)
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(mapped.len(), 10);
    mapped.sort();
    assert_eq!(mapped, (0..10).map(|x| x * 2).collect::<Vec<_>>());
    let joined: Vec<i64> = agent.join(0..10i64).await.unwrap();
    assert_eq!(joined, (0..10).map(|x| x * 2).collect::<Vec<_>>());
    let kv: Vec<i64> = agent
        .kvjoin((0..5i64).map(|x| (Some(format!("k{x}")), x)))
        .await
        .unwrap();
    assert_eq!(kv, vec![0, 2, 4, 6, 8]);
    let kvm: Vec<i64> = agent
        .kvmap::<_, _, i64, _>((0..3i64).map(|x| (Some(x.to_string()), x)))
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(kvm.len(), 3);
    assert_eq!(app.replies().pending(), 0);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_of_ten_thousand_values_has_no_size_limit() {
    let app = app("join-10k").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    let values: Vec<i64> = (0..10_000).collect();
    let joined: Vec<i64> = within(60, "join 10k", agent.join(values.clone()))
        .await
        .unwrap();
    assert_eq!(joined, values.iter().map(|x| x * 2).collect::<Vec<_>>());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_simultaneous_askers_each_get_their_own_answer() {
    let app = app("askers").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    let tasks: Vec<_> = (0..500i64)
        .map(|i| {
            let agent = agent.clone();
            tokio::spawn(async move { (i, agent.ask::<_, i64>(&i).await.unwrap()) })
        })
        .collect();
    for t in tasks {
        let (i, r) = within(30, "asker", t).await.unwrap();
        assert_eq!(r, i * 2);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_and_duplicate_replies_are_ignored() {
    let app = app("dup-replies").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::yielding(
            "twice",
            |mut s: Stream<i64>, out: Yield<i64>| async move {
                while let Some(v) = s.next().await {
                    out.send(v).await?;
                    out.send(v + 1).await?; // a second reply with the same correlation id
                }
                Ok::<_, Error>(())
            },
        ))
        .unwrap();
    app.start().await.unwrap();
    let reply_to = app.config().reply_to.clone();
    let first: i64 = agent.ask(&10).await.unwrap();
    assert_eq!(first, 10, "the asker takes the first reply");
    // A reply nobody waits for.
    let stray = ReqRepResponse::new(serde_json::Value::Null, 5.into(), "nobody");
    app.send_bytes(&reply_to, None, Some(stray.encode().into()), vec![])
        .await
        .unwrap();
    app.send_bytes(&reply_to, None, Some("garbage".into()), vec![])
        .await
        .unwrap();
    // The reply consumer survived all of it.
    let again: i64 = agent.ask(&20).await.unwrap();
    assert_eq!(again, 20);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_promise_is_registered_before_the_request_is_sent() {
    // The reply consumer is assigned before the first request: even an agent
    // answering at once never loses the reply (no 3 s sleep, no race).
    let app = app("early").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    for i in 0..50i64 {
        let r: i64 = within(5, "fast ask", agent.ask(&i)).await.unwrap();
        assert_eq!(r, i * 2);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ask_nowait_returns_a_promise() {
    let app = app("nowait").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    let p = agent.ask_nowait(&4, SendOptions::default()).await.unwrap();
    assert_eq!(p.reply_to(), app.config().reply_to);
    assert_eq!(p.correlation_id().len(), 36);
    let v = within(5, "promise", p.wait()).await.unwrap();
    assert_eq!(v, serde_json::json!(8));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn replies_go_to_the_current_event_and_sinks_get_every_value() {
    // test_slurp / test_slurp__headers: a request gets a reply, a plain
    // event does not, and both values reach the sinks.
    let app = app("slurp").build().unwrap();
    let sunk = Arc::new(Mutex::new(Vec::new()));
    let s2 = sunk.clone();
    let agent = app
        .add_agent(
            AgentSpec::handler("echo", |s: String| async move { Ok::<_, Error>(s) }).sink(
                Sink::callback(move |v: &String| s2.lock().unwrap().push(v.clone())),
            ),
        )
        .unwrap();
    app.start().await.unwrap();
    agent.send(&"plain").await.unwrap();
    let r: String = agent.ask(&"request").await.unwrap();
    assert_eq!(r, "request");
    assert_eq!(*sunk.lock().unwrap(), vec!["plain", "request"]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn send_with_reply_to_and_an_envelope_from_a_faust_client() {
    let app = app("send-reply").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    // Like a Python client: an envelope with our own reply topic.
    let reply_to = "my-replies";
    let promise = faust_core::ReplyPromise::new(reply_to, "abc").unwrap();
    app.replies().start(reply_to).await.unwrap();
    app.replies().add("abc", Arc::new(promise.clone()));
    let req = ReqRepRequest::new(7.into(), reply_to, "abc").encode();
    agent
        .send_raw(None, Some(req.into()), None, vec![])
        .await
        .unwrap();
    assert_eq!(
        within(5, "reply", promise.wait()).await.unwrap(),
        serde_json::json!(14)
    );
    // send_with(reply_to) produces a request without waiting.
    let meta = agent
        .send_with(
            &1,
            SendOptions::default()
                .reply_to(reply_to)
                .correlation_id("x"),
        )
        .await
        .unwrap();
    assert_eq!(&*meta.topic, agent.topic());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn records_map_to_structs_and_back() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Add {
        a: i64,
        b: i64,
    }
    let app = app("structs").build().unwrap();
    let agent = app
        .add_agent(AgentSpec::handler("add", |x: Add| async move {
            Ok::<_, Error>(x.a + x.b)
        }))
        .unwrap();
    app.start().await.unwrap();
    let r: i64 = agent.ask(&Add { a: 2, b: 3 }).await.unwrap();
    assert_eq!(r, 5);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ask_latency_is_counted() {
    let app = app("ask-stats").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    for i in 0..3i64 {
        let _: i64 = agent.ask(&i).await.unwrap();
    }
    assert_eq!(agent.stats().asks(), 3);
    assert!(agent.stats().mean_ask_latency().unwrap() > Duration::ZERO);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_undecodable_envelope_request_gets_an_error_reply() {
    let app = app("bad-envelope").build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::handler("num", |x: i64| async move { Ok::<_, Error>(x) })
                .use_reply_headers(false),
        )
        .unwrap();
    app.start().await.unwrap();
    let err = agent
        .ask_with::<_, i64>(
            &"text",
            SendOptions::default().timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote { .. }),
        "an error reply, not a timeout: {err}"
    );
    assert!(err.to_string().contains("cannot decode"), "{err}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_remote_agent_is_called_but_never_consumed_here() {
    let url = format!("memory://remote-{}", uuid::Uuid::new_v4());
    let server = App::builder("server").broker(&url).build().unwrap();
    server
        .add_agent(
            AgentSpec::handler("triple", |x: i64| async move { Ok::<_, Error>(x * 3) })
                .topic("triple"),
        )
        .unwrap();
    server.start().await.unwrap();
    let client = App::builder("client").broker(&url).build().unwrap();
    let triple = client
        .add_agent(AgentSpec::remote("triple").topic("triple"))
        .unwrap();
    assert!(triple.is_remote());
    client.start().await.unwrap();
    assert_eq!(triple.actor_count(), 0, "nothing consumes the topic here");
    assert!(client.agents().topics().is_empty());
    let r: i64 = triple.ask(&5).await.unwrap();
    assert_eq!(r, 15);
    let all: Vec<i64> = triple.join([1, 2, 3]).await.unwrap();
    assert_eq!(all, vec![3, 6, 9]);
    client.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn repeated_reply_headers_follow_faust_last_one_wins() {
    // Faust reads headers into a dict: when a name repeats, the last value
    // wins. The server side here reads them by the same rule as the wire
    // module's parser.
    let app = app("repeated-headers").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    let headers = vec![
        (
            wire::REPLY_TO_HEADER.to_owned(),
            bytes::Bytes::from_static(b"first-reply"),
        ),
        (
            wire::CORRELATION_ID_HEADER.to_owned(),
            bytes::Bytes::from_static(b"old"),
        ),
        (
            wire::REPLY_TO_HEADER.to_owned(),
            bytes::Bytes::from_static(b"last-reply"),
        ),
        (
            wire::CORRELATION_ID_HEADER.to_owned(),
            bytes::Bytes::from_static(b"new"),
        ),
    ];
    app.send_bytes(
        agent.topic(),
        None,
        Some(bytes::Bytes::from_static(b"21")),
        headers,
    )
    .await
    .unwrap();
    let reply = records(&app, "last-reply", 1).await;
    let response = ReqRepResponse::decode(reply[0].value.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(response.correlation_id, "new");
    assert_eq!(response.value, serde_json::json!(42));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_send_can_encode_its_value_with_another_codec() {
    let app = app("send-codec").build().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("raw", move |mut s: Stream<String>| {
                let tx = tx.clone();
                async move {
                    while let Some(v) = s.next().await {
                        let _ = tx.send(v);
                    }
                    Ok::<_, Error>(())
                }
            })
            .value_codec(faust_core::codec::Raw),
        )
        .unwrap();
    app.start().await.unwrap();
    agent.send(&"plain").await.unwrap();
    agent
        .send_with(
            &"quoted",
            SendOptions::default().value_codec(faust_core::codec::Json),
        )
        .await
        .unwrap();
    let first = within(5, "first", rx.recv()).await.unwrap();
    let second = within(5, "second", rx.recv()).await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("plain", "\"quoted\""));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn cast_takes_the_options_of_send() {
    let app = app("cast-with").build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::consumer("sink", |mut s: Stream<i64>| async move {
                while s.next().await.is_some() {}
                Ok::<_, Error>(())
            })
            .topic("cast-with")
            .partitions(2),
        )
        .unwrap();
    app.start().await.unwrap();
    let opts = SendOptions::default()
        .key("k")
        .partition(0)
        .timestamp(1_700_000_000_000)
        .header("h", "v");
    within(5, "cast", agent.cast_with(&7, opts)).await.unwrap();
    let got = records(&app, "cast-with", 1).await;
    let r = &got[0];
    assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(r.timestamp, 1_700_000_000_000);
    assert!(r.headers.iter().any(|(n, v)| n == "h" && &v[..] == b"v"));
    assert_eq!(r.value.as_deref(), Some(&b"7"[..]));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn map_yields_results_while_its_inputs_are_still_coming() {
    let app = app("map-interleaved").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    // The second input is only given once the first result is in: a map
    // that sent every request before reading a result would wait forever.
    let (first_in_tx, first_in) = tokio::sync::oneshot::channel::<()>();
    let inputs = futures::stream::once(async { 1 }).chain(futures::stream::once(async move {
        first_in.await.unwrap();
        2
    }));
    let opts = SendOptions::default().timeout(Duration::from_secs(5));
    let mut results = std::pin::pin!(agent.map_with::<_, i64, _>(inputs, opts));
    assert_eq!(
        within(5, "first", results.next()).await.unwrap().unwrap(),
        2
    );
    first_in_tx.send(()).unwrap();
    assert_eq!(
        within(5, "second", results.next()).await.unwrap().unwrap(),
        4
    );
    assert!(within(5, "the end", results.next()).await.is_none());
    app.stop().await.unwrap();
}

/// A yielding agent answering each request with its value and key, and
/// skipping (never answering) the value 2.
fn keyed_echo(app: &App) -> faust_core::Agent {
    app.add_agent(AgentSpec::yielding(
        "echo",
        |mut s: Stream<i64>, out: Yield<(i64, Option<String>)>| async move {
            while let Some(event) = s.next_event().await {
                if event.value != 2 {
                    let key: Option<String> = event.key()?;
                    out.send((event.value, key)).await?;
                }
            }
            Ok::<_, Error>(())
        },
    ))
    .unwrap()
}

#[tokio::test]
async fn join_and_map_take_a_key_a_reply_topic_and_a_deadline() {
    let app = app("join-options").build().unwrap();
    let agent = keyed_echo(&app);
    app.start().await.unwrap();
    let opts = SendOptions::default()
        .key("k")
        .reply_to("my-replies")
        .timeout(Duration::from_secs(5));
    let got: Vec<(i64, Option<String>)> = agent
        .join_with(futures::stream::iter([1, 3]), opts.clone())
        .await
        .unwrap();
    assert_eq!(got, vec![(1, Some("k".into())), (3, Some("k".into()))]);
    assert!(app.replies().is_reading("my-replies"));
    // A key per input wins over the options' key.
    let got: Vec<(i64, Option<String>)> = agent
        .kvjoin_with(
            futures::stream::iter([(Some("a"), 1), (None, 3)]),
            opts.clone(),
        )
        .await
        .unwrap();
    assert_eq!(got, vec![(1, Some("a".into())), (3, Some("k".into()))]);
    // The deadline is the call's: the unanswered 2 fails the join at it.
    let t0 = std::time::Instant::now();
    let err = agent
        .join_with::<_, (i64, Option<String>), _>(
            futures::stream::iter([1, 2]),
            opts.clone().timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { what, .. } if what.contains("1 of 2 replies")),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let results: Vec<Result<(i64, Option<String>), Error>> = agent
        .map_with(
            futures::stream::iter([1, 2]),
            opts.timeout(Duration::from_millis(300)),
        )
        .collect()
        .await;
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap().0, 1);
    assert!(
        matches!(results[1], Err(Error::Timeout { .. })),
        "{results:?}"
    );
    assert_eq!(app.replies().pending(), 0, "every registration is gone");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_partial_join_returns_what_arrived_and_names_the_missing() {
    let app = app("join-partial").build().unwrap();
    let agent = keyed_echo(&app);
    app.start().await.unwrap();
    let opts = SendOptions::default().timeout(Duration::from_millis(300));
    let got = agent
        .join_partial_with::<_, (i64, Option<String>), _>(futures::stream::iter([1, 2, 3]), opts)
        .await
        .unwrap();
    assert!(!got.is_complete());
    assert_eq!(got.missing(), vec![1]);
    let slots: Vec<Option<i64>> = got
        .into_vec()
        .into_iter()
        .map(|slot| slot.map(|r| r.unwrap().0))
        .collect();
    assert_eq!(slots, vec![Some(1), None, Some(3)]);
    // Complete when every input answers.
    let all = agent
        .join_partial_with::<_, (i64, Option<String>), _>(
            futures::stream::iter([4, 5]),
            SendOptions::default(),
        )
        .await
        .unwrap();
    assert!(all.is_complete() && all.len() == 2);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_delivery_callback_hears_of_every_record_sent() {
    let app = app("on-delivery").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let opts = {
        let heard = heard.clone();
        SendOptions::default().on_delivery(move |outcome| {
            heard.lock().unwrap().push(
                outcome
                    .as_ref()
                    .map(|m| m.offset)
                    .map_err(|e| e.to_string()),
            );
        })
    };
    let meta = agent.send_with(&1, opts.clone()).await.unwrap();
    assert_eq!(*heard.lock().unwrap(), vec![Ok(meta.offset)]);
    let _: i64 = agent.ask_with(&2, opts.clone()).await.unwrap();
    let _: Vec<i64> = agent
        .join_with(futures::stream::iter([3, 4, 5]), opts.clone())
        .await
        .unwrap();
    assert_eq!(heard.lock().unwrap().len(), 5);
    assert!(heard.lock().unwrap().iter().all(Result::is_ok));
    // A send that fails is heard of too.
    heard.lock().unwrap().clear();
    let err = agent.send_with(&6, opts.partition(99)).await.unwrap_err();
    let failed = heard.lock().unwrap().clone();
    assert_eq!(failed, vec![Err(err.to_string())]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn promises_sharing_a_correlation_id_all_get_its_reply() {
    let app = app("shared-cid").build().unwrap();
    let agent = doubler(&app, true);
    app.start().await.unwrap();
    let opts = SendOptions::default().correlation_id("one-id");
    let first = agent.ask_nowait(&21, opts.clone()).await.unwrap();
    let second = agent.ask_nowait(&21, opts).await.unwrap();
    assert_eq!(within(5, "first", first.wait()).await.unwrap(), 42);
    assert_eq!(within(5, "second", second.wait()).await.unwrap(), 42);
    app.stop().await.unwrap();
}
