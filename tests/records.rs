//! `#[derive(faust::Record)]` as a user sees it: the exact JSON Python Faust
//! writes, what is accepted on input, nested records, and records as agent
//! values on the embedded broker.

use faust::{AgentSpec, CodecRef, Error, Record as _, Stream};
use serde_json::{json, Value};

mod common;
use common::{app, within};

const SUITE: &str = "records";

/// `class Add(faust.Record, namespace="shop.Add")`.
#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "shop.Add")]
struct Add {
    a: i64,
    b: i64,
}

/// `class Total(faust.Record, namespace="shop.Total")`.
#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "shop.Total")]
struct Total {
    total: i64,
}

/// A record with every supported field attribute.
#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "shop.Order")]
struct Order {
    id: i64,
    #[serde(rename = "item_name")]
    item: String,
    note: Option<String>,
    #[serde(default)]
    quantity: u32,
    #[serde(default = "one", skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    r#type: String,
}

fn one() -> Vec<String> {
    vec!["one".into()]
}

/// `class Point(faust.Record)` fields, nested in `Line`.
#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "geo.Point")]
struct Point {
    x: i64,
    y: i64,
}

#[derive(Clone, Debug, PartialEq, faust::Record)]
#[faust(namespace = "geo.Line")]
struct Line {
    from: Point,
    to: Point,
    via: Vec<Point>,
    label: Option<Point>,
}

mod shop {
    /// No `namespace`: `<module path>.<type name>`.
    #[derive(Debug, PartialEq, faust::Record)]
    pub(super) struct Refund {
        pub(super) id: i64,
    }
}

#[test]
fn namespace_constant() {
    assert_eq!(Add::NAMESPACE, "shop.Add");
    assert_eq!(<Line as faust::Record>::NAMESPACE, "geo.Line");
    // The integration test crate is `records`.
    assert_eq!(shop::Refund::NAMESPACE, "records.shop.Refund");
}

#[test]
fn exact_bytes_as_faust_writes_them() {
    let add = Add { a: 1, b: 2 };
    let json = serde_json::to_string(&add).unwrap();
    assert_eq!(json, r#"{"a":1,"b":2,"__faust":{"ns":"shop.Add"}}"#);
    assert_eq!(
        CodecRef::JSON.encode(&add).unwrap(),
        br#"{"a":1,"b":2,"__faust":{"ns":"shop.Add"}}"#
    );
    assert_eq!(
        serde_json::to_string(&shop::Refund { id: 7 }).unwrap(),
        r#"{"id":7,"__faust":{"ns":"records.shop.Refund"}}"#
    );
}

#[test]
fn round_trip() {
    let add = Add { a: -4, b: 9 };
    let back: Add = serde_json::from_str(&serde_json::to_string(&add).unwrap()).unwrap();
    assert_eq!(back, add);
    // bincode (Rust-to-Rust topics) too.
    let bytes = CodecRef::BINCODE.encode(&add).unwrap();
    assert_eq!(CodecRef::BINCODE.decode::<Add>(&bytes).unwrap(), add);
}

#[test]
fn marker_anywhere_or_missing() {
    let first: Add = serde_json::from_str(r#"{"__faust":{"ns":"shop.Add"},"a":1,"b":2}"#).unwrap();
    let middle: Add = serde_json::from_str(r#"{"a":1,"__faust":{"ns":"shop.Add"},"b":2}"#).unwrap();
    let plain: Add = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
    for got in [first, middle, plain] {
        assert_eq!(got, Add { a: 1, b: 2 });
    }
}

#[test]
fn wrong_namespace_names_both() {
    let err = serde_json::from_str::<Add>(r#"{"a":1,"b":2,"__faust":{"ns":"shop.Total"}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected a Faust record `shop.Add`, got `shop.Total`"),
        "{err}"
    );
    // Through the codec, as an agent decodes its events.
    let err = CodecRef::JSON
        .decode::<Add>(br#"{"a":1,"b":2,"__faust":{"ns":"x.Y"}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected a Faust record `shop.Add`, got `x.Y`"),
        "{err}"
    );
}

#[test]
fn missing_required_field_is_an_error() {
    let err = serde_json::from_str::<Add>(r#"{"a":1}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing field `b`"), "{err}");
}

#[test]
fn option_missing_unknown_ignored_and_field_attributes() {
    let order: Order = serde_json::from_str(
        r#"{"id":1,"item_name":"x","type":"t","added_later":{"n":1},"__faust":{"ns":"shop.Order"}}"#,
    )
    .unwrap();
    assert_eq!(
        order,
        Order {
            id: 1,
            item: "x".into(),
            note: None,
            quantity: 0,
            tags: one(),
            r#type: "t".into(),
        }
    );
    let none = Order {
        tags: vec![],
        ..order.clone()
    };
    assert_eq!(
        serde_json::to_string(&none).unwrap(),
        r#"{"id":1,"item_name":"x","note":null,"quantity":0,"type":"t","__faust":{"ns":"shop.Order"}}"#
    );
    assert_eq!(
        serde_json::to_string(&order).unwrap(),
        r#"{"id":1,"item_name":"x","note":null,"quantity":0,"tags":["one"],"type":"t","__faust":{"ns":"shop.Order"}}"#
    );
}

#[test]
fn nested_records() {
    let line = Line {
        from: Point { x: 0, y: 0 },
        to: Point { x: 1, y: 2 },
        via: vec![Point { x: 3, y: 4 }],
        label: None,
    };
    let json = serde_json::to_string(&line).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"from":{"x":0,"y":0,"__faust":{"ns":"geo.Point"}},"#,
            r#""to":{"x":1,"y":2,"__faust":{"ns":"geo.Point"}},"#,
            r#""via":[{"x":3,"y":4,"__faust":{"ns":"geo.Point"}}],"#,
            r#""label":null,"__faust":{"ns":"geo.Line"}}"#
        )
    );
    assert_eq!(serde_json::from_str::<Line>(&json).unwrap(), line);
    // A nested record of the wrong namespace fails the whole value.
    let bad = json.replacen("geo.Point", "geo.Other", 1);
    let err = serde_json::from_str::<Line>(&bad).unwrap_err().to_string();
    assert!(
        err.contains("expected a Faust record `geo.Point`, got `geo.Other`"),
        "{err}"
    );
}

#[test]
fn namespace_of_dispatches() {
    let values = [
        serde_json::to_value(Add { a: 1, b: 2 }).unwrap(),
        serde_json::to_value(Total { total: 3 }).unwrap(),
        json!({"plain": true}),
    ];
    let kinds: Vec<String> = values
        .into_iter()
        .map(|v| match faust::model::namespace_of(&v) {
            Some(Add::NAMESPACE) => {
                let add: Add = serde_json::from_value(v).unwrap();
                format!("add {}", add.a + add.b)
            }
            Some(Total::NAMESPACE) => {
                let t: Total = serde_json::from_value(v).unwrap();
                format!("total {}", t.total)
            }
            Some(other) => format!("unknown {other}"),
            None => "plain".into(),
        })
        .collect();
    assert_eq!(kinds, ["add 3", "total 3", "plain"]);
}

// ----- agents on the embedded broker ----------------------------------------------

#[tokio::test]
async fn agent_with_record_values_answers_ask() {
    let app = app(SUITE, "ask");
    let add = app
        .add_agent(
            AgentSpec::handler("add", |r: Add| async move {
                Ok::<_, Error>(Total { total: r.a + r.b })
            })
            .topic("add"),
        )
        .unwrap();
    within("start", app.start()).await.unwrap();

    let total: Total = within("ask", add.ask(&Add { a: 2, b: 3 })).await.unwrap();
    assert_eq!(total, Total { total: 5 });
    // The reply is a Faust record on the wire.
    let raw: Value = within("ask raw", add.ask(&Add { a: 1, b: 1 }))
        .await
        .unwrap();
    assert_eq!(raw, json!({"total": 2, "__faust": {"ns": "shop.Total"}}));
    // Plain JSON (no marker) from a non-Faust producer is accepted.
    let total: Total = within("ask plain", add.ask(&json!({"a": 4, "b": 4})))
        .await
        .unwrap();
    assert_eq!(total.total, 8);
    // A record of another namespace is an error reply naming both.
    match within("ask wrong", add.ask::<_, Total>(&Total { total: 1 })).await {
        Err(Error::Remote { message, .. }) => assert!(
            message.contains("expected a Faust record `shop.Add`, got `shop.Total`"),
            "{message}"
        ),
        other => panic!("want Error::Remote, got {other:?}"),
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn one_topic_several_record_types() {
    let app = app(SUITE, "mixed");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    app.add_agent(
        AgentSpec::consumer("mixed", move |mut values: Stream<Value>| {
            let tx = tx.clone();
            async move {
                while let Some(v) = values.next().await {
                    let seen = match faust::model::namespace_of(&v) {
                        Some(Add::NAMESPACE) => {
                            let r: Add = serde_json::from_value(v).map_err(Error::user)?;
                            format!("add {}", r.a + r.b)
                        }
                        Some(Line::NAMESPACE) => {
                            let r: Line = serde_json::from_value(v).map_err(Error::user)?;
                            format!("line to {},{}", r.to.x, r.to.y)
                        }
                        other => format!("other {other:?}"),
                    };
                    let _ = tx.send(seen);
                }
                Ok::<_, Error>(())
            }
        })
        .topic("mixed"),
    )
    .unwrap();
    within("start", app.start()).await.unwrap();
    app.send("mixed", &Add { a: 1, b: 2 }).await.unwrap();
    let line = Line {
        from: Point { x: 0, y: 0 },
        to: Point { x: 5, y: 6 },
        via: vec![],
        label: Some(Point { x: 1, y: 1 }),
    };
    app.send("mixed", &line).await.unwrap();
    app.send("mixed", &json!({"n": 1})).await.unwrap();
    let mut seen = Vec::new();
    within("three events", async {
        while seen.len() < 3 {
            seen.push(rx.recv().await.unwrap());
        }
    })
    .await;
    assert_eq!(seen, ["add 3", "line to 5,6", "other None"]);
    app.stop().await.unwrap();
}
