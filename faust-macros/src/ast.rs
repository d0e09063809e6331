//! Parse: the attribute's arguments into [`Args`], the item into an `ItemFn`.
//!
//! Parsing never stops at the first mistake: a bad argument is recorded and
//! the parser skips to the next `,`, so every argument error is reported in
//! one compilation.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::discouraged::Speculative;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitInt, LitStr, Token};

/// The argument keywords.
pub(crate) mod kw {
    syn::custom_keyword!(topic);
    syn::custom_keyword!(topic_pattern);
    syn::custom_keyword!(channel);
    syn::custom_keyword!(name);
    syn::custom_keyword!(concurrency);
    syn::custom_keyword!(isolated_partitions);
    syn::custom_keyword!(partitions);
    syn::custom_keyword!(sink);
    syn::custom_keyword!(on_error);
    syn::custom_keyword!(on_error_async);
    syn::custom_keyword!(schema);
    syn::custom_keyword!(supervisor);
    syn::custom_keyword!(codec);
    syn::custom_keyword!(value_codec);
    syn::custom_keyword!(key_codec);
    syn::custom_keyword!(use_reply_headers);
    syn::custom_keyword!(help);
    syn::custom_keyword!(batch);
    syn::custom_keyword!(within);
}

/// Every argument key, in the order the docs list them.
pub(crate) const KEYS: &[&str] = &[
    "topic",
    "topic_pattern",
    "channel",
    "name",
    "concurrency",
    "isolated_partitions",
    "partitions",
    "batch",
    "within",
    "sink",
    "on_error",
    "on_error_async",
    "schema",
    "supervisor",
    "codec",
    "value_codec",
    "key_codec",
    "use_reply_headers",
    "help",
    "crate",
];

/// The built-in codec names; a test checks them against
/// `faust_core::codec::BUILTIN_CODECS`.
pub(crate) const CODECS: &[&str] = &["json", "bincode", "raw"];

/// The built-in transform names; a test checks them against
/// `faust_core::codec::BUILTIN_TRANSFORMS`.
pub(crate) const TRANSFORMS: &[&str] = &["binary"];

/// Whether a bare identifier names a built-in codec or transform.
fn is_builtin_codec_name(name: &str) -> bool {
    CODECS.contains(&name) || TRANSFORMS.contains(&name)
}

/// One argument: where its key is, and its value.
pub(crate) struct Arg<T> {
    /// The key token (errors about the argument as a whole point here).
    pub(crate) key: Span,
    /// The parsed value.
    pub(crate) value: T,
}

/// A name given as an identifier or a string (`one_for_all` or `"json"`).
pub(crate) struct Name {
    pub(crate) text: String,
    pub(crate) span: Span,
}

/// The value of `supervisor`.
pub(crate) enum SupervisorArg {
    /// A built-in strategy's name (`one_for_all`, `"crashing"`).
    Name(Name),
    /// A strategy of one's own: a path with `::`, a call, a struct literal.
    Expr(Expr),
}

/// The value of `codec`, `value_codec` or `key_codec`.
pub(crate) enum CodecArg {
    /// A string (`"json|binary"`), or a bare built-in name (`raw`).
    Name(Name),
    /// Any other expression: a codec value (`MyCodec`), passed on as
    /// `impl Into<CodecRef>`.
    Expr(Expr),
}

/// The value of `topic`: one name, or a bracketed list of names.
pub(crate) enum TopicArg {
    /// `topic = "orders"`.
    One(LitStr),
    /// `topic = ["orders", "refunds"]`: the string elements (any other
    /// element is reported while parsing and left out).
    Many(Vec<LitStr>),
    /// `topic = orders_topic()`: a call (function or method) evaluating to
    /// a `Topic` (or anything converting into one).
    Expr(Expr),
}

/// One element of `sink = [...]`.
pub(crate) enum SinkArg {
    /// `"topic-name"`.
    Topic(LitStr),
    /// `"@agent"`: the name without the `@`.
    Agent(LitStr, String),
    /// A function (path or closure) called with each value.
    Callback(Expr),
}

/// The attribute's arguments, each at most once.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) topic: Option<Arg<TopicArg>>,
    pub(crate) name: Option<Arg<LitStr>>,
    pub(crate) concurrency: Option<Arg<LitInt>>,
    pub(crate) isolated_partitions: Option<Arg<bool>>,
    pub(crate) partitions: Option<Arg<LitInt>>,
    /// `batch = 100`: the batch form's batch size.
    pub(crate) batch: Option<Arg<LitInt>>,
    /// `within = "1s"`: how long a batch waits for more after its first event.
    pub(crate) within: Option<Arg<LitStr>>,
    pub(crate) sink: Option<Arg<Vec<SinkArg>>>,
    pub(crate) on_error: Option<Arg<Expr>>,
    pub(crate) on_error_async: Option<Arg<Expr>>,
    /// `schema = orders_schema()`: a `Schema<K, V>` expression.
    pub(crate) schema: Option<Arg<Expr>>,
    pub(crate) supervisor: Option<Arg<SupervisorArg>>,
    pub(crate) value_codec: Option<Arg<CodecArg>>,
    pub(crate) key_codec: Option<Arg<CodecArg>>,
    pub(crate) use_reply_headers: Option<Arg<bool>>,
    pub(crate) help: Option<Arg<LitStr>>,
    /// `topic_pattern = "orders-.*"`.
    pub(crate) topic_pattern: Option<Arg<LitStr>>,
    /// `channel = "lines"`: an in-memory channel instead of topics.
    pub(crate) channel: Option<Arg<LitStr>>,
    /// `crate = "path"`: where the faust crate is, for users who re-export it.
    pub(crate) krate: Option<Arg<syn::Path>>,
}

/// Collected errors, combined into one `syn::Error`.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    pub(crate) fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    pub(crate) fn spanned(&mut self, tokens: impl quote::ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    /// How many errors so far.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |e| e.into_iter().count())
    }

    pub(crate) fn into_result(self) -> Option<syn::Error> {
        self.0
    }
}

impl Args {
    /// Parse the attribute's arguments, collecting every error.
    pub(crate) fn parse(tokens: TokenStream) -> (Args, Errors) {
        let parser = |input: ParseStream<'_>| {
            let mut args = Args::default();
            let mut errors = Errors::default();
            while !input.is_empty() {
                if let Err(e) = args.parse_one(input, &mut errors) {
                    errors.push(e);
                    skip_to_comma(input);
                }
                if input.is_empty() {
                    break;
                }
                if input.peek(Token![,]) {
                    input.parse::<Token![,]>()?;
                } else {
                    errors.at(
                        input.span(),
                        "expected `,` between arguments, e.g. `#[agent(topic = \"orders\", concurrency = 4)]`",
                    );
                    skip_to_comma(input);
                    let _ = input.parse::<Option<Token![,]>>();
                }
            }
            Ok((args, errors))
        };
        match parser.parse2(tokens) {
            Ok(parsed) => parsed,
            Err(e) => {
                let mut errors = Errors::default();
                errors.push(e);
                (Args::default(), errors)
            }
        }
    }

    fn parse_one(&mut self, input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<()> {
        if input.peek(kw::topic) {
            let key = input.parse::<kw::topic>()?.span;
            let value = topic_value(input, key, errors)?;
            set(&mut self.topic, "topic", key, value, errors);
        } else if input.peek(kw::name) {
            let key = input.parse::<kw::name>()?.span;
            let value = str_value(input, key, "name", "name = \"price\"")?;
            set(&mut self.name, "name", key, value, errors);
        } else if input.peek(kw::concurrency) {
            let key = input.parse::<kw::concurrency>()?.span;
            let value = int_value(input, key, "concurrency", "concurrency = 4")?;
            set(&mut self.concurrency, "concurrency", key, value, errors);
        } else if input.peek(kw::isolated_partitions) {
            let key = input.parse::<kw::isolated_partitions>()?.span;
            let value = flag_value(input, "isolated_partitions")?;
            set(
                &mut self.isolated_partitions,
                "isolated_partitions",
                key,
                value,
                errors,
            );
        } else if input.peek(kw::partitions) {
            let key = input.parse::<kw::partitions>()?.span;
            let value = int_value(input, key, "partitions", "partitions = 8")?;
            set(&mut self.partitions, "partitions", key, value, errors);
        } else if input.peek(kw::batch) {
            let key = input.parse::<kw::batch>()?.span;
            let value = int_value(input, key, "batch", "batch = 100")?;
            set(&mut self.batch, "batch", key, value, errors);
        } else if input.peek(kw::within) {
            let key = input.parse::<kw::within>()?.span;
            let value = str_value(input, key, "within", "within = \"1s\"")?;
            set(&mut self.within, "within", key, value, errors);
        } else if input.peek(kw::sink) {
            let key = input.parse::<kw::sink>()?.span;
            let value = sink_value(input, key)?;
            set(&mut self.sink, "sink", key, value, errors);
        } else if input.peek(kw::on_error) {
            let key = input.parse::<kw::on_error>()?.span;
            expect_eq(input, key, "on_error", "on_error = my_error_handler")?;
            let value: Expr = input.parse()?;
            set(&mut self.on_error, "on_error", key, value, errors);
        } else if input.peek(kw::on_error_async) {
            let key = input.parse::<kw::on_error_async>()?.span;
            expect_eq(
                input,
                key,
                "on_error_async",
                "on_error_async = my_async_error_handler",
            )?;
            let value: Expr = input.parse()?;
            set(
                &mut self.on_error_async,
                "on_error_async",
                key,
                value,
                errors,
            );
        } else if input.peek(kw::schema) {
            let key = input.parse::<kw::schema>()?.span;
            expect_eq(
                input,
                key,
                "schema",
                "schema = Schema::<String, Order>::new()",
            )?;
            let value: Expr = input.parse()?;
            set(&mut self.schema, "schema", key, value, errors);
        } else if input.peek(kw::supervisor) {
            let key = input.parse::<kw::supervisor>()?.span;
            expect_eq(input, key, "supervisor", "supervisor = one_for_all")?;
            let value = if input.peek(LitStr) {
                let lit: LitStr = input.parse()?;
                SupervisorArg::Name(Name {
                    text: lit.value(),
                    span: lit.span(),
                })
            } else {
                match input.parse::<Expr>()? {
                    // A bare name is a built-in's (checked, so a typo is
                    // not taken for a type of one's own).
                    Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                        let ident = p.path.get_ident().expect("checked");
                        SupervisorArg::Name(Name {
                            text: ident.unraw().to_string(),
                            span: ident.span(),
                        })
                    }
                    other => SupervisorArg::Expr(other),
                }
            };
            set(&mut self.supervisor, "supervisor", key, value, errors);
        } else if input.peek(kw::codec) || input.peek(kw::value_codec) {
            let (key, spelled) = if input.peek(kw::codec) {
                (input.parse::<kw::codec>()?.span, "codec")
            } else {
                (input.parse::<kw::value_codec>()?.span, "value_codec")
            };
            let value = codec_value(input, key, spelled)?;
            if self.value_codec.is_some() {
                errors.at(
                    key,
                    format!(
                        "duplicate argument `{spelled}`: `codec` and `value_codec` both set the \
                         value codec; keep only one"
                    ),
                );
            } else {
                self.value_codec = Some(Arg { key, value });
            }
        } else if input.peek(kw::key_codec) {
            let key = input.parse::<kw::key_codec>()?.span;
            let value = codec_value(input, key, "key_codec")?;
            set(&mut self.key_codec, "key_codec", key, value, errors);
        } else if input.peek(kw::use_reply_headers) {
            let key = input.parse::<kw::use_reply_headers>()?.span;
            let value = flag_value(input, "use_reply_headers")?;
            set(
                &mut self.use_reply_headers,
                "use_reply_headers",
                key,
                value,
                errors,
            );
        } else if input.peek(kw::topic_pattern) {
            let key = input.parse::<kw::topic_pattern>()?.span;
            let value = str_value(input, key, "topic_pattern", "topic_pattern = \"orders-.*\"")?;
            set(&mut self.topic_pattern, "topic_pattern", key, value, errors);
        } else if input.peek(kw::channel) {
            let key = input.parse::<kw::channel>()?.span;
            let value = str_value(input, key, "channel", "channel = \"lines\"")?;
            set(&mut self.channel, "channel", key, value, errors);
        } else if input.peek(kw::help) {
            let key = input.parse::<kw::help>()?.span;
            let value = str_value(input, key, "help", "help = \"Price each order.\"")?;
            set(&mut self.help, "help", key, value, errors);
        } else if input.peek(Token![crate]) {
            let key = input.parse::<Token![crate]>()?.span;
            let value = path_value(input, key)?;
            set(&mut self.krate, "crate", key, value, errors);
        } else if input.peek(Ident::peek_any) {
            let unknown = input.call(Ident::parse_any)?;
            let text = unknown.unraw().to_string();
            let keys = KEYS.join(", ");
            let msg = match closest(&text) {
                Some(k) => format!(
                    "unknown argument `{text}`; did you mean `{k}`? The arguments of #[agent] are: {keys}"
                ),
                None => format!(
                    "unknown argument `{text}`; the arguments of #[agent] are: {keys}"
                ),
            };
            return Err(syn::Error::new(unknown.span(), msg));
        } else {
            return Err(syn::Error::new(
                input.span(),
                format!(
                    "expected an argument name, e.g. `#[agent(topic = \"orders\")]`; the \
                     arguments of #[agent] are: {}",
                    KEYS.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Store an argument, or report a duplicate at the second key.
fn set<T>(slot: &mut Option<Arg<T>>, name: &str, key: Span, value: T, errors: &mut Errors) {
    if slot.is_some() {
        errors.at(
            key,
            format!("duplicate argument `{name}`: it is already set above; keep only one"),
        );
    } else {
        *slot = Some(Arg { key, value });
    }
}

/// Skip the rest of a bad argument, up to (not including) the next `,`.
fn skip_to_comma(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<TokenTree>().is_err() {
            break;
        }
    }
}

fn expect_eq(input: ParseStream<'_>, key: Span, name: &str, usage: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        if input.is_empty() || input.peek(Token![,]) {
            return Err(syn::Error::new(
                key,
                format!("`{name}` needs a value after `=`: write `{usage}`"),
            ));
        }
        Ok(())
    } else {
        // Point at the key: the value is missing after it.
        Err(syn::Error::new(
            key,
            format!("`{name}` takes a value: write `{usage}`"),
        ))
    }
}

/// `= "..."`.
fn str_value(input: ParseStream<'_>, at: Span, key: &str, usage: &str) -> syn::Result<LitStr> {
    expect_eq(input, at, key, usage)?;
    if input.peek(LitStr) {
        input.parse()
    } else {
        Err(syn::Error::new(
            value_span(input),
            format!("`{key}` takes a string literal: write `{usage}`"),
        ))
    }
}

/// `= "orders"` or `= ["orders", "refunds"]`. Every element that is not a
/// string literal is reported (and left out), not just the first.
fn topic_value(input: ParseStream<'_>, at: Span, errors: &mut Errors) -> syn::Result<TopicArg> {
    expect_eq(input, at, "topic", "topic = \"orders\"")?;
    if input.peek(LitStr) {
        return Ok(TopicArg::One(input.parse()?));
    }
    if !input.peek(syn::token::Bracket) {
        let fork = input.fork();
        if let Ok(expr @ (Expr::Call(_) | Expr::MethodCall(_))) = fork.parse::<Expr>() {
            input.advance_to(&fork);
            return Ok(TopicArg::Expr(expr));
        }
        return Err(syn::Error::new(
            value_span(input),
            "`topic` takes a string literal, or a list of them for several topics: write \
             `topic = \"orders\"` or `topic = [\"orders\", \"refunds\"]`; or a call \
             giving a `Topic`: `topic = orders_topic()`",
        ));
    }
    let content;
    let bracket = syn::bracketed!(content in input);
    let elems = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    if elems.is_empty() {
        return Err(syn::Error::new(
            bracket.span.join(),
            "`topic = []` names no topic: list at least one (`topic = [\"orders\"]`), or \
             leave `topic` out to use `<app id>-<module path>.<fn>`",
        ));
    }
    let mut names = Vec::new();
    for elem in elems {
        match elem {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => names.push(lit),
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                let ident = p.path.get_ident().map(|i| i.unraw().to_string());
                let ident = ident.unwrap_or_default();
                errors.spanned(
                    &p,
                    format!("a topic name is a string literal: put it in quotes, `\"{ident}\"`"),
                );
            }
            Expr::Lit(ExprLit { lit, .. }) => {
                let text = lit.to_token_stream().to_string();
                errors.spanned(
                    &lit,
                    format!("a topic name is a string literal: put it in quotes, `\"{text}\"`"),
                );
            }
            other => errors.spanned(
                &other,
                "a topic name is a string literal: write `topic = [\"orders\", \"refunds\"]`",
            ),
        }
    }
    Ok(TopicArg::Many(names))
}

/// `= 4`.
fn int_value(input: ParseStream<'_>, at: Span, key: &str, usage: &str) -> syn::Result<LitInt> {
    expect_eq(input, at, key, usage)?;
    if input.peek(LitInt) {
        input.parse()
    } else {
        Err(syn::Error::new(
            value_span(input),
            format!("`{key}` takes a positive integer literal: write `{usage}`"),
        ))
    }
}

/// A bare flag (`isolated_partitions`) or `= true|false`.
fn flag_value(input: ParseStream<'_>, key: &str) -> syn::Result<bool> {
    if !input.peek(Token![=]) {
        return Ok(true);
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitBool) {
        Ok(input.parse::<LitBool>()?.value)
    } else {
        Err(syn::Error::new(
            value_span(input),
            format!("`{key}` takes `true` or `false`: write `{key}` or `{key} = false`"),
        ))
    }
}

/// `= "path::to::faust"`: a path without generic arguments.
fn path_value(input: ParseStream<'_>, at: Span) -> syn::Result<syn::Path> {
    let usage = "crate = \"my_crate::faust\"";
    let lit = str_value(input, at, "crate", usage)?;
    lit.parse_with(syn::Path::parse_mod_style).map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "`crate` takes the path the faust crate is reachable at, as a string: write `{usage}`"
            ),
        )
    })
}

/// `= "json|binary"`, `= raw` (a bare built-in name) or `= <expression>`.
fn codec_value(input: ParseStream<'_>, at: Span, key: &str) -> syn::Result<CodecArg> {
    expect_eq(input, at, key, &format!("{key} = \"json\""))?;
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        return Ok(CodecArg::Name(Name {
            text: lit.value(),
            span: lit.span(),
        }));
    }
    let expr: Expr = input.parse()?;
    if let Expr::Path(p) = &expr {
        if let Some(ident) = p.path.get_ident().filter(|_| p.qself.is_none()) {
            let text = ident.unraw().to_string();
            if is_builtin_codec_name(&text) {
                return Ok(CodecArg::Name(Name {
                    text,
                    span: ident.span(),
                }));
            }
        }
    }
    Ok(CodecArg::Expr(expr))
}

/// `= ["topic", "@agent", callback, ...]` (or a single element).
fn sink_value(input: ParseStream<'_>, at: Span) -> syn::Result<Vec<SinkArg>> {
    expect_eq(
        input,
        at,
        "sink",
        "sink = [\"topic\", \"@agent\", callback]",
    )?;
    let exprs: Vec<Expr> = if input.peek(syn::token::Bracket) {
        let content;
        syn::bracketed!(content in input);
        Punctuated::<Expr, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect()
    } else {
        vec![input.parse()?]
    };
    // Report every bad element, not just the first.
    let mut errors = Errors::default();
    let mut sinks = Vec::new();
    for expr in exprs {
        match sink_arg(expr) {
            Ok(sink) => sinks.push(sink),
            Err(e) => errors.push(e),
        }
    }
    match errors.into_result() {
        Some(e) => Err(e),
        None => Ok(sinks),
    }
}

fn sink_arg(expr: Expr) -> syn::Result<SinkArg> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            let text = lit.value();
            if let Some(agent) = text.strip_prefix('@') {
                if agent.is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "an agent sink names the agent after the `@`: write `\"@other_agent\"`",
                    ));
                }
                let agent = agent.to_string();
                Ok(SinkArg::Agent(lit, agent))
            } else if text.is_empty() {
                Err(syn::Error::new(
                    lit.span(),
                    "a topic sink needs a topic name: write `\"topic-name\"` (or `\"@agent\"` for an agent)",
                ))
            } else {
                Ok(SinkArg::Topic(lit))
            }
        }
        Expr::Lit(other) => Err(syn::Error::new(
            other.span(),
            "a sink is a topic name (`\"topic\"`), an agent (`\"@agent\"`) or a function \
             called with each value (`path::to::callback`)",
        )),
        callback => Ok(SinkArg::Callback(callback)),
    }
}

/// Where the value should have been (the next token, or the end).
fn value_span(input: ParseStream<'_>) -> Span {
    input
        .fork()
        .parse::<TokenTree>()
        .map(|t| t.span())
        .unwrap_or_else(|_| input.span())
}

/// The known key closest to a misspelled one, if any is close enough.
fn closest(unknown: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
