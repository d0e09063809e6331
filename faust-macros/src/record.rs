//! `#[derive(Record)]`: serde `Serialize`/`Deserialize` for a struct that is
//! a Faust record, plus `faust::Record` with its namespace.
//!
//! For `#[faust(namespace = "shop.Add")] struct Add { a: i64, b: i64 }` the
//! expansion is, in a `const _: () = { ... };` block (every path through
//! `::faust::__private`, or `crate = "..."`'s):
//!
//! ```text
//! impl Record for Add { const NAMESPACE: &'static str = "shop.Add"; }
//! impl Serialize for Add {
//!     // serialize_struct("Add"): "a", "b", then "__faust": RecordMarker::<Self>
//! }
//! #[derive(Deserialize)] #[serde(crate = "...", rename = "Add")]
//! struct __FaustRecordShadow { a: i64, b: i64,
//!     #[serde(rename = "__faust", default)] __faust: RecordMarker<Add> }
//! impl<'de> Deserialize<'de> for Add { /* the shadow's fields moved into Add */ }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, LitStr};

const BLESSED_KEY: &str = "__faust";

/// The expansion of `#[derive(Record)]`, or the compile errors.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match expand(&input) {
        Ok(out) => out,
        Err(e) => e.to_compile_error(),
    }
}

/// Collects every error, so that all are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// One field of the struct and its supported serde attributes.
struct Field {
    ident: syn::Ident,
    ty: syn::Type,
    /// The JSON key: `rename`, or the field's name.
    key: String,
    /// `default` (None: required unless an `Option`), `Some(None)` for the
    /// type's `Default`, `Some(Some(path))` for `default = "path"`.
    default: Option<Option<LitStr>>,
    skip_serializing_if: Option<syn::ExprPath>,
}

const FIELD_SERDE: &str = "`rename = \"...\"`, `default`, `default = \"path\"` and \
                           `skip_serializing_if = \"path\"`";

fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let ident = &input.ident;

    // Container attributes.
    let mut namespace: Option<LitStr> = None;
    let mut krate: Option<syn::Path> = None;
    for attr in &input.attrs {
        if attr.path().is_ident("faust") {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("namespace") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() {
                        errors.at(lit.span(), "the namespace must not be empty");
                    } else if namespace.is_some() {
                        errors.at(meta.path.span(), "`namespace` is given twice");
                    }
                    namespace = Some(lit);
                } else if meta.path.is_ident("crate") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if krate.is_some() {
                        errors.at(meta.path.span(), "`crate` is given twice");
                    }
                    match lit.parse::<syn::Path>() {
                        Ok(p) => krate = Some(p),
                        Err(_) => errors.at(
                            lit.span(),
                            "`crate` must be a path, like `crate = \"my_runtime::faust\"`",
                        ),
                    }
                } else {
                    let name = meta.path.to_token_stream().to_string().replace(' ', "");
                    errors.at(
                        meta.path.span(),
                        format!(
                            "unknown argument `{name}` of `#[faust(...)]` on a record: \
                             the valid ones are `namespace = \"...\"` and `crate = \"...\"`"
                        ),
                    );
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        let _: TokenStream = meta.input.parse()?;
                    }
                }
                Ok(())
            });
            if let Err(e) = parsed {
                errors.push(e);
            }
        } else if attr.path().is_ident("serde") {
            errors.at(
                attr.path().span(),
                format!(
                    "`#[derive(faust::Record)]` takes no `#[serde(...)]` attribute on the \
                     struct (only on fields: {FIELD_SERDE}); the namespace is \
                     `#[faust(namespace = \"...\")]`"
                ),
            );
        }
    }

    // The shape: a struct with named fields, no generics.
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(_) => {
                errors.at(
                    s.fields.span(),
                    format!(
                        "`#[derive(faust::Record)]` needs named fields: a Faust record is a \
                         JSON object; write `struct {ident} {{ name: Type, ... }}`"
                    ),
                );
                None
            }
            Fields::Unit => {
                errors.at(
                    ident.span(),
                    format!(
                        "`#[derive(faust::Record)]` needs named fields: a Faust record is a \
                         JSON object; write `struct {ident} {{ name: Type, ... }}`"
                    ),
                );
                None
            }
        },
        Data::Enum(e) => {
            errors.at(
                e.enum_token.span,
                "`#[derive(faust::Record)]` works on structs with named fields only: a Faust \
                 record is one JSON object. Derive it on a struct per record type; to read \
                 several record types from one topic, consume `serde_json::Value` and \
                 dispatch on `faust::model::namespace_of(&value)`",
            );
            None
        }
        Data::Union(u) => {
            errors.at(
                u.union_token.span,
                "`#[derive(faust::Record)]` works on structs with named fields only",
            );
            None
        }
    };
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        errors.at(
            input.generics.span(),
            "`#[derive(faust::Record)]` does not support generic structs: a Faust record \
             has one namespace; declare a concrete struct per record type",
        );
    }

    let mut fields = Vec::new();
    for f in named.map(|n| n.named.iter()).into_iter().flatten() {
        let fident = f.ident.clone().expect("named field");
        let mut field = Field {
            key: fident.unraw().to_string(),
            ident: fident,
            ty: f.ty.clone(),
            default: None,
            skip_serializing_if: None,
        };
        let mut renamed = false;
        for attr in &f.attrs {
            if attr.path().is_ident("faust") {
                errors.at(
                    attr.path().span(),
                    "`#[faust(...)]` goes on the struct, not on a field: field attributes are \
                     `#[serde(...)]`",
                );
                continue;
            }
            if !attr.path().is_ident("serde") {
                continue;
            }
            let parsed = attr.parse_nested_meta(|meta| {
                let name = meta.path.to_token_stream().to_string().replace(' ', "");
                if meta.path.is_ident("rename") && meta.input.peek(syn::Token![=]) {
                    let lit: LitStr = meta.value()?.parse()?;
                    if renamed {
                        errors.at(meta.path.span(), "`rename` is given twice");
                    }
                    renamed = true;
                    field.key = lit.value();
                } else if meta.path.is_ident("default") {
                    if field.default.is_some() {
                        errors.at(meta.path.span(), "`default` is given twice");
                    }
                    if meta.input.peek(syn::Token![=]) {
                        let lit: LitStr = meta.value()?.parse()?;
                        if lit.parse::<syn::ExprPath>().is_err() {
                            errors.at(lit.span(), "`default` must name a function path");
                        }
                        field.default = Some(Some(lit));
                    } else {
                        field.default = Some(None);
                    }
                } else if meta.path.is_ident("skip_serializing_if") {
                    let lit: LitStr = meta.value()?.parse()?;
                    match lit.parse::<syn::ExprPath>() {
                        Ok(p) => field.skip_serializing_if = Some(p),
                        Err(_) => errors.at(
                            lit.span(),
                            "`skip_serializing_if` must name a function path, like \
                             `\"Option::is_none\"`",
                        ),
                    }
                } else {
                    errors.at(
                        meta.path.span(),
                        format!(
                            "`#[serde({name})]` is not supported by `#[derive(faust::Record)]`; \
                             the supported field attributes are {FIELD_SERDE}"
                        ),
                    );
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        let _: TokenStream = meta.input.parse()?;
                    }
                }
                Ok(())
            });
            if let Err(e) = parsed {
                errors.push(e);
            }
        }
        if field.key == BLESSED_KEY {
            errors.at(
                field.ident.span(),
                "`__faust` is the key of the record's namespace marker, written by \
                 `#[derive(faust::Record)]`: rename this field",
            );
        }
        fields.push(field);
    }
    errors.finish()?;

    let krate = krate
        .map(|p| p.to_token_stream())
        .unwrap_or_else(|| quote!(::faust));
    let private = quote!(#krate::__private);
    let serde_crate = format!("{}::__private::serde", krate).replace(' ', "");
    let name = ident.to_string();

    let namespace = match &namespace {
        Some(lit) => lit.to_token_stream(),
        None => {
            let src = quote!(::core::concat!(::core::module_path!(), "::", #name));
            quote! {{
                const __SRC: &::core::primitive::str = #src;
                const __BYTES: &[::core::primitive::u8; #private::dotted_len(__SRC)] =
                    &#private::dotted::<{ #private::dotted_len(__SRC) }>(__SRC);
                #private::utf8(__BYTES)
            }}
        }
    };

    // Serialize: the fields in declaration order, then the marker.
    let count = fields.len() + 1;
    let mut len_adjust = Vec::new();
    let mut ser_fields = Vec::new();
    for f in &fields {
        let (fident, key) = (&f.ident, &f.key);
        match &f.skip_serializing_if {
            Some(skip) => {
                let skip = quote_spanned!(skip.span()=> #skip);
                len_adjust.push(quote! {
                    if #skip(&self.#fident) { __len -= 1; }
                });
                ser_fields.push(quote! {
                    if #skip(&self.#fident) {
                        __st.skip_field(#key)?;
                    } else {
                        __st.serialize_field(#key, &self.#fident)?;
                    }
                });
            }
            None => ser_fields.push(quote! {
                __st.serialize_field(#key, &self.#fident)?;
            }),
        }
    }
    let len_mut = if len_adjust.is_empty() {
        quote!()
    } else {
        quote!(mut)
    };

    // Deserialize: a shadow struct with the same fields plus the marker.
    let shadow_fields = fields.iter().map(|f| {
        let (fident, ty, key) = (&f.ident, &f.ty, &f.key);
        let default = match &f.default {
            None => quote!(),
            Some(None) => quote!(#[serde(default)]),
            Some(Some(path)) => quote!(#[serde(default = #path)]),
        };
        quote! {
            #[serde(rename = #key)]
            #default
            #fident: #ty,
        }
    });
    let idents: Vec<&syn::Ident> = fields.iter().map(|f| &f.ident).collect();

    Ok(quote! {
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            impl #private::Record for #ident {
                const NAMESPACE: &'static ::core::primitive::str = #namespace;
            }

            impl #private::serde::Serialize for #ident {
                fn serialize<__S>(
                    &self,
                    __s: __S,
                ) -> ::core::result::Result<__S::Ok, __S::Error>
                where
                    __S: #private::serde::Serializer,
                {
                    use #private::serde::ser::SerializeStruct as _;
                    let #len_mut __len: ::core::primitive::usize = #count;
                    #(#len_adjust)*
                    let mut __st = __s.serialize_struct(#name, __len)?;
                    #(#ser_fields)*
                    __st.serialize_field(
                        #BLESSED_KEY,
                        &#private::RecordMarker::<Self>::new(),
                    )?;
                    __st.end()
                }
            }

            #[derive(#private::serde::Deserialize)]
            #[serde(crate = #serde_crate, rename = #name)]
            #[allow(dead_code, non_camel_case_types)]
            struct __FaustRecordShadow {
                #(#shadow_fields)*
                #[serde(rename = #BLESSED_KEY, default)]
                __faust: #private::RecordMarker<#ident>,
            }

            impl<'de> #private::serde::Deserialize<'de> for #ident {
                fn deserialize<__D>(__d: __D) -> ::core::result::Result<Self, __D::Error>
                where
                    __D: #private::serde::Deserializer<'de>,
                {
                    let __FaustRecordShadow { #(#idents,)* __faust: _ } =
                        <__FaustRecordShadow as #private::serde::Deserialize<'de>>::deserialize(__d)?;
                    ::core::result::Result::Ok(Self { #(#idents,)* })
                }
            }
        };
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(item: TokenStream) -> String {
        derive(item).to_string()
    }

    #[test]
    fn generated_code_names_only_faust_private_and_core() {
        let out = expand_str(quote! {
            struct Order {
                id: i64,
                #[serde(rename = "item_name", skip_serializing_if = "String::is_empty")]
                item: String,
                #[serde(default = "crate::zero")]
                n: u32,
            }
        });
        assert!(!out.contains("compile_error"), "{out}");
        crate::test_support::assert_paths_only_private(&out);
        assert!(
            out.contains(r#"crate = "::faust::__private::serde""#),
            "{out}"
        );
        assert!(!out.contains("faust_core"));
        // The marker is serialized last, after the fields in order.
        let (id, item, n, marker) = (
            out.find(r#"serialize_field ("id""#).unwrap(),
            out.find(r#"serialize_field ("item_name""#).unwrap(),
            out.find(r#"serialize_field ("n""#).unwrap(),
            out.find(r#"serialize_field ("__faust""#).unwrap(),
        );
        assert!(id < item && item < n && n < marker, "{out}");
    }

    #[test]
    fn crate_path_and_namespace() {
        let out = expand_str(quote! {
            #[faust(namespace = "shop.Order", crate = "my::faust")]
            struct Order { id: i64 }
        });
        assert!(
            out.contains(r#"crate = "my::faust::__private::serde""#),
            "{out}"
        );
        assert!(
            out.contains(
                r#"const NAMESPACE : & 'static :: core :: primitive :: str = "shop.Order""#
            ),
            "{out}"
        );
        // Every `faust` path goes through the given crate.
        assert_eq!(
            out.matches(":: faust ::").count(),
            out.matches("my :: faust ::").count(),
            "{out}"
        );
    }

    #[test]
    fn misuse_is_reported() {
        for (item, want) in [
            (
                quote!(
                    enum E {
                        A,
                    }
                ),
                "structs with named fields only",
            ),
            (
                quote!(
                    struct P(i64);
                ),
                "needs named fields",
            ),
            (
                quote!(
                    struct G<T> {
                        t: T,
                    }
                ),
                "does not support generic structs",
            ),
            (
                quote!(
                    struct F {
                        #[serde(flatten)]
                        f: i64,
                    }
                ),
                "`#[serde(flatten)]` is not supported",
            ),
            (
                quote!(
                    #[faust(topic = "x")]
                    struct T {
                        a: i64,
                    }
                ),
                "unknown argument `topic`",
            ),
        ] {
            let out = expand_str(item);
            assert!(
                out.contains("compile_error") && out.contains(want),
                "{want}: {out}"
            );
        }
    }
}
