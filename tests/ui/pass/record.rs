// `#[derive(faust::Record)]` compiles under strict lints, with every
// supported attribute, through a re-exported facade, inside a function, and
// without the user deriving (or naming) serde.
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    unreachable_pub,
    rust_2018_idioms,
    unused,
    non_snake_case
)]
//! A crate with strict lints.

use faust::Record;

/// A documented public record.
#[derive(Debug, Clone, PartialEq, Record)]
#[faust(namespace = "shop.Order")]
pub struct Order {
    /// Id.
    pub id: i64,
    /// Renamed on the wire.
    #[serde(rename = "item_name")]
    pub item: String,
    /// May be missing.
    pub note: Option<String>,
    /// Defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A raw identifier.
    pub r#type: String,
    /// A nested record, boxed.
    pub parent: Option<Box<Order>>,
}

mod deps {
    pub(crate) use ::faust;
}

/// The facade re-exported under another name.
pub mod runtime {
    pub use ::faust::*;
}

#[derive(runtime::Record)]
#[faust(crate = "crate::deps::faust")]
struct ThroughReexport {
    a: i64,
}

#[derive(runtime::Record)]
#[faust(crate = "runtime", namespace = "x.Y")]
struct RelativeCrate {
    a: i64,
}

fn main() {
    #[derive(faust::Record)]
    struct Local {
        inner: Vec<Local>,
    }
    let _ = serde_json::to_string(&Local { inner: vec![] });
    let _ = serde_json::to_string(&ThroughReexport { a: 1 });
    let _ = serde_json::to_string(&RelativeCrate { a: 1 });
    let _ = <Order as Record>::NAMESPACE;
    let _: Option<Order> = serde_json::from_str("{}").ok();
    let _: Option<ThroughReexport> = serde_json::from_str("{}").ok();
    let _: Option<RelativeCrate> = serde_json::from_str("{}").ok();
    let _: Option<Local> = serde_json::from_str("{}").ok();
}
