// Every unsupported attribute is reported at once, each where it is.
#[derive(faust::Record)]
#[faust(namespace = "", topic = "orders")]
#[serde(rename_all = "camelCase")]
struct Order {
    #[serde(flatten)]
    extra: std::collections::HashMap<String, i64>,
    #[serde(rename = "__faust")]
    marker: i64,
    #[faust(namespace = "x")]
    id: i64,
}

#[derive(faust::Record)]
struct Generic<T> {
    value: T,
}

fn main() {}
