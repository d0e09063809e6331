//! What `#[agent]` declares, checked against the runtime: real agents,
//! registered by the macro, added to an app on a private embedded broker,
//! fed events, and observed.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use faust::{agent, Agent, App, CodecRef, Error, Stream, Yield};

// ----- helpers ---------------------------------------------------------------

/// Fail the test instead of hanging.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// An app on a fresh embedded broker with the named registered agents,
/// started.
async fn start(id: &str, names: &[&str]) -> App {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let app = App::builder(id)
        .broker(format!(
            "memory://macro-agents-{id}-{}-{n}",
            std::process::id()
        ))
        .build()
        .unwrap();
    for d in faust::registered_agents().unwrap() {
        if names.contains(&d.name) {
            app.add_agent((d.build)()).unwrap();
        }
    }
    assert_eq!(
        app.agents().all().len(),
        names.len(),
        "every agent is registered"
    );
    within("app start", app.start()).await.unwrap();
    app
}

/// Values seen by an agent (or a sink), shared with the test.
struct Collector<T>(Mutex<Vec<T>>);

impl<T: Clone> Collector<T> {
    const fn new() -> Self {
        Collector(Mutex::new(Vec::new()))
    }

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

/// The partition numbers of an isolated agent's actors.
fn partitions_of(agent: &Agent) -> Vec<i32> {
    agent
        .active_partitions()
        .iter()
        .map(|tp| tp.partition)
        .collect()
}

// ----- the agents --------------------------------------------------------------

/// Double a number.
///
///   Answers `ask`.
#[agent]
async fn double(x: i64) -> faust::Result<i64> {
    Ok(x * 2)
}

static BATCH_SIZES: Collector<usize> = Collector::new();
static BATCH_LENGTHS: Collector<usize> = Collector::new();

fn record_batch_length(n: &usize) {
    BATCH_LENGTHS.push(*n);
}

/// Length of each word, a batch at a time.
#[agent(batch = 8, within = "300ms", partitions = 1, sink = [record_batch_length])]
async fn word_lengths_in_batches(words: Vec<String>) -> faust::Result<Vec<usize>> {
    BATCH_SIZES.push(words.len());
    Ok(words.iter().map(|w| w.len()).collect())
}

static WORDS: Collector<String> = Collector::new();

#[agent(topic = "macro-words")]
async fn collect_words(mut words: Stream<String>) -> faust::Result<()> {
    while let Some(word) = words.next().await {
        WORDS.push(word);
    }
    Ok(())
}

static LENGTHS_CALLBACK: Collector<usize> = Collector::new();
static LENGTHS_VIA_AGENT: Collector<usize> = Collector::new();

fn record_length(n: &usize) {
    LENGTHS_CALLBACK.push(*n);
}

/// Measure words.
#[agent(sink = ["@length_log", record_length])]
async fn word_lengths(mut words: Stream<String>, out: Yield<usize>) -> faust::Result<()> {
    while let Some(word) = words.next().await {
        out.send(word.len()).await?;
    }
    Ok(())
}

static READINGS: Collector<i64> = Collector::new();

/// The topic of `collect_readings`: its own codec and partitions.
fn readings_topic() -> faust::Topic {
    faust::Topic::new("macro-readings")
        .partitions(2)
        .value_codec("bincode")
}

#[agent(topic = readings_topic())]
async fn collect_readings(mut readings: Stream<i64>) -> faust::Result<()> {
    while let Some(r) = readings.next().await {
        READINGS.push(r);
    }
    Ok(())
}

static ORDERS_AND_REFUNDS: Collector<String> = Collector::new();

#[agent(topic = ["macro-orders", "macro-refunds"])]
async fn orders_and_refunds(mut events: Stream<String>) -> faust::Result<()> {
    while let Some(event) = events.next().await {
        ORDERS_AND_REFUNDS.push(event);
    }
    Ok(())
}

static PATTERNED: Collector<String> = Collector::new();

#[agent(topic_pattern = "macro-pattern-.*")]
async fn patterned(mut events: Stream<String>) -> faust::Result<()> {
    while let Some(event) = events.next().await {
        PATTERNED.push(event);
    }
    Ok(())
}

#[agent]
async fn length_log(mut lengths: Stream<usize>) -> faust::Result<()> {
    while let Some(n) = lengths.next().await {
        LENGTHS_VIA_AGENT.push(n);
    }
    Ok(())
}

static TRIPLED: Collector<i64> = Collector::new();

#[agent(sink = ["macro-tripled"])]
async fn triple(x: i64) -> anyhow::Result<i64> {
    Ok(x * 3)
}

#[agent(topic = "macro-tripled")]
async fn tripled_reader(mut values: Stream<i64>) -> faust::Result<()> {
    while let Some(v) = values.next().await {
        TRIPLED.push(v);
    }
    Ok(())
}

static SPREAD: Collector<(Option<usize>, i64)> = Collector::new();

#[agent(concurrency = 3)]
async fn spread(mut s: Stream<i64>) -> faust::Result<()> {
    while let Some(x) = s.next().await {
        SPREAD.push((s.concurrency_index(), x));
        // Busy for a while, so that the other actors take the next events.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

static PER_PARTITION: Collector<(Option<i32>, i64)> = Collector::new();

#[agent(isolated_partitions, partitions = 2)]
async fn per_partition(mut s: Stream<i64>) -> faust::Result<()> {
    while let Some(ev) = s.next_event().await {
        let mine = s.active_partition().map(|tp| tp.partition);
        PER_PARTITION.push((mine, ev.value));
        assert_eq!(s.active_partition(), Some(ev.message().topic_partition()));
    }
    Ok(())
}

/// Not this text: `help` wins over the doc comment.
#[agent(
    name = "renamed",
    topic = "macro-configured",
    partitions = 3,
    codec = "json",
    key_codec = "json",
    use_reply_headers = false,
    supervisor = one_for_all,
    help = "Explicit help.",
)]
async fn configured(x: u32) -> Result<String, std::io::Error> {
    Ok(format!("#{x}"))
}

#[agent(value_codec = "bincode")]
async fn compact(x: u32) -> faust::Result<u32> {
    Ok(x + 1)
}

static ERRORS: Collector<(String, String)> = Collector::new();

fn record_error(agent: &Agent, err: &Error) {
    ERRORS.push((agent.name().to_string(), err.to_string()));
}

#[agent(on_error = record_error)]
async fn picky(x: i64) -> anyhow::Result<i64> {
    anyhow::ensure!(x >= 0, "negative input {x}");
    Ok(x)
}

static ASYNC_ERRORS: Collector<(String, Option<String>)> = Collector::new();

/// An async error handler: awaited, within the agent.
async fn report_later(agent: Agent, err: Error) {
    tokio::task::yield_now().await;
    let current = faust::current_agent().map(|a| a.name().to_string());
    ASYNC_ERRORS.push((format!("{}: {err}", agent.name()), current));
}

#[agent(on_error_async = report_later)]
async fn picky_async(x: i64) -> anyhow::Result<i64> {
    anyhow::ensure!(x >= 0, "negative input {x}");
    Ok(x)
}

#[agent(supervisor = crashing)]
async fn crasher(mut s: Stream<i64>) -> anyhow::Result<()> {
    if let Some(x) = s.next().await {
        anyhow::bail!("crash on {x}");
    }
    Ok(())
}

// ----- the tests ---------------------------------------------------------------

#[test]
fn descriptors_carry_name_file_and_line() {
    let all = faust::registered_agents().unwrap();
    let names: Vec<&str> = all.iter().map(|d| d.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "sorted by name");
    for expected in [
        "collect_words",
        "compact",
        "crasher",
        "double",
        "length_log",
        "orders_and_refunds",
        "patterned",
        "per_partition",
        "picky",
        "picky_async",
        "renamed",
        "spread",
        "triple",
        "tripled_reader",
        "word_lengths",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} is registered: {names:?}"
        );
    }
    let d = all.iter().find(|d| d.name == "double").unwrap();
    assert!(d.file.ends_with("macro_agents.rs"), "{}", d.file);
    let source = include_str!("macro_agents.rs");
    let line = source
        .lines()
        .position(|l| l.starts_with("async fn double("))
        .unwrap()
        + 1;
    assert_eq!(d.line as usize, line, "the line of the function's name");
    assert_eq!((d.build)().name(), "double");
}

#[tokio::test]
async fn the_function_stays_callable() {
    assert_eq!(double(21).await.unwrap(), 42);
    assert_eq!(configured(7).await.unwrap(), "#7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_answers_ask_on_the_default_topic_with_doc_help() {
    let app = start("ask-double", &["double"]).await;
    let double = app.agent("double").unwrap();
    assert_eq!(double.topic(), "ask-double-macro_agents.double");
    assert_eq!(double.help(), "Double a number.\n\nAnswers `ask`.");
    assert_eq!(double.concurrency(), 1);
    assert!(double.produces_values());
    let four: i64 = within("ask double", double.ask::<_, i64>(&2))
        .await
        .unwrap();
    assert_eq!(four, 4);
    let answers = within("join double", double.join::<i64, i64, _>([1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(answers, [2, 4, 6]);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_agent_answers_each_ask_with_its_own_result() {
    let app = start("batch", &["word_lengths_in_batches"]).await;
    let agent = app.agent("word_lengths_in_batches").unwrap();
    assert!(agent.produces_values());
    let words: Vec<String> = (1..=20).map(|n| "x".repeat(n)).collect();
    let lengths = within("join", agent.join::<String, usize, _>(words))
        .await
        .unwrap();
    assert_eq!(
        lengths,
        (1..=20).collect::<Vec<usize>>(),
        "each its own, in order"
    );
    let sizes = BATCH_SIZES.wait_for(1, "a batch").await;
    assert!(sizes.iter().all(|n| (1..=8).contains(n)), "{sizes:?}");
    assert!(sizes.iter().any(|n| *n > 1), "batched: {sizes:?}");
    let mut sunk = BATCH_LENGTHS.wait_for(20, "every result in the sink").await;
    sunk.sort();
    assert_eq!(sunk, (1..=20).collect::<Vec<usize>>());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_processes_every_event_of_its_topic() {
    let app = start("consumer", &["collect_words"]).await;
    let agent = app.agent("collect_words").unwrap();
    assert_eq!(agent.topic(), "macro-words");
    assert!(!agent.produces_values());
    assert_eq!(agent.help(), "");
    for w in ["a", "b", "c"] {
        within("send", agent.send(w)).await.unwrap();
    }
    let seen = WORDS.wait_for(3, "3 words").await;
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 3);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_every_topic_of_its_list() {
    let app = start("topics", &["orders_and_refunds"]).await;
    let agent = app.agent("orders_and_refunds").unwrap();
    let topics: BTreeSet<String> = agent.get_topic_names().into_iter().collect();
    assert_eq!(
        topics,
        BTreeSet::from(["macro-orders".to_string(), "macro-refunds".to_string()]),
        "both topics"
    );
    within("send order", app.send("macro-orders", "order"))
        .await
        .unwrap();
    within("send refund", app.send("macro-refunds", "refund"))
        .await
        .unwrap();
    let seen = ORDERS_AND_REFUNDS
        .wait_for(2, "an event of each topic")
        .await;
    assert_eq!(
        seen.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["order", "refund"])
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_agent_reads_the_topics_it_matches() {
    let app = start("pattern", &["patterned"]).await;
    let agent = app.agent("patterned").unwrap();
    assert_eq!(
        agent.topic_patterns().collect::<Vec<_>>(),
        ["macro-pattern-.*"]
    );
    within("send", app.send("macro-pattern-a", "a"))
        .await
        .unwrap();
    within("send", app.send("macro-pattern-b", "b"))
        .await
        .unwrap();
    let seen = PATTERNED.wait_for(2, "an event of each topic").await;
    assert_eq!(
        seen.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["a", "b"])
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yielding_agent_answers_ask_and_feeds_agent_and_callback_sinks() {
    let app = start("yielding", &["word_lengths", "length_log"]).await;
    let agent = app.agent("word_lengths").unwrap();
    assert_eq!(agent.help(), "Measure words.");
    assert_eq!(agent.info().sinks, ["@length_log", "<callback>"]);
    let n: usize = within("ask word_lengths", agent.ask::<_, usize>("four"))
        .await
        .unwrap();
    assert_eq!(n, 4);
    within("send", agent.send("seven..")).await.unwrap();
    let mut via_agent = LENGTHS_VIA_AGENT.wait_for(2, "@length_log sink").await;
    via_agent.sort_unstable();
    assert_eq!(via_agent, [4, 7]);
    let mut via_callback = LENGTHS_CALLBACK.wait_for(2, "callback sink").await;
    via_callback.sort_unstable();
    assert_eq!(via_callback, [4, 7]);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_sink_produces_to_the_named_topic() {
    let app = start("topic-sink", &["triple", "tripled_reader"]).await;
    let triple = app.agent("triple").unwrap();
    assert_eq!(triple.info().sinks, ["macro-tripled"]);
    let nine: i64 = within("ask triple", triple.ask::<_, i64>(&3))
        .await
        .unwrap();
    assert_eq!(nine, 9);
    assert_eq!(TRIPLED.wait_for(1, "topic sink").await, [9]);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_runs_that_many_actors() {
    let app = start("concurrency", &["spread"]).await;
    let agent = app.agent("spread").unwrap();
    assert_eq!(agent.concurrency(), 3);
    assert_eq!(agent.actor_count(), 3);
    for i in 0..12 {
        within("send", agent.send(&i)).await.unwrap();
    }
    let seen = SPREAD.wait_for(12, "12 events").await;
    let actors: BTreeSet<Option<usize>> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(actors, BTreeSet::from([Some(0), Some(1), Some(2)]));
    let values: BTreeSet<i64> = seen.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, (0..12).collect());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_partitions_run_one_actor_per_partition() {
    let app = start("isolated", &["per_partition"]).await;
    let agent = app.agent("per_partition").unwrap();
    assert!(agent.isolated_partitions());
    assert_eq!(agent.partitions(), Some(2));
    within("assignment", async {
        while partitions_of(&agent) != [0, 1] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for i in 0..10 {
        within("send", agent.send(&i)).await.unwrap();
    }
    let seen = PER_PARTITION.wait_for(10, "10 events").await;
    assert!(
        seen.iter().all(|(p, _)| matches!(p, Some(0 | 1))),
        "{seen:?}"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_option_reaches_the_agent() {
    let app = start("configured", &["renamed"]).await;
    let agent = app.agent("renamed").unwrap();
    assert_eq!(agent.topic(), "macro-configured");
    assert_eq!(agent.partitions(), Some(3));
    assert_eq!(*agent.value_codec(), CodecRef::JSON);
    assert_eq!(*agent.key_codec(), CodecRef::JSON);
    assert!(!agent.use_reply_headers());
    assert_eq!(agent.supervisor_strategy().name(), "one_for_all");
    assert_eq!(agent.help(), "Explicit help.");
    // The reply address travels in a `ReqRepRequest` envelope.
    let reply: String = within("ask renamed", agent.ask::<_, String>(&5u32))
        .await
        .unwrap();
    assert_eq!(reply, "#5");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_codec_is_used_on_the_wire() {
    let app = start("codec", &["compact"]).await;
    let agent = app.agent("compact").unwrap();
    assert_eq!(*agent.value_codec(), "bincode");
    assert_eq!(agent.info().value_codec, "bincode");
    let reply: u32 = within("ask compact", agent.ask::<_, u32>(&41u32))
        .await
        .unwrap();
    assert_eq!(reply, 42);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_is_called_and_the_handler_carries_on() {
    let app = start("on-error", &["picky"]).await;
    let agent = app.agent("picky").unwrap();
    assert!(agent.info().has_on_error);
    within("send", agent.send(&-1i64)).await.unwrap();
    let errors = ERRORS.wait_for(1, "on_error").await;
    assert_eq!(errors[0].0, "picky");
    assert!(errors[0].1.contains("negative input -1"), "{}", errors[0].1);
    let ok: i64 = within("ask picky", agent.ask::<_, i64>(&5)).await.unwrap();
    assert_eq!(ok, 5);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_on_error_is_awaited_within_the_agent() {
    let app = start("on-error-async", &["picky_async"]).await;
    let agent = app.agent("picky_async").unwrap();
    let err = within("ask", agent.ask::<_, i64>(&-2)).await.unwrap_err();
    assert!(err.to_string().contains("negative input -2"), "{err}");
    // The error reply came after the handler finished.
    let seen = ASYNC_ERRORS.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].0.starts_with("picky_async: "), "{seen:?}");
    assert_eq!(seen[0].1.as_deref(), Some("picky_async"));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_supervisor_crashes_the_app() {
    let app = start("crashing", &["crasher"]).await;
    let agent = app.agent("crasher").unwrap();
    assert_eq!(agent.supervisor_strategy().name(), "crashing");
    within("send", agent.send(&1i64)).await.unwrap();
    let err = within("app crash", app.wait_crashed()).await;
    assert!(err.to_string().contains("crash on 1"), "{err}");
    let _ = app.stop().await;
}

#[tokio::test]
async fn topic_can_be_a_call_giving_a_topic_object() {
    let app = start("readings", &["collect_readings"]).await;
    let agent = app.agent("collect_readings").unwrap();
    assert_eq!(agent.topic(), "macro-readings");
    assert_eq!(agent.value_codec().name(), "bincode", "the topic's codec");
    let found = app.transport().describe_topic("macro-readings").await;
    assert_eq!(found.unwrap().map(|t| t.partitions), Some(2));
    app.send_to(&readings_topic(), &7_i64).await.unwrap();
    assert_eq!(READINGS.wait_for(1, "the reading").await, [7]);
    app.stop().await.unwrap();
}
