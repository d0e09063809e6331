//! `#[timer(interval = "5s")]`: the function as written, plus one
//! registration of a `TimerDescriptor` whose `build` gives a `TimerSpec`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, LitStr, ReturnType};

use crate::ast::Errors;

const USAGE: &str = "#[timer(interval = \"5s\")] goes on `async fn name() -> Result<()>` or \
                     `async fn name(app: faust::App) -> Result<()>`; arguments: interval (\"250ms\", \
                     \"5s\", \"2m\", \"1h\" or a number of seconds), on_leader (flag or bool), \
                     name (\"...\"), crate (\"path\")";

/// The arguments of `#[timer(...)]`.
#[derive(Default)]
struct TimerArgs {
    interval: Option<(u128, Span)>,
    /// `interval` was written (maybe with a bad value, reported already).
    interval_given: bool,
    on_leader: bool,
    name: Option<LitStr>,
    krate: Option<syn::Path>,
}

pub(crate) fn timer(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let parsed = parse_args(args, &mut errors);
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            errors.at(Span::call_site(), USAGE);
            return emit(item, errors, None);
        }
    };
    check_signature(&func, &mut errors);
    let Some((nanos, _)) = parsed.interval else {
        if !parsed.interval_given {
            errors.at(
                Span::call_site(),
                "#[timer] needs an interval: `#[timer(interval = \"5s\")]`",
            );
        }
        return emit(item, errors, None);
    };
    let registration = registration(&func, &parsed, nanos);
    emit(item, errors, Some(registration))
}

fn emit(item: TokenStream, errors: Errors, registration: Option<TokenStream>) -> TokenStream {
    match errors.into_result() {
        Some(err) => {
            let err = err.to_compile_error();
            quote! { #item #err }
        }
        None => quote! { #item #registration },
    }
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> TimerArgs {
    let mut out = TimerArgs::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "interval" => {
                let value: Expr = meta.value()?.parse()?;
                out.interval_given = true;
                match interval_nanos(&value) {
                    Ok(n) => out.interval = Some((n, value.span())),
                    Err(msg) => errors.at(value.span(), &msg),
                }
            }
            "on_leader" => {
                out.on_leader = if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<syn::LitBool>()?.value
                } else {
                    true
                };
            }
            "name" => out.name = Some(meta.value()?.parse()?),
            "crate" => {
                let lit: LitStr = meta.value()?.parse()?;
                out.krate = Some(lit.parse()?);
            }
            _ => {
                return Err(meta.error(format!(
                    "unknown #[timer] argument `{key}`; expected interval, on_leader, name or crate"
                )))
            }
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        errors.push(e);
    }
    out
}

/// An interval as nanoseconds: a string with a unit (`ms`, `s`, `m`, `h`)
/// or a number of seconds (as Faust's `interval=1.0`); never zero.
fn interval_nanos(value: &Expr) -> Result<u128, String> {
    let bad = || {
        "interval: write a duration such as \"250ms\", \"5s\", \"2m\", \"1h\", or a number of \
         seconds"
            .to_string()
    };
    let Expr::Lit(ExprLit { lit, .. }) = value else {
        return Err(bad());
    };
    let (number, unit) = match lit {
        Lit::Str(s) => {
            let text = s.value();
            let text = text.trim();
            let split = text
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(text.len());
            let (n, unit) = text.split_at(split);
            (n.to_string(), unit.trim().to_string())
        }
        Lit::Int(i) => (i.base10_digits().to_string(), "s".to_string()),
        Lit::Float(f) => (f.base10_digits().to_string(), "s".to_string()),
        _ => return Err(bad()),
    };
    let per_unit: f64 = match unit.as_str() {
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return Err(bad()),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let nanos = (n * per_unit).round();
    if !(nanos >= 1.0 && nanos.is_finite()) {
        return Err("interval: must be greater than zero".to_string());
    }
    Ok(nanos as u128)
}

fn check_signature(func: &ItemFn, errors: &mut Errors) {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.at(sig.fn_token.span(), "#[timer] goes on an `async fn`");
    }
    if !sig.generics.params.is_empty() {
        errors.at(sig.generics.span(), "a timer function cannot be generic");
    }
    if sig.inputs.len() > 1 {
        errors.at(
            sig.inputs.span(),
            "a timer takes no parameter or one: the app (`app: faust::App`)",
        );
    }
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        errors.at(r.span(), "a timer is a free function: no `self`");
    }
    if let ReturnType::Default = sig.output {
        errors.at(
            sig.ident.span(),
            "a timer returns a `Result<()>` (`faust::Result<()>`, `anyhow::Result<()>`, ...)",
        );
    }
}

fn registration(func: &ItemFn, args: &TimerArgs, nanos: u128) -> TokenStream {
    let ident = &func.sig.ident;
    let krate = match &args.krate {
        Some(path) => quote!(#path),
        None => quote!(::faust),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    let at_fn = Span::call_site().located_at(ident.span());
    let call = if func.sig.inputs.is_empty() {
        quote_spanned!(at_fn=> |_app: #krate::App| #ident())
    } else {
        quote_spanned!(at_fn=> |app: #krate::App| #ident(app))
    };
    let on_leader = args.on_leader;
    let line = quote_spanned!(ident.span()=> ::core::line!());
    let cfgs = func
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect::<Vec<_>>();
    quote! {
        #(#cfgs)*
        #krate::__private::inventory::submit! {
            #krate::__private::TimerDescriptor {
                name: #name,
                file: ::core::file!(),
                line: #line,
                build: {
                    fn __faust_build() -> #krate::__private::TimerSpec {
                        #krate::__private::TimerSpec::new(
                            #name,
                            ::core::time::Duration::from_nanos(#nanos),
                            #call,
                        )
                        .on_leader(#on_leader)
                    }
                    __faust_build
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(src: &str) -> Result<u128, String> {
        interval_nanos(&syn::parse_str(src).unwrap())
    }

    #[test]
    fn intervals_parse_with_units_or_as_seconds() {
        assert_eq!(nanos("\"250ms\""), Ok(250_000_000));
        assert_eq!(nanos("\"5s\""), Ok(5_000_000_000));
        assert_eq!(nanos("\"1.5s\""), Ok(1_500_000_000));
        assert_eq!(nanos("\"2m\""), Ok(120_000_000_000));
        assert_eq!(nanos("\"1h\""), Ok(3_600_000_000_000));
        assert_eq!(nanos("3"), Ok(3_000_000_000));
        assert_eq!(nanos("0.5"), Ok(500_000_000));
        assert!(nanos("\"0s\"").unwrap_err().contains("greater than zero"));
        assert!(nanos("\"5 parsecs\"").unwrap_err().contains("250ms"));
        assert!(nanos("five").is_err());
    }
}
