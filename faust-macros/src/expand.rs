//! Expand: the function exactly as written, plus one registration.
//!
//! ```text
//! <the function, untouched>
//! ::faust::__private::inventory::submit! {
//!     ::faust::__private::AgentDescriptor {
//!         name: "double", file: file!(), line: line!(),
//!         build: { fn __faust_build() -> AgentSpec { AgentSpec::handler("double", double).qualname(..)... } __faust_build },
//!     }
//! }
//! ```
//!
//! With `crate = "my::faust"`, `my::faust` replaces `::faust` throughout.
//!
//! On any error the function is still emitted, next to the `compile_error!`s,
//! so code calling it keeps compiling and only the real mistakes show.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::ItemFn;

use crate::ast::{Args, Errors, SinkArg, TopicArg};
use crate::valid::{self, Agent, Form};

/// `#[agent(args)] item`.
pub(crate) fn agent(args: TokenStream, item: TokenStream) -> TokenStream {
    let (args, mut errors) = Args::parse(args);
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            errors.at(
                Span::call_site(),
                "#[agent] goes on an `async fn`: a consumer `async fn f(stream: Stream<T>) -> \
                 Result<()>`, a value producer `async fn f(stream: Stream<T>, out: Yield<R>) -> \
                 Result<()>` or a handler `async fn f(value: T) -> Result<R>`",
            );
            return with_errors(item, errors);
        }
    };
    match valid::validate(args, &func, errors) {
        Ok(agent) => {
            let registration = registration(&agent);
            quote! {
                #item
                #registration
            }
        }
        Err(err) => {
            let mut errors = Errors::default();
            errors.push(err);
            with_errors(item, errors)
        }
    }
}

/// The item unchanged, then the errors.
fn with_errors(item: TokenStream, errors: Errors) -> TokenStream {
    let errors = errors.into_result().map(|e| e.to_compile_error());
    quote! {
        #item
        #errors
    }
}

/// One `inventory::submit!` of the agent's descriptor.
fn registration(agent: &Agent) -> TokenStream {
    let ident = &agent.ident;
    let krate = krate_path(agent, Span::call_site());
    // Spanned at the function's name: a failed bound of the constructor
    // (a future that is not `Send`, a value type that is not serde) points
    // at the user's function rather than at the attribute.
    let at_fn = Span::call_site().located_at(ident.span());
    let ctor = match agent.form {
        Form::Consumer => quote_spanned!(at_fn=> consumer),
        Form::Yielding { .. } => quote_spanned!(at_fn=> yielding),
        Form::Handler { .. } => quote_spanned!(at_fn=> handler),
        Form::Batch { .. } => quote_spanned!(at_fn=> batch_handler),
    };
    let name = &agent.name;
    let krate_at_fn = krate_path(agent, at_fn);
    let spec = match &agent.batch {
        Some(batch) => {
            let max = Literal::usize_unsuffixed(batch.max);
            let within = Literal::u64_unsuffixed(batch.within_ms);
            quote_spanned! {at_fn=>
                #krate_at_fn::__private::AgentSpec::#ctor(
                    #name,
                    #max,
                    ::core::time::Duration::from_millis(#within),
                    #ident,
                )
            }
        }
        None => quote_spanned! {at_fn=>
            #krate_at_fn::__private::AgentSpec::#ctor(#name, #ident)
        },
    };
    // With the name's own span (not the attribute's context), `line!()`
    // gives the line of the function's name rather than of `#[agent]`.
    let line = quote_spanned!(ident.span()=> ::core::line!());
    let options = options(agent);
    let cfgs = &agent.cfgs;

    quote! {
        #(#cfgs)*
        #krate::__private::inventory::submit! {
            #krate::__private::AgentDescriptor {
                name: #name,
                file: ::core::file!(),
                line: #line,
                build: {
                    fn __faust_build() -> #krate::__private::AgentSpec {
                        #spec #options
                    }
                    __faust_build
                },
            }
        }
    }
}

/// The path of the faust crate (`::faust`, or `crate = "..."`), every token
/// at `span` so that errors point where they did without `crate`.
fn krate_path(agent: &Agent, span: Span) -> TokenStream {
    let path = match &agent.krate {
        Some(path) => path.to_token_stream(),
        None => quote!(::faust),
    };
    path.into_iter()
        .map(|mut t| {
            t.set_span(span);
            t
        })
        .collect()
}

/// `.value_codec("json|binary")`, or `.value_codec(expr)` pointing at the
/// expression (its `Into<CodecRef>` errors land there).
fn codec_option(method: TokenStream, codec: &valid::CodecOut) -> TokenStream {
    match codec {
        valid::CodecOut::Name(name) => quote!(.#method(#name)),
        valid::CodecOut::Expr(expr) => {
            let at = Span::call_site().located_at(expr.span());
            quote_spanned!(at=> .#method(#expr))
        }
    }
}

/// The builder calls after the constructor, one per option given.
fn options(agent: &Agent) -> TokenStream {
    let krate = krate_path(agent, Span::call_site());
    let mut out = TokenStream::new();
    let qual = agent.ident.unraw().to_string();
    out.extend(quote! {
        .qualname(::core::concat!(::core::module_path!(), "::", #qual))
    });
    match &agent.topic {
        Some(TopicArg::One(topic)) => out.extend(quote!(.topic(#topic))),
        Some(TopicArg::Many(topics)) => out.extend(quote!(.topics([#(#topics),*]))),
        Some(TopicArg::Expr(topic)) => out.extend(quote!(.topic(#topic))),
        None => {}
    }
    if let Some(schema) = &agent.schema {
        // The check function ties the schema's value type to the function's:
        // a mismatch is a type error at the schema expression.
        let at = Span::call_site().located_at(schema.span());
        let ident = &agent.ident;
        let check = match agent.form {
            Form::Consumer => quote!(consumer),
            Form::Yielding { .. } => quote!(yielding),
            Form::Handler { .. } => quote!(handler),
            Form::Batch { .. } => quote!(batch),
        };
        out.extend(
            quote_spanned!(at=> .schema(#krate::__private::schema_check::#check(&#ident, #schema))),
        );
    }
    if let Some(channel) = &agent.channel {
        out.extend(quote!(.channel(#channel)));
    }
    if let Some(pattern) = &agent.topic_pattern {
        out.extend(quote!(.topic_pattern(#pattern)));
    }
    if let Some(n) = agent.partitions {
        let n = Literal::i32_unsuffixed(n);
        out.extend(quote!(.partitions(#n)));
    }
    if let Some(n) = agent.concurrency {
        let n = Literal::usize_unsuffixed(n);
        out.extend(quote!(.concurrency(#n)));
    }
    if let Some(on) = agent.isolated_partitions {
        out.extend(quote!(.isolated_partitions(#on)));
    }
    if let Some(on) = agent.use_reply_headers {
        out.extend(quote!(.use_reply_headers(#on)));
    }
    if !agent.help.is_empty() {
        let help = &agent.help;
        out.extend(quote!(.help(#help)));
    }
    if let Some(codec) = &agent.value_codec {
        out.extend(codec_option(quote!(value_codec), codec));
    }
    if let Some(codec) = &agent.key_codec {
        out.extend(codec_option(quote!(key_codec), codec));
    }
    match &agent.supervisor {
        Some(valid::SupervisorOut::Builtin(strategy)) => {
            out.extend(quote!(.supervisor(#krate::__private::SupervisorStrategy::#strategy)));
        }
        Some(valid::SupervisorOut::Custom(strategy)) => {
            let at = Span::call_site().located_at(strategy.span());
            out.extend(quote_spanned!(at=> .supervisor(#strategy)));
        }
        None => {}
    }
    if let Some((f, is_async)) = &agent.on_error {
        let at = Span::call_site().located_at(f.span());
        out.extend(match is_async {
            false => quote_spanned!(at=> .on_error(#f)),
            true => quote_spanned!(at=> .on_error_async(#f)),
        });
    }
    if let Some(r) = agent.form.output() {
        for sink in &agent.sinks {
            let sink = match sink {
                SinkArg::Topic(topic) => {
                    let at = Span::call_site().located_at(topic.span());
                    {
                        let krate = krate_path(agent, at);
                        quote_spanned!(at=> #krate::__private::Sink::<#r>::topic(#topic))
                    }
                }
                SinkArg::Agent(lit, name) => {
                    let at = Span::call_site().located_at(lit.span());
                    {
                        let krate = krate_path(agent, at);
                        quote_spanned!(at=> #krate::__private::Sink::<#r>::agent(#name))
                    }
                }
                SinkArg::Callback(f) => {
                    let at = Span::call_site().located_at(f.span());
                    {
                        let krate = krate_path(agent, at);
                        quote_spanned!(at=> #krate::__private::Sink::<#r>::callback(#f))
                    }
                }
            };
            out.extend(quote!(.sink(#sink)));
        }
    }
    out.into_token_stream()
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::agent;

    fn all_arguments() -> String {
        agent(
            quote!(
                topic = "numbers",
                concurrency = 2,
                sink = ["results", "@audit", log],
                on_error = report,
                supervisor = one_for_all,
                codec = "json",
            ),
            quote! {
                /// Add one.
                async fn add_one(x: i64) -> faust::Result<i64> { Ok(x + 1) }
            },
        )
        .to_string()
    }

    #[test]
    fn generated_code_names_only_faust_private_and_core() {
        let out = all_arguments();
        crate::test_support::assert_paths_only_private(&out);
        assert!(
            !out.contains("inventory :: submit")
                || out.contains(":: faust :: __private :: inventory :: submit")
        );
        assert!(!out.contains("faust_core"));
    }

    #[test]
    fn expansion_keeps_the_function_and_registers_once() {
        let out = all_arguments();
        assert!(out.starts_with("# [doc = r\" Add one.\"] async fn add_one (x : i64) -> faust :: Result < i64 > { Ok (x + 1) }"), "{out}");
        assert_eq!(out.matches("submit !").count(), 1);
        assert!(
            out.contains("AgentSpec :: handler (\"add_one\" , add_one)"),
            "{out}"
        );
        assert!(out.contains(". help (\"Add one.\")"), "{out}");
        assert!(
            out.contains("Sink :: < i64 > :: agent (\"audit\")"),
            "{out}"
        );
    }

    #[test]
    fn crate_path_replaces_faust_everywhere() {
        let out = agent(
            quote!(
                crate = "my::faust",
                sink = ["out"],
                codec = "json",
                supervisor = crashing
            ),
            quote!(
                async fn f(x: i64) -> my::faust::Result<i64> {
                    Ok(x)
                }
            ),
        )
        .to_string();
        // A codec name is passed as a string: no path to replace.
        assert!(out.contains(". value_codec (\"json\")"), "{out}");
        assert_eq!(out.matches("my :: faust :: __private").count(), 6, "{out}");
        assert_eq!(out.matches("faust :: __private").count(), 6, "{out}");
    }

    #[test]
    fn topic_is_one_name_or_a_list() {
        let f = || {
            quote!(
                async fn f(x: i64) -> faust::Result<i64> {
                    Ok(x)
                }
            )
        };
        let one = agent(quote!(topic = "a"), f()).to_string();
        assert!(one.contains(". topic (\"a\")"), "{one}");
        assert!(!one.contains("topics"), "{one}");
        let many = agent(quote!(topic = ["a", "b"]), f()).to_string();
        assert!(many.contains(". topics ([\"a\" , \"b\"])"), "{many}");
        let single = agent(quote!(topic = ["a",]), f()).to_string();
        assert!(single.contains(". topics ([\"a\"])"), "{single}");
        let call = agent(quote!(topic = orders_topic()), f()).to_string();
        assert!(call.contains(". topic (orders_topic ())"), "{call}");
        let method = agent(quote!(topic = Topic::new("a").compacted()), f()).to_string();
        assert!(
            method.contains(". topic (Topic :: new (\"a\") . compacted ())"),
            "{method}"
        );
    }

    #[test]
    fn batch_builds_a_batch_handler_with_its_size_and_time() {
        let out = agent(
            quote!(batch = 100, within = "2s", sink = ["out"]),
            quote!(
                async fn f(xs: Vec<i64>) -> faust::Result<Vec<u8>> {
                    Ok(vec![])
                }
            ),
        )
        .to_string();
        crate::test_support::assert_paths_only_private(&out);
        assert!(
            out.contains(
                "AgentSpec :: batch_handler (\"f\" , 100 , :: core :: time :: Duration :: from_millis (2000) , f ,)"
            ),
            "{out}"
        );
        assert!(out.contains("Sink :: < u8 > :: topic (\"out\")"), "{out}");
    }

    #[test]
    fn on_error_the_function_is_still_emitted() {
        let out = agent(
            quote!(concurrency = 0, bogus),
            quote!(
                fn not_async(x: i64) -> faust::Result<i64> {
                    Ok(x)
                }
            ),
        )
        .to_string();
        assert!(out.starts_with("fn not_async (x : i64)"), "{out}");
        assert_eq!(out.matches("compile_error !").count(), 3, "{out}");
        assert!(!out.contains("submit"), "{out}");
    }

    /// `cargo test -p faust-macros -- --ignored --nocapture print_expansion`
    #[test]
    #[ignore = "prints an expansion for reading"]
    fn print_expansion() {
        println!("{}", all_arguments());
    }
}
