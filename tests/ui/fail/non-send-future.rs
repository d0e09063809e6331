use std::rc::Rc;

use faust::{agent, Stream};

#[agent]
async fn holds_rc(mut s: Stream<i64>) -> faust::Result<()> {
    let total = Rc::new(std::cell::Cell::new(0));
    while let Some(x) = s.next().await {
        total.set(total.get() + x);
    }
    Ok(())
}

fn main() {}
