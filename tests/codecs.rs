//! Codecs through the public API: codecs of one's own registered by name,
//! chains such as `json|binary` on the wire, unknown names refused when the
//! agent is added, per-send overrides, undecodable input routed to
//! `on_error`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use faust::codec::{erased_serde, BoxError, Codec, ValueSlot};
use faust::{agent, AgentSpec, App, Error, SendOptions, Stream};

// ----- helpers ---------------------------------------------------------------

/// Fail the test instead of hanging.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A builder for an app on a fresh embedded broker.
fn builder(id: &str) -> faust::AppBuilder {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    App::builder(id).broker(format!("memory://codecs-{id}-{}-{n}", std::process::id()))
}

/// Values seen by an agent, shared with the test.
#[derive(Clone, Default)]
struct Seen<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Seen<T> {
    fn push(&self, value: T) {
        self.0.lock().unwrap().push(value);
    }

    /// Wait (bounded) until at least `n` values arrived; return them all.
    async fn wait_for(&self, n: usize, what: &str) -> Vec<T> {
        within(what, async {
            loop {
                {
                    let seen = self.0.lock().unwrap();
                    if seen.len() >= n {
                        return seen.clone();
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }
}

/// A consumer agent on `topic` that records each raw value and key.
fn recorder(name: &str, topic: &str, seen: Seen<(Bytes, Option<Bytes>)>) -> AgentSpec {
    AgentSpec::consumer(name, move |mut s: Stream<Bytes>| {
        let seen = seen.clone();
        async move {
            while let Some(event) = s.next_event().await {
                let key = event.message().key().cloned();
                seen.push((event.value, key));
            }
            Ok::<_, Error>(())
        }
    })
    .topic(topic)
    .partitions(1)
    .value_codec("raw")
}

/// Strings, upper-cased on the wire after a `>` (lower-cased back).
struct Shout;

impl Codec for Shout {
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
        let json = serde_json::to_value(value)?;
        let text = json.as_str().ok_or("shout encodes strings only")?;
        Ok(format!(">{}", text.to_uppercase()).into_bytes())
    }

    fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError> {
        let text = std::str::from_utf8(bytes)?;
        let text = text.strip_prefix('>').ok_or("no `>`: not shouted")?;
        out.deserialize(
            serde::de::value::StringDeserializer::<serde_json::Error>::new(text.to_lowercase()),
        )
    }
}

// ----- a codec of one's own ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_codec_round_trips_through_an_agent() {
    let app = builder("shout").codec("shout", Shout).build().unwrap();
    let words: Seen<String> = Seen::default();
    let wire: Seen<(Bytes, Option<Bytes>)> = Seen::default();
    let w = words.clone();
    let agent = app
        .add_agent(
            AgentSpec::consumer("words", move |mut s: Stream<String>| {
                let w = w.clone();
                async move {
                    while let Some(word) = s.next().await {
                        w.push(word);
                    }
                    Ok::<_, Error>(())
                }
            })
            .topic("words")
            .value_codec("shout"),
        )
        .unwrap();
    app.add_agent(recorder("wire", "words", wire.clone()))
        .unwrap();
    assert_eq!(agent.value_codec().name(), "shout");
    assert_eq!(agent.info().value_codec, "shout");
    within("start", app.start()).await.unwrap();

    agent.send("hello").await.unwrap();
    assert_eq!(words.wait_for(1, "decoded").await, ["hello"]);
    let (bytes, _) = wire.wait_for(1, "raw").await.remove(0);
    assert_eq!(&bytes[..], b">HELLO");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codec_value_needs_no_registration() {
    let app = builder("value").build().unwrap();
    let agent = app
        .add_agent(
            AgentSpec::handler("echo", |s: String| async move { Ok::<_, Error>(s) })
                .value_codec(Shout),
        )
        .unwrap();
    assert_eq!(agent.value_codec().name(), "Shout");
    assert_eq!(agent.value_codec().encode("a").unwrap(), b">A");
}

// ----- chains on the wire ------------------------------------------------------

static B64_SEEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Reads base64 of JSON, as a Python Faust app with `value_serializer="json|binary"` writes.
#[agent(topic = "b64", partitions = 1, codec = "json|binary")]
async fn b64(mut s: Stream<u32>) -> faust::Result<()> {
    while let Some(n) = s.next().await {
        B64_SEEN.lock().unwrap().push(n);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_then_binary_is_base64_of_json_on_the_wire() {
    let app = builder("b64").build().unwrap();
    let agent = app
        .add_agent(
            faust::registered_agents()
                .unwrap()
                .iter()
                .find(|d| d.name == "b64")
                .map(|d| (d.build)())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(agent.value_codec().name(), "json|binary");
    let wire: Seen<(Bytes, Option<Bytes>)> = Seen::default();
    app.add_agent(recorder("b64-wire", "b64", wire.clone()))
        .unwrap();
    within("start", app.start()).await.unwrap();

    agent.send(&1u32).await.unwrap();
    agent.send(&40_000u32).await.unwrap();
    let raw = wire.wait_for(2, "raw").await;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(b64.decode(&raw[0].0).unwrap(), b"1");
    assert_eq!(&raw[1].0[..], b64.encode("40000").as_bytes());
    within("decoded", async {
        while B64_SEEN.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(*B64_SEEN.lock().unwrap(), [1, 40_000]);
    app.stop().await.unwrap();
}

// ----- unknown names -------------------------------------------------------------

#[tokio::test]
async fn an_unknown_codec_name_fails_when_the_agent_is_added() {
    let app = builder("unknown").transform("rot", Rot).build().unwrap();
    let spec = AgentSpec::handler("h", |x: u32| async move { Ok::<_, Error>(x) });
    let err = app
        .add_agent(spec.clone().value_codec("msgpack"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agent `h`: unknown codec `msgpack`; known codecs: bincode, json, raw; transforms: binary, rot"),
        "{err}"
    );
    let err = app
        .add_agent(spec.clone().key_codec("json|zstd"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown codec `zstd` in `json|zstd`"), "{err}");
    // A registered transform chains.
    let agent = app.add_agent(spec.value_codec("json|rot")).unwrap();
    assert_eq!(agent.value_codec().encode(&1u32).unwrap(), b"2");
}

#[test]
fn an_unknown_app_codec_fails_the_build() {
    let err = builder("bad").value_codec("yaml").build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(
        err.to_string()
            .contains("value_codec: unknown codec `yaml`"),
        "{err}"
    );
    let err = builder("taken").codec("json", Shout).build().unwrap_err();
    assert!(err.to_string().contains("`json` is built in"), "{err}");
    let app = builder("ok")
        .codec("shout", Shout)
        .value_codec("shout")
        .build()
        .unwrap();
    assert_eq!(app.config().value_codec, "shout");
    assert!(app
        .codec("nope")
        .unwrap_err()
        .to_string()
        .contains("unknown codec `nope`"));
}

/// Adds one to each byte (a stand-in for a compressor).
struct Rot;

impl faust::codec::Transform for Rot {
    fn encode(&self, bytes: Vec<u8>) -> Result<Vec<u8>, BoxError> {
        Ok(bytes.into_iter().map(|b| b.wrapping_add(1)).collect())
    }
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        Ok(bytes.iter().map(|b| b.wrapping_sub(1)).collect())
    }
}

// ----- per-send overrides --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_can_override_the_value_and_key_codecs() {
    let app = builder("override").codec("shout", Shout).build().unwrap();
    let wire: Seen<(Bytes, Option<Bytes>)> = Seen::default();
    let agent = app
        .add_agent(recorder("over", "over", wire.clone()))
        .unwrap();
    within("start", app.start()).await.unwrap();

    agent
        .send_with(&7u32, SendOptions::default().value_codec("bincode"))
        .await
        .unwrap();
    agent
        .send_keyed_with(
            "k",
            "v",
            SendOptions::default()
                .value_codec("shout")
                .key_codec(faust::codec::Json),
        )
        .await
        .unwrap();
    agent.send_keyed("k", "v").await.unwrap();
    let err = agent
        .send_with("v", SendOptions::default().value_codec("nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown codec `nope`"), "{err}");

    let raw = wire.wait_for(3, "raw").await;
    assert_eq!(&raw[0].0[..], 7u32.to_le_bytes());
    assert_eq!(&raw[1].0[..], b">V");
    assert_eq!(raw[1].1.as_deref(), Some(&b"\"k\""[..]));
    // Without overrides: the agent's codecs (raw, raw).
    assert_eq!(&raw[2].0[..], b"v");
    assert_eq!(raw[2].1.as_deref(), Some(&b"k"[..]));
    app.stop().await.unwrap();
}

// ----- undecodable input ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_input_under_a_custom_codec_goes_to_on_error() {
    let app = builder("undecodable")
        .codec("shout", Shout)
        .build()
        .unwrap();
    let errors: Seen<(String, i32, i64, String, String)> = Seen::default();
    let words: Seen<String> = Seen::default();
    let (e, w) = (errors.clone(), words.clone());
    app.add_agent(
        AgentSpec::consumer("loud", move |mut s: Stream<String>| {
            let w = w.clone();
            async move {
                while let Some(word) = s.next().await {
                    w.push(word);
                }
                Ok::<_, Error>(())
            }
        })
        .topic("loud")
        .partitions(1)
        .value_codec("shout")
        .on_error(move |_, err| {
            if let Error::Decode {
                topic,
                partition,
                offset,
                codec,
                reason,
            } = err
            {
                e.push((
                    topic.clone(),
                    *partition,
                    *offset,
                    codec.clone(),
                    reason.clone(),
                ));
            }
        }),
    )
    .unwrap();
    within("start", app.start()).await.unwrap();

    app.send_bytes("loud", None, Some(Bytes::from_static(b"quiet")), Vec::new())
        .await
        .unwrap();
    app.send_bytes("loud", None, Some(Bytes::from_static(b">OK")), Vec::new())
        .await
        .unwrap();
    let errs = errors.wait_for(1, "on_error").await;
    let (topic, partition, offset, codec, reason) = &errs[0];
    assert_eq!((topic.as_str(), *partition, *offset), ("loud", 0, 0));
    assert_eq!(codec, "shout");
    assert!(reason.contains("not shouted"), "{reason}");
    // The next event is processed.
    assert_eq!(words.wait_for(1, "next event").await, ["ok"]);
    app.stop().await.unwrap();
}
