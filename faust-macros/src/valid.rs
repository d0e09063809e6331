//! Validate: decide the function's form from its signature and check the
//! arguments against it. Every problem is reported at its token, all at once.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::{
    Attribute, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemFn, Lit, LitInt, LitStr, Meta,
    PathArguments, ReturnType, Signature, Type,
};

use crate::ast::{
    Arg, Args, CodecArg, Errors, Name, SinkArg, SupervisorArg, TopicArg, CODECS, TRANSFORMS,
};
use crate::batch::{self, Batch};

/// The agent function forms.
pub(crate) enum Form {
    /// `async fn(Stream<T>) -> Result<()>`.
    Consumer,
    /// `async fn(Stream<T>, Yield<R>) -> Result<()>`; `out` is `R`.
    Yielding { out: Type },
    /// `async fn(T) -> Result<R>`; `out` is `R`.
    Handler { out: Type },
    /// `#[agent(batch = N, within = "..")] async fn(Vec<T>) -> Result<Vec<R>>`;
    /// `out` is `R`.
    Batch { out: Type },
}

impl Form {
    /// The type of the values the agent produces, if it produces any.
    pub(crate) fn output(&self) -> Option<&Type> {
        match self {
            Form::Consumer => None,
            Form::Yielding { out } | Form::Handler { out } | Form::Batch { out } => Some(out),
        }
    }
}

/// A checked agent declaration, ready to expand.
pub(crate) struct Agent {
    pub(crate) ident: Ident,
    pub(crate) name: String,
    pub(crate) form: Form,
    /// `topic`: one name or a list (checked: non-empty, no name twice).
    pub(crate) topic: Option<TopicArg>,
    /// `topic_pattern`: a regular expression (checked: it compiles).
    pub(crate) topic_pattern: Option<LitStr>,
    /// `channel`: an in-memory channel (checked: not with topics).
    pub(crate) channel: Option<LitStr>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) partitions: Option<i32>,
    pub(crate) isolated_partitions: Option<bool>,
    /// `batch` and `within`, for the batch form.
    pub(crate) batch: Option<Batch>,
    pub(crate) use_reply_headers: Option<bool>,
    pub(crate) sinks: Vec<SinkArg>,
    /// `on_error` (`false`) or `on_error_async` (`true`).
    pub(crate) on_error: Option<(Expr, bool)>,
    /// `schema`: a `Schema<K, V>` expression (its `V` checked against the
    /// function's value type by the compiler).
    pub(crate) schema: Option<Expr>,
    /// Variant of `SupervisorStrategy`.
    pub(crate) supervisor: Option<SupervisorOut>,
    /// A checked built-in name or chain, or an expression.
    pub(crate) value_codec: Option<CodecOut>,
    /// A checked built-in name or chain, or an expression.
    pub(crate) key_codec: Option<CodecOut>,
    pub(crate) help: String,
    /// `crate = "..."`: the path of the faust crate, if not `::faust`.
    pub(crate) krate: Option<syn::Path>,
    /// `#[cfg]` attributes of the function, repeated on the registration.
    pub(crate) cfgs: Vec<Attribute>,
}

/// `supervisor = ...` names and their `SupervisorStrategy` variants; a test
/// checks them against `SupervisorStrategy::ALL`.
const SUPERVISORS: &[(&str, &str)] = &[
    ("one_for_one", "OneForOne"),
    ("one_for_all", "OneForAll"),
    ("forfeit_one_for_one", "ForfeitOneForOne"),
    ("forfeit_one_for_all", "ForfeitOneForAll"),
    ("crashing", "Crashing"),
];

/// A codec argument, checked.
pub(crate) enum CodecOut {
    /// A built-in name or chain (`"json|binary"`), normalized.
    Name(LitStr),
    /// Passed on as `impl Into<CodecRef>`.
    Expr(Expr),
}

/// Check a codec argument: a name must be a built-in codec or transform,
/// optionally followed by transforms (`"json|binary"`).
fn check_codec(arg: &CodecArg, errors: &mut Errors) -> Option<CodecOut> {
    let name = match arg {
        CodecArg::Expr(expr) => return Some(CodecOut::Expr(expr.clone())),
        CodecArg::Name(name) => name,
    };
    let parts: Vec<&str> = name.text.split('|').map(str::trim).collect();
    let fix = format!(
        "built-in codecs: {}; transforms: {} (chain them: `\"json|binary\"`). For a codec of \
         your own, pass its value: `codec = MyCodec`, or a name registered with \
         `App::builder(..).codec(\"name\", MyCodec)`: `codec = CodecRef::named(\"name\")`",
        CODECS.join(", "),
        TRANSFORMS.join(", ")
    );
    for (i, part) in parts.iter().enumerate() {
        let known = TRANSFORMS.contains(part) || (i == 0 && CODECS.contains(part));
        if known {
            continue;
        }
        let msg = if CODECS.contains(part) {
            format!(
                "codec `{part}` in `{}` must come first: a chain is a codec, then transforms; {fix}",
                name.text
            )
        } else {
            format!("unknown codec `{part}`; {fix}")
        };
        errors.at(name.span, msg);
        return None;
    }
    Some(CodecOut::Name(LitStr::new(&parts.join("|"), name.span)))
}

const FORMS: &str = "an agent function is one of: `async fn f(stream: Stream<T>) -> Result<()>` \
                     (consumer), `async fn f(stream: Stream<T>, out: Yield<R>) -> Result<()>` \
                     (value producer) or `async fn f(value: T) -> Result<R>` (one call per event)";

/// Check the function and the arguments; `errors` holds the parse errors so far.
pub(crate) fn validate(args: Args, func: &ItemFn, mut errors: Errors) -> Result<Agent, syn::Error> {
    let form = check_signature(&func.sig, &mut errors);
    let (form, batch) = batch::check(&args, &func.sig, form, &mut errors);

    let name = match &args.name {
        Some(Arg { value, .. }) => {
            let text = value.value();
            if text.is_empty() {
                errors.at(
                    value.span(),
                    "the agent name must not be empty: write `name = \"price\"` or leave \
                     `name` out to use the function's name",
                );
            } else if let Some(bare) = text.strip_prefix('@') {
                errors.at(
                    value.span(),
                    format!("write the agent name without the `@`: `name = \"{bare}\"`"),
                );
            }
            text
        }
        None => func.sig.ident.unraw().to_string(),
    };

    match args.topic.as_ref().map(|a| &a.value) {
        Some(TopicArg::One(value)) if value.value().is_empty() => errors.at(
            value.span(),
            "the topic name must not be empty: write `topic = \"orders\"` or leave `topic` out to use `<app id>-<module path>.<fn>`",
        ),
        Some(TopicArg::Many(names)) => check_topic_list(names, &mut errors),
        _ => {}
    }

    if let Some(Arg { value, .. }) = &args.topic_pattern {
        // The runtime anchors it the same way (`faust_core::transport::TopicPattern`).
        if let Err(e) = regex::Regex::new(&format!("^(?:{})$", value.value())) {
            let why = e.to_string();
            let why = why.lines().last().unwrap_or_default().trim();
            let why = why.strip_prefix("error: ").unwrap_or(why);
            errors.at(
                value.span(),
                format!(
                    "`topic_pattern` is not a valid regular expression ({why}): e.g. `topic_pattern = \"orders-.*\"`"
                ),
            );
        }
    }

    if let (Some(schema), Some(channel)) = (&args.schema, &args.channel) {
        let msg = "a channel passes values as they are, with no codec: remove `schema` \
                   (the function's parameter gives the channel's type)";
        errors.at(schema.key, msg);
        errors.at(channel.key, msg);
    }
    if let Some(Arg { key, value }) = &args.channel {
        if value.value().trim().is_empty() {
            errors.at(
                value.span(),
                "the channel name must not be empty: write `channel = \"lines\"`",
            );
        }
        let with = [
            args.topic.as_ref().map(|a| (a.key, "topic")),
            args.topic_pattern
                .as_ref()
                .map(|a| (a.key, "topic_pattern")),
            args.partitions.as_ref().map(|a| (a.key, "partitions")),
            args.isolated_partitions
                .as_ref()
                .filter(|a| a.value)
                .map(|a| (a.key, "isolated_partitions")),
        ];
        for (at, other) in with.into_iter().flatten() {
            let msg = format!(
                "an agent reads an in-memory `channel` or Kafka topics, not both: remove \
                 `{other}` or `channel` (a channel has no partitions)"
            );
            errors.at(at, &msg);
            errors.at(*key, msg);
        }
    }

    let concurrency = args.concurrency.as_ref().and_then(|a| {
        positive::<usize>(
            &a.value,
            "concurrency",
            "the number of actors sharing the agent's queue",
            &mut errors,
        )
    });
    let partitions = args.partitions.as_ref().and_then(|a| {
        positive::<i32>(
            &a.value,
            "partitions",
            "the number of partitions of the agent's topic",
            &mut errors,
        )
    });

    let isolated = args.isolated_partitions.as_ref().map(|a| a.value);
    if let (Some(iso), Some(conc)) = (&args.isolated_partitions, &args.concurrency) {
        if iso.value && concurrency.is_some_and(|n| n > 1) {
            let msg = "`isolated_partitions` runs one actor per partition and cannot be combined \
                       with `concurrency` > 1: remove one of them";
            errors.at(iso.key, msg);
            errors.at(conc.value.span(), msg);
        }
    }

    let mut sinks = Vec::new();
    if let Some(sink) = args.sink {
        if matches!(form, Some(Form::Consumer)) {
            errors.at(
                sink.key,
                "a consumer agent produces no values, so it cannot have sinks: add an \
                 `out: Yield<R>` parameter and send values with `out.send(value).await`, \
                 or handle one event per call with `async fn f(value: T) -> Result<R>`, \
                 or remove `sink`",
            );
        }
        sinks = sink.value;
    }

    let supervisor = match args.supervisor.map(|a| a.value) {
        None => None,
        Some(SupervisorArg::Expr(e)) => Some(SupervisorOut::Custom(e)),
        Some(SupervisorArg::Name(name)) => lookup(
            &name,
            SUPERVISORS,
            "supervisor strategy",
            "; a strategy of your own: its path or an expression \
             (`supervisor = my::Strategy`, `supervisor = Strategy::new()`)",
            &mut errors,
        )
        .map(SupervisorOut::Builtin),
    };
    let value_codec = args
        .value_codec
        .as_ref()
        .and_then(|a| check_codec(&a.value, &mut errors));
    let key_codec = args
        .key_codec
        .as_ref()
        .and_then(|a| check_codec(&a.value, &mut errors));

    let help = match &args.help {
        Some(a) => a.value.value(),
        None => doc_comment(&func.attrs),
    };

    let on_error = match (args.on_error, args.on_error_async) {
        (Some(_), Some(second)) => {
            errors.at(
                second.key,
                "give `on_error` (a function) or `on_error_async` (an async function), not both",
            );
            None
        }
        (Some(f), None) => Some((f.value, false)),
        (None, Some(f)) => Some((f.value, true)),
        (None, None) => None,
    };

    if let Some(err) = errors.into_result() {
        return Err(err);
    }
    let form = form.expect("a signature without errors has a form");
    Ok(Agent {
        ident: func.sig.ident.clone(),
        name,
        form,
        topic: args.topic.map(|a| a.value),
        topic_pattern: args.topic_pattern.map(|a| a.value),
        channel: args.channel.map(|a| a.value),
        concurrency,
        partitions,
        isolated_partitions: isolated,
        batch,
        use_reply_headers: args.use_reply_headers.map(|a| a.value),
        sinks,
        on_error,
        schema: args.schema.map(|a| a.value),
        supervisor,
        value_codec,
        key_codec,
        help,
        krate: args.krate.map(|a| a.value),
        cfgs: func
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect(),
    })
}

/// `topic = [..]`: every name non-empty, none twice (reported at the repeat).
fn check_topic_list(names: &[LitStr], errors: &mut Errors) {
    let mut seen: Vec<String> = Vec::new();
    for lit in names {
        let text = lit.value();
        if text.is_empty() {
            errors.at(
                lit.span(),
                "a topic name must not be empty: name the topic (`\"refunds\"`) or remove \
                 the `\"\"`",
            );
        } else if seen.contains(&text) {
            errors.at(
                lit.span(),
                format!("topic `{text}` is already in the list: remove this `\"{text}\"`"),
            );
        } else {
            seen.push(text);
        }
    }
}

/// The form of the function, or `None` after reporting why it has none.
fn check_signature(sig: &Signature, errors: &mut Errors) -> Option<Form> {
    let ident = &sig.ident;
    let before = errors.len();

    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format!("an agent function must be `async`: write `async fn {ident}(...)`"),
        );
    }
    if let Some(c) = &sig.constness {
        errors.at(
            c.span,
            "an agent function cannot be `const`: remove `const`",
        );
    }
    if let Some(u) = &sig.unsafety {
        errors.at(
            u.span,
            "an agent function cannot be `unsafe`: remove `unsafe` (use an `unsafe` block inside)",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            "an agent function cannot have an `extern` ABI: remove it",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "agent functions cannot be generic: the runtime decodes every event into one \
             concrete type; use concrete types (an enum for several kinds of events)",
        );
    }
    if let Some(w) = &sig.generics.where_clause {
        errors.spanned(
            w,
            "agent functions cannot have a `where` clause: use concrete types",
        );
    }

    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => errors.spanned(
                r,
                "an agent cannot take `self`: make it a free function (agents are registered \
                 globally and called by the runtime)",
            ),
            FnArg::Typed(p) => {
                match &*p.ty {
                    Type::Reference(r) => errors.spanned(
                        r,
                        format!(
                            "agent parameters are taken by value: write `{}` (each event is \
                             decoded into an owned value)",
                            owned(&r.elem)
                        ),
                    ),
                    Type::ImplTrait(t) => errors.spanned(
                        t,
                        format!("agent parameters need a concrete type, not `impl Trait`; {FORMS}"),
                    ),
                    _ => {}
                }
                params.push(&*p.ty);
            }
        }
    }

    let form = match params.as_slice() {
        [] => {
            if sig.inputs.is_empty() {
                errors.at(
                    sig.paren_token.span.join(),
                    format!("missing parameter: {FORMS}"),
                );
            }
            None
        }
        [only] => {
            if generic_arg(only, "Stream").is_some() {
                Some(Form::Consumer)
            } else if generic_arg(only, "Yield").is_some() {
                errors.spanned(
                    only,
                    "a `Yield<R>` parameter comes second, after the stream: write \
                     `async fn f(stream: Stream<T>, out: Yield<R>) -> Result<()>`",
                );
                None
            } else {
                // The handler's output type comes from its return type.
                Some(Form::Handler {
                    out: Type::Verbatim(TokenStream::new()),
                })
            }
        }
        [first, second] => {
            let stream = generic_arg(first, "Stream");
            let out = generic_arg(second, "Yield");
            if stream.is_none() {
                errors.spanned(
                    first,
                    "the first parameter of a value-producing agent is its stream: write \
                     `async fn f(stream: Stream<T>, out: Yield<R>) -> Result<()>` (or take one \
                     value per call: `async fn f(value: T) -> Result<R>`)",
                );
            }
            if out.is_none() {
                errors.spanned(
                    second,
                    "the second parameter of an agent is where it sends the values it \
                     produces: write `out: Yield<R>` (or take one value per call: \
                     `async fn f(value: T) -> Result<R>`)",
                );
            }
            match (stream, out) {
                (Some(_), Some(out)) => Some(Form::Yielding { out: out.clone() }),
                _ => None,
            }
        }
        [_, _, extra @ ..] => {
            let extra: Vec<&FnArg> = sig
                .inputs
                .iter()
                .skip(sig.inputs.len() - extra.len())
                .collect();
            errors.spanned(
                quote!(#(#extra),*),
                format!("too many parameters ({}): {FORMS}", params.len()),
            );
            None
        }
    };

    let form = form.and_then(|form| check_return(sig, form, errors));
    if errors.len() == before {
        form
    } else {
        None
    }
}

/// Check the return type for the form; a handler's output type comes from it.
fn check_return(sig: &Signature, form: Form, errors: &mut Errors) -> Option<Form> {
    let expected = match form {
        Form::Handler { .. } => "`-> faust::Result<R>`, where `R` is the reply to each event",
        _ => "`-> faust::Result<()>`",
    };
    let ty = match &sig.output {
        ReturnType::Default => {
            errors.at(
                sig.paren_token.span.close(),
                format!(
                    "an agent function returns a `Result`: add {expected} (any `Result` whose \
                     error converts into `Box<dyn Error + Send + Sync>` works)"
                ),
            );
            return None;
        }
        ReturnType::Type(_, ty) => ty,
    };
    let Some(ok) = result_ok_type(ty) else {
        errors.spanned(
            ty,
            format!(
                "an agent function returns a `Result`: write {expected} (any `Result` whose \
                 error converts into `Box<dyn Error + Send + Sync>` works)"
            ),
        );
        return None;
    };
    let unit = matches!(ok, Type::Tuple(t) if t.elems.is_empty());
    match form {
        Form::Handler { .. } => Some(Form::Handler { out: ok.clone() }),
        Form::Consumer if !unit => {
            errors.spanned(
                ok,
                format!(
                    "a consumer agent returns `Result<()>`; to produce `{}` values, add an \
                     `out: Yield<{0}>` parameter and call `out.send(value).await`, or take one \
                     value per call: `async fn f(value: T) -> Result<{0}>`",
                    ok.to_token_stream()
                ),
            );
            None
        }
        Form::Yielding { .. } if !unit => {
            errors.spanned(
                ok,
                "a value-producing agent sends its values with `out.send(value).await` and \
                 returns `Result<()>`: write `-> faust::Result<()>`",
            );
            None
        }
        form => Some(form),
    }
}

/// `T` if `ty` is a path ending in `name<T>`.
pub(crate) fn generic_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    first_type_arg(&last.arguments)
}

/// The ok type if `ty` is a path ending in `Result<T, ..>`.
fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    first_type_arg(&last.arguments)
}

fn first_type_arg(args: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(a) = args else {
        return None;
    };
    a.args.iter().find_map(|g| match g {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// A positive integer literal, or an error at it.
pub(crate) fn positive<N>(lit: &LitInt, key: &str, what: &str, errors: &mut Errors) -> Option<N>
where
    N: std::str::FromStr + Default + PartialOrd,
    N::Err: std::fmt::Display,
{
    match lit.base10_parse::<N>() {
        Ok(n) if n > N::default() => Some(n),
        Ok(_) => {
            errors.at(
                lit.span(),
                format!("`{key}` must be at least 1 ({what}): write `{key} = 1` or more"),
            );
            None
        }
        Err(e) => {
            errors.at(lit.span(), format!("invalid `{key}`: {e}"));
            None
        }
    }
}

/// The variant named `name` in `table`, or an error listing the names.
fn lookup(
    name: &Name,
    table: &[(&str, &str)],
    what: &str,
    hint: &str,
    errors: &mut Errors,
) -> Option<Ident> {
    match table.iter().find(|(n, _)| *n == name.text) {
        Some((_, variant)) => Some(Ident::new(variant, name.span)),
        None => {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            errors.at(
                name.span,
                format!(
                    "unknown {what} `{}`; expected one of: {}{hint}",
                    name.text,
                    names.join(", ")
                ),
            );
            None
        }
    }
}

/// A validated `supervisor`.
pub(crate) enum SupervisorOut {
    /// A `SupervisorStrategy` variant.
    Builtin(Ident),
    /// An expression giving a `SupervisorStrategyT`.
    Custom(Expr),
}

/// The function's doc comment: lines trimmed, joined with `\n`, trimmed.
fn doc_comment(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if let Meta::NameValue(nv) = &attr.meta {
            if nv.path.is_ident("doc") {
                if let Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) = &nv.value
                {
                    // `split`, not `lines`: an empty `///` line is a paragraph break.
                    lines.extend(s.value().split('\n').map(|l| l.trim().to_string()));
                }
            }
        }
    }
    lines.join("\n").trim().to_string()
}

/// The owned counterpart of a borrowed parameter type, for messages.
fn owned(ty: &Type) -> String {
    match ty {
        Type::Path(p) if p.path.is_ident("str") => "String".to_string(),
        Type::Slice(s) => format!("Vec<{}>", s.elem.to_token_stream()),
        other => other.to_token_stream().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use faust_core::SupervisorStrategy;

    /// `(name, variant)` pairs as the runtime lists them.
    fn runtime<T: std::fmt::Debug>(all: &[(&'static str, T)]) -> Vec<(String, String)> {
        all.iter()
            .map(|(n, v)| (n.to_string(), format!("{v:?}")))
            .collect()
    }

    fn macro_table(table: &[(&str, &str)]) -> Vec<(String, String)> {
        table
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn supervisor_names_match_the_runtime() {
        assert_eq!(
            macro_table(super::SUPERVISORS),
            runtime(&SupervisorStrategy::ALL)
        );
    }

    #[test]
    fn codec_names_match_the_runtime() {
        assert_eq!(crate::ast::CODECS, faust_core::codec::BUILTIN_CODECS);
        assert_eq!(
            crate::ast::TRANSFORMS,
            faust_core::codec::BUILTIN_TRANSFORMS
        );
    }
}
