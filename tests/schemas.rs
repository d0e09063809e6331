//! Schemas through the public API: a topic's schema gives its codecs and
//! its value type, checked against the agents that read it; an agent's
//! schema wins over the topic's; records that do not match are decode
//! errors with their coordinates.

use faust::{agent, AgentSpec, Error, Schema, Stream, Topic};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

mod common;
use common::{app, within};

const SUITE: &str = "schemas";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    customer: String,
}

fn order_schema() -> Schema<String, Order> {
    Schema::new().value_codec("bincode")
}

#[tokio::test]
async fn a_topic_schema_gives_the_codecs_and_the_value_type() {
    let app = app(SUITE, "topic");
    let orders = app.topic(Topic::new("orders").schema(order_schema()));
    assert_eq!(orders.value_type(), Some(std::any::type_name::<Order>()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = app
        .add_agent(
            AgentSpec::consumer("read", move |mut s: Stream<Order>| {
                let tx = tx.clone();
                async move {
                    while let Some(o) = s.next().await {
                        tx.send(o).unwrap();
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic(&orders),
        )
        .unwrap();
    assert_eq!(agent.value_codec().name(), "bincode", "the schema's codec");
    within("start", app.start()).await.unwrap();
    let order = Order {
        id: 1,
        customer: "ada".into(),
    };
    within("send", app.send_to(&orders, &order)).await.unwrap();
    assert_eq!(within("order", rx.recv()).await.unwrap(), order);
    within("stop", app.stop()).await.unwrap();
}

#[tokio::test]
async fn an_agent_of_another_type_on_a_schema_topic_is_refused() {
    let app = app(SUITE, "mismatch");
    let orders = Topic::new("orders").schema(order_schema());
    let err = app
        .add_agent(
            AgentSpec::consumer("wrong", |mut s: Stream<String>| async move {
                while s.next().await.is_some() {}
                Ok::<_, Error>(())
            })
            .topic(orders),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "reads `alloc::string::String` from topic `orders`, whose schema's value type is"
        ),
        "{err}"
    );
    let err = app
        .add_agent(
            AgentSpec::handler("also-wrong", |x: u64| async move { Ok::<_, Error>(x) })
                .schema(Schema::<String, String>::new()),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("its schema's value type is `alloc::string::String`"),
        "{err}"
    );
}

#[tokio::test]
async fn the_agent_schema_wins_over_the_topic_and_a_bad_record_is_a_located_decode_error() {
    let app = app(SUITE, "wins");
    let orders = app.topic(Topic::new("orders").value_codec("bincode"));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let errors = tx.clone();
    let agent = app
        .add_agent(
            AgentSpec::handler("read", move |o: Order| {
                let tx = tx.clone();
                async move {
                    tx.send(Ok(o)).unwrap();
                    Ok::<_, Error>(())
                }
            })
            .topic(&orders)
            .schema(Schema::<String, Order>::new().value_codec("json"))
            .on_error(move |_, e| {
                let _ = errors.send(Err(e.to_string()));
            }),
        )
        .unwrap();
    assert_eq!(agent.value_codec().name(), "json");
    within("start", app.start()).await.unwrap();
    app.send_bytes("orders", None, Some("not an order".into()), Vec::new())
        .await
        .unwrap();
    app.send_bytes(
        "orders",
        None,
        Some(r#"{"id":2,"customer":"bo"}"#.into()),
        Vec::new(),
    )
    .await
    .unwrap();
    let err = within("error", rx.recv()).await.unwrap().unwrap_err();
    assert!(err.contains("orders[") && err.contains("@0"), "{err}");
    let ok = within("order", rx.recv()).await.unwrap().unwrap();
    assert_eq!(ok.id, 2);
    within("stop", app.stop()).await.unwrap();
}

/// Counts orders; the schema is checked against `Stream<Order>` by the compiler.
#[agent(topic = "macro-orders", schema = Schema::<String, Order>::new().value_codec("json"))]
async fn count_orders(mut orders: Stream<Order>) -> faust::Result<()> {
    while orders.next().await.is_some() {}
    Ok(())
}

#[tokio::test]
async fn the_macro_takes_a_schema() {
    let d = faust::registered_agents()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "count_orders")
        .unwrap();
    let app = app(SUITE, "macro");
    let agent = app.add_agent((d.build)()).unwrap();
    assert_eq!(agent.value_codec().name(), "json");
}
