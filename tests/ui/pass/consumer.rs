// The consumer form: `async fn(Stream<T>) -> Result<()>`.
use faust::{agent, Stream};

/// Print every line.
#[agent]
async fn print_lines(mut lines: Stream<String>) -> faust::Result<()> {
    while let Some(line) = lines.next().await {
        println!("{line}");
    }
    Ok(())
}

fn main() {
    let d = faust::registered_agents().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].name, "print_lines");
    assert!(d[0].file.ends_with("consumer.rs"));
    assert_eq!(d[0].line, 6);
    let spec = (d[0].build)();
    assert_eq!(spec.name(), "print_lines");
}
