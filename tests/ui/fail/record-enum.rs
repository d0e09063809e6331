#[derive(faust::Record)]
#[faust(namespace = "shop.Event")]
enum Event {
    Add { a: i64, b: i64 },
    Refund { id: i64 },
}

fn main() {}
