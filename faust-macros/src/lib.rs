//! The `#[agent]` attribute macro and `#[derive(Record)]` of faust for Rust.
//!
//! Users depend on the `faust` facade, which re-exports [`macro@agent`] and
//! [`macro@Record`]; the generated code refers only to `::faust::__private`.

mod ast;
mod batch;
mod expand;
mod record;
#[cfg(test)]
mod test_support;
mod timer;
mod valid;

use proc_macro::TokenStream;

/// Declare an agent: an async function the runtime runs on every event of a
/// topic, as one or more supervised actors.
///
/// The function stays exactly as written (call it directly in unit tests);
/// the attribute adds one registration that `faust::run()`,
/// `faust::registered_app()` and `faust::registered_agents()` pick up.
///
/// # The forms
///
/// The form is decided from the signature. Parameter and return types are
/// matched by their last path segment, so `faust::Stream<T>`,
/// `Stream<T>`, `faust::Result<()>`, `anyhow::Result<()>` and
/// `Result<(), MyError>` all work; the error type may be anything that
/// converts into `Box<dyn std::error::Error + Send + Sync>`. Event and
/// value types are serde types (`faust::Value`).
///
/// **Consumer** — reads its stream and produces nothing:
///
/// ```ignore
/// use faust::{agent, Stream};
///
/// /// Log every click.
/// #[agent(topic = "clicks")]
/// async fn log_clicks(mut clicks: Stream<Click>) -> faust::Result<()> {
///     while let Some(click) = clicks.next().await {
///         tracing::info!(?click);
///     }
///     Ok(())
/// }
/// ```
///
/// **Value producer** (Faust's `yield`) — each value sent to `out` answers
/// the current event (if it was an `ask`) and goes to every sink:
///
/// ```ignore
/// use faust::{agent, Stream, Yield};
///
/// #[agent(topic = "orders", concurrency = 4, sink = ["@totals"])]
/// async fn price(mut orders: Stream<Order>, out: Yield<f64>) -> faust::Result<()> {
///     while let Some(order) = orders.next().await {
///         out.send(order.unit_price * f64::from(order.quantity)).await?;
///     }
///     Ok(())
/// }
/// ```
///
/// **Per-event handler** — called once per event; its `Ok` value answers
/// the event and goes to the sinks; an `Err` fails that event only:
///
/// ```ignore
/// use faust::agent;
///
/// /// Double a number.
/// #[agent]
/// async fn double(x: i64) -> anyhow::Result<i64> {
///     Ok(x * 2)
/// }
///
/// // elsewhere: let four: i64 = app.agent("double")?.ask(&2).await?;
/// ```
///
/// **Batch handler** — with `batch = N` and `within = "..."`, called once
/// per batch of up to `N` events (waiting at most `within` after a batch's
/// first event for more); it returns one result per event, in order, and
/// result `i` answers event `i` and goes to the sinks. A wrong number of
/// results or an `Err` answers every request of the batch with an error; a
/// panic crashes the actor, and the restarted one gets the batch again
/// (nothing of it is committed before it is processed):
///
/// ```ignore
/// use faust::agent;
///
/// #[agent(topic = "rows", batch = 100, within = "1s")]
/// async fn insert(rows: Vec<Row>) -> anyhow::Result<Vec<RowId>> {
///     db::insert_all(&rows).await // one round trip for up to 100 rows
/// }
/// ```
///
/// The future of the function must be `Send` (actors run on a multi-threaded
/// runtime): do not hold an `Rc` or a `std::sync::MutexGuard` across an
/// `.await`. The function must be a free function (in a module or a function
/// body, not in an `impl` block): no `self`, no generics.
///
/// # Arguments
///
/// All are optional; write them as `#[agent(key = value, ...)]`.
///
/// | Argument | Value | Default |
/// |---|---|---|
/// | `topic` | `"name"`: the topic to consume, or `["a", "b"]`: several topics, read as one stream (each name once, none empty), or a call giving a `Topic` (`orders_topic()`: its settings and codecs) | `<app id>-<module path>.<fn>` (`::` becomes `.`) |
/// | `topic_pattern` | `"orders-.*"`: also every topic whose whole name matches this regular expression, including topics created later (checked at compile time) | none |
/// | `name` | `"name"`: the agent's name (for `app.agent(..)`, `"@name"` sinks and the CLI) | the function's name |
/// | `concurrency` | `N ≥ 1`: actors sharing the agent's queue | `1` |
/// | `isolated_partitions` | flag, or `= true`/`false`: one actor per assigned partition (needs `concurrency = 1`) | `false` |
/// | `partitions` | `N ≥ 1`: partitions of the topic when the app creates it | the app's |
/// | `batch` | `N ≥ 1`: the batch form (`async fn f(batch: Vec<T>) -> Result<Vec<R>>`), up to `N` events a call | none |
/// | `within` | `"500ms"`, `"1s"`, `"2m"`: with `batch`, how long a batch waits for more events after its first | required with `batch` |
/// | `sink` | `[..]` of `"topic"`, `"@agent"` or a callback path (see below) | none |
/// | `on_error` | a path to `fn(&faust::Agent, &faust::Error)` (or a closure) | none |
/// | `on_error_async` | a path to `async fn(faust::Agent, faust::Error)`, awaited before the failed event is acked (instead of `on_error`) | none |
/// | `supervisor` | `one_for_one`, `one_for_all`, `forfeit_one_for_one`, `forfeit_one_for_all` or `crashing` (an identifier or a string), or a strategy of one's own (`faust::supervisor::SupervisorStrategyT`) as a path with `::` or an expression (`my::Strategy`, `Strategy::new()`) | the app's `agent_supervisor`, `one_for_one` |
/// | `codec` (alias `value_codec`) | codec of values: a built-in name or chain (`"json"`, `"bincode"`, `"raw"`, `"json\|binary"`, `"binary"`), or an expression giving a codec (`MyCodec`, `CodecRef::named("msgpack")`) | the app's (JSON) |
/// | `key_codec` | codec of keys, as `codec` | `"raw"` |
/// | `use_reply_headers` | `true`/`false`: reply address in headers, or in a `ReqRepRequest` envelope | `true` |
/// | `help` | `"text"`: shown by the CLI's `agents` command | the doc comment (lines trimmed and joined), or empty |
/// | `crate` | `"path"`: where faust is, for a crate that re-exports it (`crate = "my_runtime::faust"`) | `::faust` |
///
/// ## Sinks
///
/// Only value-producing agents (the producer, handler and batch forms) may have
/// sinks. Every produced value goes to each sink in order (a single sink may
/// be written without the brackets: `sink = "@totals"`):
///
/// - `"topic-name"` — produced to that topic (`Sink::topic`);
/// - `"@other_agent"` — sent to another agent of the app (`Sink::agent`);
/// - a path (or closure) — called with each value (`Sink::callback`): any
///   `Fn(&R)`, `Fn(&R) -> Result<(), E>`, or async `Fn(R)` (with `R: Clone`).
///
/// ```ignore
/// fn audit(total: &f64) { println!("{total}") }
///
/// #[agent(sink = ["totals", "@report", audit])]
/// async fn add(x: f64) -> faust::Result<f64> { Ok(x) }
/// ```
///
/// ## Errors and supervision
///
/// ```ignore
/// fn alert(agent: &faust::Agent, err: &faust::Error) {
///     tracing::error!(agent = agent.name(), %err, "agent failed");
/// }
///
/// #[agent(on_error = alert, supervisor = one_for_all, concurrency = 2)]
/// async fn fragile(mut s: Stream<String>) -> faust::Result<()> { /* ... */ Ok(()) }
/// ```
///
/// # Compile-time checks
///
/// Misuse is reported at the token at fault, every argument error at once:
/// a function that is not `async`; a wrong parameter count or type; a return
/// type that is not a `Result` (or not `Result<()>` for a consumer or
/// producer); `self` or generics; an unknown argument (the message lists
/// the valid ones) or one given twice; `concurrency = 0`;
/// `isolated_partitions` with `concurrency > 1`; `sink` on a consumer;
/// `batch` without `within` (or on a stream function), a batch function
/// not taking a `Vec` or not returning `Result<Vec<R>>`; an
/// unknown supervisor strategy or codec; a future that is not `Send` (the
/// error points at the function's name).
///
/// # Registration
///
/// The expansion is the function plus one `inventory` submission of a
/// `faust::__private::AgentDescriptor` (name, file, line and a `build`
/// function returning the agent's `AgentSpec`). Collect them with
/// `faust::registered_agents()` (sorted by name; two agents with one name
/// are an error naming both places) or add one to an app explicitly:
///
/// ```ignore
/// let app = faust::App::builder("my-app").build()?;
/// for d in faust::registered_agents()? {
///     if d.name == "double" {
///         app.add_agent((d.build)())?;
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn agent(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::agent(args.into(), item.into()).into()
}

/// Declare a timer: an async function the app runs every interval while
/// it runs (Faust's `@app.timer`), registered like an agent and picked up
/// by `faust::run()` and `faust::registered_app()`.
///
/// ```ignore
/// /// Log the number of agents every five seconds, on one worker only.
/// #[faust::timer(interval = "5s", on_leader)]
/// async fn report(app: faust::App) -> faust::Result<()> {
///     tracing::info!(agents = app.agents().len(), "alive");
///     Ok(())
/// }
/// ```
///
/// The function takes no parameter or the app (`faust::App`) and returns a
/// `Result<()>` whose error converts into a boxed error. Arguments:
///
/// | Argument | Value | Default |
/// |---|---|---|
/// | `interval` | `"250ms"`, `"5s"`, `"2m"`, `"1h"`, or a number of seconds (`1.5`) | required |
/// | `on_leader` | flag, or `= true`/`false`: run on the group's leader only | `false` |
/// | `name` | `"name"` | the function's name |
/// | `crate` | `"path"`: where faust is | `::faust` |
///
/// How a timer runs, fails and stops: `faust::TimerSpec`.
#[proc_macro_attribute]
pub fn timer(args: TokenStream, item: TokenStream) -> TokenStream {
    timer::timer(args.into(), item.into()).into()
}

/// Make a struct a Faust record: `faust::Record` with its namespace, and
/// serde's `Serialize` and `Deserialize` in Faust's JSON form.
///
/// ```ignore
/// #[derive(faust::Record)]
/// #[faust(namespace = "shop.Order")]   // Python's namespace="shop.Order"
/// struct Order {
///     id: i64,
///     item: String,
///     note: Option<String>,            // may be missing: None
/// }
/// // {"id":1,"item":"x","note":null,"__faust":{"ns":"shop.Order"}}
/// ```
///
/// **Serialize** writes the fields in declaration order, then the marker
/// `"__faust": {"ns": "<namespace>"}`, as Faust does. **Deserialize**
/// accepts the marker anywhere and accepts its absence (plain JSON from a
/// non-Faust producer); a different namespace is an error naming both
/// (*expected a Faust record \`shop.Order\`, got \`shop.Refund\`*).
/// Unknown fields are ignored (Faust models gain fields over time), and an
/// `Option` field may be missing (`None`). A field whose type is itself a
/// record nests as Faust nests records. Do not also derive serde's traits.
///
/// # Attributes
///
/// On the struct, `#[faust(...)]`:
///
/// | Argument | Value | Default |
/// |---|---|---|
/// | `namespace` | `"ns"`: the model namespace | `<module path>.<type name>` (`::` becomes `.`, like Faust's `<module>.<class>`) |
/// | `crate` | `"path"`: where faust is, for a crate that re-exports it | `::faust` |
///
/// On fields, `#[serde(...)]` with `rename = "key"`, `default`,
/// `default = "path"` and `skip_serializing_if = "path"`; any other serde
/// attribute, and `#[serde(...)]` on the struct, is a compile error.
///
/// Only structs with named fields and no generics: an enum, a tuple or unit
/// struct, or a generic struct is a compile error saying what to write
/// instead. To read several record types from one topic, consume
/// `serde_json::Value` and dispatch on `faust::model::namespace_of`.
#[proc_macro_derive(Record, attributes(faust, serde))]
pub fn derive_record(item: TokenStream) -> TokenStream {
    record::derive(item.into()).into()
}
