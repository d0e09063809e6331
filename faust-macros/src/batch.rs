//! The batch form, `#[agent(batch = 100, within = "1s")] async fn f(batch:
//! Vec<T>) -> Result<Vec<R>>`: its two arguments and its signature checked,
//! `within` parsed.

use syn::{FnArg, LitStr, Signature, Type};

use crate::ast::{Args, Errors};
use crate::valid::{generic_arg, positive, Form};

/// The batch form's settings.
pub(crate) struct Batch {
    /// Events per batch at most.
    pub(crate) max: usize,
    /// How long a batch waits for more after its first event.
    pub(crate) within_ms: u64,
}

const SIGNATURE: &str = "async fn f(batch: Vec<T>) -> faust::Result<Vec<R>>";

/// Check `batch` and `within` against the function's form (from the
/// signature, `None` if it had errors). With `batch`, a handler of a
/// `Vec<T>` returning `Vec<R>` becomes the batch form.
pub(crate) fn check(
    args: &Args,
    sig: &Signature,
    form: Option<Form>,
    errors: &mut Errors,
) -> (Option<Form>, Option<Batch>) {
    let Some(batch) = &args.batch else {
        if let Some(within) = &args.within {
            errors.at(
                within.key,
                "`within` is how long a batch waits for more events: it goes with `batch`, \
                 e.g. `#[agent(batch = 100, within = \"1s\")]`",
            );
        }
        return (form, None);
    };
    let max = positive::<usize>(
        &batch.value,
        "batch",
        "the number of events a batch holds at most",
        errors,
    );
    let within_ms = match &args.within {
        Some(within) => duration_ms(&within.value, errors),
        None => {
            errors.at(
                batch.key,
                "a batch agent also needs `within`, how long a batch waits for more events \
                 after its first: e.g. `within = \"1s\"`",
            );
            None
        }
    };
    let form = match form {
        Some(Form::Handler { out }) => batch_form(sig, &out, errors),
        Some(Form::Consumer | Form::Yielding { .. }) => {
            let msg = format!(
                "with `batch`, the agent is called once per batch: write `{SIGNATURE}`; \
                     a function reading its stream batches with \
                     `stream.take_batch(100, Duration::from_secs(1))` instead (remove `batch` \
                     and `within`)"
            );
            match sig.inputs.first() {
                Some(param) => errors.spanned(param, msg),
                None => errors.at(batch.key, msg),
            }
            None
        }
        other => other,
    };
    let settings = match (max, within_ms) {
        (Some(max), Some(within_ms)) => Some(Batch { max, within_ms }),
        _ => None,
    };
    (form, settings)
}

/// The batch form of a one-parameter function returning `Result<out>`.
fn batch_form(sig: &Signature, out: &Type, errors: &mut Errors) -> Option<Form> {
    let param = sig.inputs.first().and_then(|p| match p {
        FnArg::Typed(p) => Some(&*p.ty),
        FnArg::Receiver(_) => None,
    })?;
    if generic_arg(param, "Vec").is_none() {
        errors.spanned(
            param,
            format!("a batch agent takes its batch as a `Vec`: write `{SIGNATURE}`"),
        );
        return None;
    }
    match generic_arg(out, "Vec") {
        Some(r) => Some(Form::Batch { out: r.clone() }),
        None => {
            errors.spanned(
                out,
                format!(
                    "a batch agent returns one result per event of its batch, in order: \
                     write `{SIGNATURE}`"
                ),
            );
            None
        }
    }
}

/// `"500ms"`, `"1s"` or `"2m"`, in milliseconds.
fn duration_ms(lit: &LitStr, errors: &mut Errors) -> Option<u64> {
    let text = lit.value();
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let per_unit = match unit.trim() {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" | "min" => Some(60_000),
        _ => None,
    };
    match (number.parse::<u64>(), per_unit) {
        (Ok(n), Some(per)) => match n.checked_mul(per) {
            Some(ms) => Some(ms),
            None => {
                errors.at(lit.span(), "`within` is too long");
                None
            }
        },
        _ => {
            errors.at(
                lit.span(),
                "`within` takes a duration: a whole number and `ms`, `s` or `m`, e.g. \
                 `within = \"500ms\"` or `within = \"1s\"`",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Option<u64> {
        let mut errors = Errors::default();
        let got = duration_ms(
            &LitStr::new(text, proc_macro2::Span::call_site()),
            &mut errors,
        );
        assert_eq!(got.is_none(), errors.len() == 1, "{text}");
        got
    }

    #[test]
    fn within_takes_milliseconds_seconds_or_minutes() {
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("1s"), Some(1_000));
        assert_eq!(ms("2m"), Some(120_000));
        assert_eq!(ms("0s"), Some(0));
        assert_eq!(ms("1.5s"), None);
        assert_eq!(ms("1h"), None);
        assert_eq!(ms("s"), None);
    }
}
