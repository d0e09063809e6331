//! The JVM peers (`bench/java`), run like the Python peer: one `java -jar`
//! process per measurement, printing one line in this schema.
//!
//! - `faust-bench-kafka.jar` (kafka-clients and Kafka Streams 3.9.1, the
//!   broker's version), kafka-e2e: `java-relay` (a plain consumer → producer
//!   loop, the client's default linger and batch), `java-relay-tuned`
//!   (`linger.ms=5`, `batch.size=262144`), `kafka-streams` (at-least-once)
//!   and `kafka-streams-eos` (`exactly_once_v2`).
//! - `faust-bench-spring.jar` (Spring Kafka 4 on the kafka-clients 4.x it
//!   requires), kafka-ask: `spring-ask` (`ReplyingKafkaTemplate` against a
//!   `@KafkaListener` with `@SendTo`, defaults) and `spring-ask-linger0`
//!   (`linger.ms=0` on both producers).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::report::Measurement;
use crate::{Args, Sizes};

/// The JVM implementations and the jar (in `--java-jars`) of each.
const PEERS: &[(&str, &str)] = &[
    ("java-relay", "faust-bench-kafka.jar"),
    ("java-relay-tuned", "faust-bench-kafka.jar"),
    ("kafka-streams", "faust-bench-kafka.jar"),
    ("kafka-streams-eos", "faust-bench-kafka.jar"),
    ("spring-ask", "faust-bench-spring.jar"),
    ("spring-ask-linger0", "faust-bench-spring.jar"),
];

/// Whether `imp` is a JVM peer.
pub(crate) fn is_jvm(imp: &str) -> bool {
    PEERS.iter().any(|(i, _)| *i == imp)
}

/// A Java runtime and the directory of the peers' jars.
#[derive(Clone, Debug)]
pub(crate) struct Jvm {
    java: PathBuf,
    jars: PathBuf,
}

/// The JVM peers' runtime, or why they are skipped.
pub(crate) fn status(java: &Path, jars: Option<&Path>) -> std::result::Result<Jvm, String> {
    let Some(jars) = jars else {
        return Err(
            "no JVM peers: pass --java-jars or set FAUST_BENCH_JAVA_JARS \
                    (scripts/bench.sh builds them with Maven)"
                .into(),
        );
    };
    if !jars.is_dir() {
        return Err(format!("--java-jars {} is not a directory", jars.display()));
    }
    java_answers(java)?;
    Ok(Jvm {
        java: java.to_path_buf(),
        jars: jars.to_path_buf(),
    })
}

/// Run `java -version` (10 s at most): the runtime is there and starts.
fn java_answers(java: &Path) -> std::result::Result<(), String> {
    let mut child = Command::new(java)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("no Java runtime: `{} -version`: {e}", java.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("`{} -version` exited with {st}", java.display())),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{} -version` did not end in 10 s", java.display()));
            }
            Err(e) => return Err(format!("waiting for `{} -version`: {e}", java.display())),
        }
    }
}

impl Jvm {
    /// Where the jars are.
    pub(crate) fn jars(&self) -> &Path {
        &self.jars
    }

    /// The jar of `imp`, or why its line is skipped.
    pub(crate) fn jar(&self, imp: &str) -> std::result::Result<PathBuf, String> {
        let name = PEERS
            .iter()
            .find(|(i, _)| *i == imp)
            .map(|(_, jar)| *jar)
            .ok_or_else(|| format!("`{imp}` is no JVM peer"))?;
        let jar = self.jars.join(name);
        if jar.is_file() {
            Ok(jar)
        } else {
            Err(format!(
                "{} not found (mvn -f bench/java/pom.xml package builds it)",
                jar.display()
            ))
        }
    }

    /// Run one measurement of `imp` in its own JVM (killed after the
    /// `--timeout`).
    pub(crate) fn run(
        &self,
        args: &Args,
        jar: &Path,
        (workload, imp, concurrency): (&str, &str, usize),
        s: &Sizes,
        input_topic: Option<&str>,
    ) -> Result<Measurement> {
        let mut cmd = Command::new(&self.java);
        cmd.arg("-jar")
            .arg(jar)
            .args(["--workload", workload, "--impl", imp])
            .args(["--concurrency", &concurrency.to_string()])
            .args(crate::size_flags(args, s));
        if let Some(t) = input_topic {
            cmd.args(["--input-topic", t]);
        }
        crate::run_measurement(cmd, s.timeout)
    }
}
