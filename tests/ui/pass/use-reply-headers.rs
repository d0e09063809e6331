use faust::agent;

#[agent(use_reply_headers = false)]
async fn envelopes(x: i64) -> faust::Result<i64> {
    Ok(x)
}

#[agent(use_reply_headers = true)]
async fn headers(x: i64) -> faust::Result<i64> {
    Ok(x)
}

fn main() {}
