// Timer mistakes: no interval, a bad interval, an unknown argument, a
// function that is not async or takes more than the app.

#[faust::timer]
async fn no_interval() -> faust::Result<()> {
    Ok(())
}

#[faust::timer(interval = "5 parsecs")]
async fn bad_interval() -> faust::Result<()> {
    Ok(())
}

#[faust::timer(interval = "0s")]
async fn zero_interval() -> faust::Result<()> {
    Ok(())
}

#[faust::timer(interval = "1s", every = 2)]
async fn unknown_argument() -> faust::Result<()> {
    Ok(())
}

#[faust::timer(interval = "1s")]
fn not_async() -> faust::Result<()> {
    Ok(())
}

#[faust::timer(interval = "1s")]
async fn two_parameters(_app: faust::App, _n: u32) -> faust::Result<()> {
    Ok(())
}

#[faust::timer(interval = "1s")]
async fn no_result() {}

fn main() {}
