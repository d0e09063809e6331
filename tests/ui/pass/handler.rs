// The per-event handler form: `async fn(T) -> Result<R>`.
use faust::agent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Order {
    quantity: u32,
    unit: f64,
}

#[agent]
async fn price(order: Order) -> faust::Result<f64> {
    Ok(f64::from(order.quantity) * order.unit)
}

#[agent]
async fn ping(_: ()) -> faust::Result<()> {
    Ok(())
}

fn main() {
    let names: Vec<_> = faust::registered_agents()
        .unwrap()
        .iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["ping", "price"]);
}
