//! Faust records: serde structs that Python Faust reads as `faust.Record`
//! instances.
//!
//! A Faust record is a JSON object with one extra key, the *blessed key*
//! `"__faust"`, naming the model's namespace, written after the fields:
//!
//! ```text
//! {"id":1,"item":"x","__faust":{"ns":"shop.Order"}}
//! ```
//!
//! `#[derive(faust::Record)]` (in the facade) implements [`Record`] and
//! serde's `Serialize` and `Deserialize` for a struct so that it reads and
//! writes exactly that. [`namespace_of`] tells the records of a topic that
//! carries several types apart.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::rpc::wire::BLESSED_KEY;

/// A Rust type that is a Faust record of namespace [`Record::NAMESPACE`].
///
/// Implemented by `#[derive(faust::Record)]`, together with serde's
/// `Serialize` (the fields, then `"__faust": {"ns": NAMESPACE}`) and
/// `Deserialize` (the marker may be anywhere or absent; another namespace is
/// an error naming both).
pub trait Record {
    /// The model namespace: what Python's
    /// `class Order(faust.Record, namespace="shop.Order")` declares and
    /// writes in `"__faust": {"ns": "shop.Order"}`.
    const NAMESPACE: &'static str;
}

/// The namespace of a JSON value that is a Faust record: the string at
/// `"__faust"."ns"`, or `None` for anything else (plain JSON, a record
/// without the marker, a non-object).
///
/// Use it to dispatch a topic that carries several record types:
///
/// ```
/// # use faust_core as faust;
/// use faust::model::{namespace_of, Record};
///
/// // `#[derive(faust::Record)]` writes this impl (and serde's).
/// struct Add;
/// impl Record for Add {
///     const NAMESPACE: &'static str = "shop.Add";
/// }
///
/// let v = serde_json::json!({"a": 1, "b": 2, "__faust": {"ns": "shop.Add"}});
/// match namespace_of(&v) {
///     Some(Add::NAMESPACE) => { /* serde_json::from_value::<Add>(v) */ }
///     Some(other) => panic!("another record: {other}"),
///     None => panic!("plain JSON"),
/// }
/// assert_eq!(namespace_of(&serde_json::json!({"a": 1})), None);
/// ```
pub fn namespace_of(value: &Value) -> Option<&str> {
    value
        .as_object()?
        .get(BLESSED_KEY)?
        .as_object()?
        .get("ns")?
        .as_str()
}

/// The `"__faust"` value of a record of type `T`: serializes as
/// `{"ns": T::NAMESPACE}`; deserializes from an object whose `"ns"` is
/// `T::NAMESPACE` (other keys ignored), and fails naming both namespaces
/// otherwise. Used by the code `#[derive(faust::Record)]` generates.
#[doc(hidden)]
pub struct RecordMarker<T: ?Sized>(PhantomData<fn() -> T>);

impl<T: ?Sized> RecordMarker<T> {
    /// The marker.
    pub const fn new() -> Self {
        RecordMarker(PhantomData)
    }
}

impl<T: ?Sized> Default for RecordMarker<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Record + ?Sized> Serialize for RecordMarker<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Blessed", 1)?;
        st.serialize_field("ns", T::NAMESPACE)?;
        st.end()
    }
}

impl<'de, T: Record + ?Sized> Deserialize<'de> for RecordMarker<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T: ?Sized>(PhantomData<fn() -> T>);

        impl<'de, T: Record + ?Sized> Visitor<'de> for V<T> {
            type Value = RecordMarker<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "the Faust blessed key {{\"ns\": \"{}\"}}", T::NAMESPACE)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut ns: Option<String> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "ns" {
                        if ns.is_some() {
                            return Err(de::Error::duplicate_field("ns"));
                        }
                        ns = Some(map.next_value()?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                check::<T, A::Error>(ns)
            }

            // Non-self-describing formats (bincode) write the struct as a
            // sequence of its one field.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                check::<T, A::Error>(seq.next_element()?)
            }
        }

        fn check<T: Record + ?Sized, E: de::Error>(
            ns: Option<String>,
        ) -> Result<RecordMarker<T>, E> {
            match ns {
                None => Err(de::Error::missing_field("ns")),
                Some(ns) if ns == T::NAMESPACE => Ok(RecordMarker::new()),
                Some(ns) => Err(de::Error::custom(format!(
                    "expected a Faust record `{}`, got `{ns}`",
                    T::NAMESPACE
                ))),
            }
        }

        d.deserialize_struct("Blessed", &["ns"], V(PhantomData))
    }
}

/// The length of `path` with every `::` replaced by `.`; with [`dotted`],
/// the default namespace `<module path>.<type name>` at compile time.
#[doc(hidden)]
pub const fn dotted_len(path: &str) -> usize {
    let b = path.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        if i + 1 < b.len() && b[i] == b':' && b[i + 1] == b':' {
            i += 2;
        } else {
            i += 1;
        }
        n += 1;
    }
    n
}

/// `path` with every `::` replaced by `.`, as `N = dotted_len(path)` bytes.
#[doc(hidden)]
pub const fn dotted<const N: usize>(path: &str) -> [u8; N] {
    let b = path.as_bytes();
    let mut out = [0u8; N];
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        if i + 1 < b.len() && b[i] == b':' && b[i + 1] == b':' {
            out[n] = b'.';
            i += 2;
        } else {
            out[n] = b[i];
            i += 1;
        }
        n += 1;
    }
    out
}

/// `bytes` as a `&str`; they come from [`dotted`] of a valid `&str`, with
/// ASCII `::` replaced, so they are valid UTF-8.
#[doc(hidden)]
pub const fn utf8(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("namespace is not UTF-8"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Add;
    impl Record for Add {
        const NAMESPACE: &'static str = "t.Add";
    }

    #[test]
    fn marker_round_trip_and_errors() {
        let m = RecordMarker::<Add>::new();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"ns":"t.Add"}"#);
        assert!(serde_json::from_str::<RecordMarker<Add>>(r#"{"x":1,"ns":"t.Add"}"#).is_ok());
        let e = serde_json::from_str::<RecordMarker<Add>>(r#"{"ns":"t.Sub"}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("expected a Faust record `t.Add`, got `t.Sub`"),
            "{e}"
        );
        let b = bincode::serialize(&m).unwrap();
        assert!(bincode::deserialize::<RecordMarker<Add>>(&b).is_ok());
    }

    #[test]
    fn dotted_paths() {
        const SRC: &str = "my_crate::shop::Order";
        const B: &[u8; dotted_len(SRC)] = &dotted::<{ dotted_len(SRC) }>(SRC);
        assert_eq!(utf8(B), "my_crate.shop.Order");
        assert_eq!(dotted_len("a"), 1);
    }

    #[test]
    fn namespace_of_values() {
        use serde_json::json;
        assert_eq!(
            namespace_of(&json!({"__faust": {"ns": "a.B"}})),
            Some("a.B")
        );
        assert_eq!(namespace_of(&json!({"a": 1})), None);
        assert_eq!(namespace_of(&json!({"__faust": {"ns": 1}})), None);
        assert_eq!(namespace_of(&json!([1])), None);
    }
}
