//! Topic objects (`App::topic`, `Topic`) through the public API, on the
//! embedded broker: codecs, sinks, sends, creation at start and the check
//! of an existing topic's settings.

mod common;

use std::time::Duration;

use common::{app, take, within};
use faust_core::transport::{CleanupPolicy, ConsumerEvent, TopicSpec};
use faust_core::{AgentSpec, App, CodecRef, Error, Record, Sink, Stream, Topic, TopicPartition};
use tokio::sync::mpsc;

/// Every record of `topic` (partitions `0..partitions`) until `n` are read.
async fn read(app: &App, topic: &str, partitions: i32, n: usize) -> Vec<Record> {
    let tps = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let mut consumer = app.transport().assign(tps).await.unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        if let ConsumerEvent::Records(records) =
            within(10, "records", consumer.poll()).await.unwrap()
        {
            out.extend(records);
        }
    }
    out
}

#[tokio::test]
async fn an_agent_reads_a_topic_with_the_topics_codec() {
    let app = app("topic-codec").build().unwrap();
    let readings = app.topic(Topic::new("readings").value_codec(CodecRef::BINCODE));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("reader", move |mut s: Stream<i64>| {
                let tx = tx.clone();
                async move {
                    while let Some(v) = s.next().await {
                        let _ = tx.send(v);
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic(&readings),
        )
        .unwrap();
    assert_eq!(agent.value_codec(), &CodecRef::BINCODE);
    assert_eq!(agent.topic(), "readings");
    app.start().await.unwrap();
    app.send_to(&readings, &41_i64).await.unwrap();
    agent.send(&42_i64).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [41, 42]);
    let records = read(&app, "readings", 8, 2).await;
    let first = records.iter().find(|r| r.offset == 0).unwrap();
    assert_eq!(
        first.value.as_deref(),
        Some(&CodecRef::BINCODE.encode(&41_i64).unwrap()[..]),
        "sent with the topic's codec"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_agents_own_codec_wins_over_the_topics() {
    let app = app("topic-codec-own").build().unwrap();
    let t = Topic::new("mixed")
        .value_codec(CodecRef::BINCODE)
        .key_codec(CodecRef::JSON);
    let agent = app
        .add_agent(
            AgentSpec::handler("h", |x: i64| async move { Ok::<_, Error>(x) })
                .topic(t)
                .value_codec(CodecRef::JSON),
        )
        .unwrap();
    assert_eq!(agent.value_codec(), &CodecRef::JSON);
    assert_eq!(agent.key_codec(), &CodecRef::JSON, "the topic's key codec");
}

#[tokio::test]
async fn a_sink_to_a_topic_is_created_at_start_and_encodes_with_its_codec() {
    let app = app("topic-sink").build().unwrap();
    let doubled = Topic::new("doubled")
        .partitions(2)
        .value_codec(CodecRef::BINCODE);
    let agent = app
        .add_agent(
            AgentSpec::handler("double", |x: i64| async move { Ok::<_, Error>(x * 2) })
                .sink(Sink::<i64>::topic(&doubled)),
        )
        .unwrap();
    app.start().await.unwrap();
    let found = app.transport().describe_topic("doubled").await.unwrap();
    assert_eq!(found.map(|s| s.partitions), Some(2), "created at start");
    agent.send(&21_i64).await.unwrap();
    let records = read(&app, "doubled", 2, 1).await;
    let value: i64 = CodecRef::BINCODE
        .decode(records[0].value.as_deref().unwrap())
        .unwrap();
    assert_eq!(value, 42);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn send_keyed_to_encodes_the_key_with_the_topics_key_codec() {
    let app = app("topic-keyed").build().unwrap();
    let orders = app.topic(Topic::new("orders").partitions(1).key_codec(CodecRef::JSON));
    app.start().await.unwrap();
    app.send_keyed_to(&orders, "customer-7", &"apples")
        .await
        .unwrap();
    let raw = app.topic("plain");
    app.send_keyed_to(&raw, "k", &1).await.unwrap();
    let records = read(&app, "orders", 1, 1).await;
    assert_eq!(records[0].key.as_deref(), Some(&b"\"customer-7\""[..]));
    assert_eq!(records[0].value.as_deref(), Some(&b"\"apples\""[..]));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_topic_with_other_partitions_than_declared_fails_start() {
    let app = app("topic-mismatch").build().unwrap();
    app.transport()
        .create_topic(&TopicSpec::new("orders", 2))
        .await
        .unwrap();
    app.topic(Topic::new("orders").partitions(4));
    let err = app.start().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::TopicMismatch { topic, setting: "partitions", wanted, found }
                if topic == "orders" && wanted == "4" && found == "2"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "topic `orders` exists with partitions 2, but the app declares partitions 4: change \
         the declaration to match, or alter or delete the topic on the broker"
    );
    assert!(!app.is_running().await);
}

#[tokio::test]
async fn an_agents_topic_is_checked_too_and_unstated_settings_are_not() {
    let broker = format!("memory://topic-agent-check-{}", uuid::Uuid::new_v4());
    let first = App::builder("a").broker(&broker).build().unwrap();
    first
        .transport()
        .create_topic(&TopicSpec::new("events", 2))
        .await
        .unwrap();
    let consumer = |name: &str| {
        AgentSpec::consumer(name, |mut s: Stream<i64>| async move {
            while s.next().await.is_some() {}
            Ok::<_, Error>(())
        })
    };
    // States nothing: the topic someone else made is used as it is.
    let plain = App::builder("plain").broker(&broker).build().unwrap();
    plain.add_agent(consumer("c").topic("events")).unwrap();
    plain.start().await.unwrap();
    plain.stop().await.unwrap();
    // States 4 partitions: reported.
    let strict = App::builder("strict").broker(&broker).build().unwrap();
    strict
        .add_agent(consumer("c").topic(Topic::new("events").partitions(4)))
        .unwrap();
    let err = strict.start().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("topic `events` exists with partitions 2"),
        "{err}"
    );
    // Internal: the app's defaults are checked as well.
    let owned = App::builder("owned")
        .broker(&broker)
        .topic_partitions(8)
        .build()
        .unwrap();
    owned.topic(Topic::new("events").internal(true));
    let err = owned.start().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("partitions 2, but the app declares partitions 8"),
        "{err}"
    );
}

#[tokio::test]
async fn compaction_retention_and_replicas_are_recorded() {
    let app = app("topic-settings").topic_partitions(3).build().unwrap();
    app.topic(
        Topic::new("changelog")
            .compacted()
            .retention(Duration::from_secs(3600))
            .replicas(1)
            .config("segment.ms", "600000"),
    );
    app.topic(Topic::new("both").cleanup_policy(CleanupPolicy::CompactDelete));
    app.start().await.unwrap();
    let found = app
        .transport()
        .describe_topic("changelog")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.partitions, 3, "the app's default");
    assert_eq!(found.replication, 1);
    assert_eq!(found.cleanup_policy, CleanupPolicy::Compact);
    assert_eq!(found.retention, Some(Duration::from_secs(3600)));
    let both = app
        .transport()
        .describe_topic("both")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(both.cleanup_policy, CleanupPolicy::CompactDelete);
    assert_eq!(both.retention, None);
    app.stop().await.unwrap();
    // Started again with another retention: reported.
    let again = App::builder("topic-settings")
        .broker(&app.config().broker)
        .build()
        .unwrap();
    again.topic(Topic::new("changelog").retention(Duration::from_secs(60)));
    let err = again.start().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TopicMismatch {
                setting: "retention",
                ..
            }
        ),
        "{err:?}"
    );
    let err = {
        let third = App::builder("third")
            .broker(&app.config().broker)
            .build()
            .unwrap();
        third.topic(Topic::new("changelog").cleanup_policy(CleanupPolicy::Delete));
        third.start().await.unwrap_err()
    };
    assert!(
        err.to_string().contains(
            "exists with cleanup.policy compact, but the app declares cleanup.policy delete"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_topic_declared_twice_with_different_settings_fails_start() {
    let app = app("topic-twice").build().unwrap();
    app.topic(Topic::new("t").partitions(2));
    app.add_agent(
        AgentSpec::handler("h", |x: i64| async move { Ok::<_, Error>(x) })
            .topic(Topic::new("t").partitions(3)),
    )
    .unwrap();
    let err = app.start().await.unwrap_err();
    assert!(
        err.to_string().contains("topic `t` is declared twice"),
        "{err}"
    );
    // The same declaration passed around is one topic.
    let ok = common::app("topic-once").build().unwrap();
    let t = ok.topic(Topic::new("t").partitions(2));
    ok.add_agent(
        AgentSpec::handler("h", |x: i64| async move { Ok::<_, Error>(x) })
            .topic(&t)
            .sink(Sink::<i64>::topic("t-out")),
    )
    .unwrap();
    ok.add_agent(AgentSpec::handler("g", |x: i64| async move { Ok::<_, Error>(x) }).topic("t"))
        .unwrap();
    ok.start().await.unwrap();
    ok.stop().await.unwrap();
}
