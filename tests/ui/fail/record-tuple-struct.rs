#[derive(faust::Record)]
#[faust(namespace = "geo.Point")]
struct Point(i64, i64);

#[derive(faust::Record)]
struct Unit;

fn main() {}
