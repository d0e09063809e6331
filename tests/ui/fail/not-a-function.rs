use faust::agent;

#[agent]
struct NotAnAgent;

fn main() {
    let _ = NotAnAgent;
}
