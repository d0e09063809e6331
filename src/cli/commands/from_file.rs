//! `send --from-file`: one value a line, sent in order with the producer's
//! pipelining, with progress on stderr and a summary on stdout.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use faust_core::transport::{DeliveryFuture, Enqueued, Transport};
use faust_core::{App, CodecRef, ProducerRecord, RecordMetadata};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, BufReader};

/// Deliveries awaited at most at once: memory stays flat whatever the
/// file's length.
const MAX_IN_FLIGHT: usize = 1024;

/// Values between two plain progress lines unless `--progress-every` says.
pub(super) const PROGRESS_EVERY: u64 = 10_000;

/// Between two plain progress lines at most (one is also printed every
/// `every` values).
const PLAIN_INTERVAL: Duration = Duration::from_secs(1);

/// What `send --from-file` was given.
pub(super) struct FileSend<'a> {
    /// `@agent` or a topic name.
    pub(super) target: &'a str,
    /// The file; `-` is stdin.
    pub(super) path: &'a Path,
    /// Raw key of every record.
    pub(super) key: Option<String>,
    /// Partition of every record.
    pub(super) partition: Option<i32>,
    /// Values between two plain progress lines.
    pub(super) every: u64,
}

/// Send every non-blank line of the file as a value, in order; print a
/// summary as JSON on stdout once every value is delivered.
pub(super) async fn send(app: &App, args: FileSend<'_>) -> anyhow::Result<()> {
    let source = Source::open(args.path).await?;
    super::warn_if_embedded(app);
    let dest = Destination::resolve(app, args.target)?;
    let mut progress = Progress::new(source.lines, args.every);
    let mut pipeline = Pipeline::new(app.transport().clone(), &source.name);
    let outcome = feed(
        &source.name,
        source.reader,
        &dest,
        &args,
        &mut pipeline,
        &mut progress,
    )
    .await;
    // Whatever stopped the feed, what was queued is waited for, so the
    // count of values sent is true.
    let drained = pipeline.drain().await;
    progress.clear();
    let skipped = match (outcome, drained) {
        (Ok(skipped), Ok(())) => skipped,
        // After a delivery failed, later values may have been delivered.
        (Err(e), _) | (Ok(_), Err(e)) if pipeline.failed => {
            bail!("{e:#}; {} sent", values(pipeline.sent))
        }
        (Err(e), _) | (Ok(_), Err(e)) => {
            bail!("{e:#}; {} sent before it", values(pipeline.sent))
        }
    };
    app.transport()
        .flush(Duration::from_secs(10))
        .await
        .with_context(|| {
            format!(
                "{} sent, but flushing the producer failed",
                values(pipeline.sent)
            )
        })?;
    eprintln!(
        "sent {} from {} to {} in {:.2} s",
        values(pipeline.sent),
        source.name,
        dest.describe(&pipeline.partition_list()),
        progress.started.elapsed().as_secs_f64()
    );
    println!(
        "{}",
        serde_json::to_string(&pipeline.summary(&dest.topic, skipped))?
    );
    Ok(())
}

/// Read, encode and queue each line; the number of blank lines skipped, or
/// the error of the first line that could not be sent (naming it).
async fn feed(
    name: &str,
    mut reader: Box<dyn AsyncBufRead + Send + Unpin>,
    dest: &Destination,
    args: &FileSend<'_>,
    pipeline: &mut Pipeline,
    progress: &mut Progress,
) -> anyhow::Result<u64> {
    let key = args.key.clone().map(Into::into);
    let mut buf = Vec::new();
    let (mut line, mut skipped) = (0u64, 0u64);
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .await
            .with_context(|| format!("cannot read line {} of {name}", line + 1))?;
        if read == 0 {
            return Ok(skipped);
        }
        line += 1;
        let at = || format!("line {line} of {name}");
        let text = std::str::from_utf8(trim_newline(&buf))
            .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({e})", at()))?;
        if text.trim().is_empty() {
            skipped += 1;
        } else {
            let value = super::parse_value(text);
            let bytes = dest
                .codec
                .encode_bytes(&value)
                .with_context(|| format!("{}: cannot encode the value", at()))?;
            let record = ProducerRecord {
                topic: dest.topic.clone(),
                partition: args.partition,
                key: key.clone(),
                value: Some(bytes),
                headers: Vec::new(),
                timestamp: None,
            };
            pipeline.push(line, record).await?;
        }
        progress.update(line, pipeline.sent);
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `1 value`, `2 values`.
fn values(n: u64) -> String {
    format!("{n} value{}", if n == 1 { "" } else { "s" })
}

/// The lines to send, with their count when they are a file's.
struct Source {
    /// How errors and the summary name it.
    name: String,
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    /// Lines of a regular file (counted first); `None` for stdin or a pipe.
    lines: Option<u64>,
}

impl Source {
    async fn open(path: &Path) -> anyhow::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self {
                name: "stdin".into(),
                reader: Box::new(BufReader::with_capacity(64 * 1024, tokio::io::stdin())),
                lines: None,
            });
        }
        let name = path.display().to_string();
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open --from-file {name}"))?;
        let regular = file.metadata().await.is_ok_and(|m| m.is_file());
        // A pipe or a device cannot be read twice: only a file is counted.
        let lines = if regular {
            let owned = path.to_owned();
            let counted = tokio::task::spawn_blocking(move || count_lines(&owned)).await?;
            Some(counted.with_context(|| format!("cannot read --from-file {name}"))?)
        } else {
            None
        };
        Ok(Self {
            name,
            reader: Box::new(BufReader::with_capacity(64 * 1024, file)),
            lines,
        })
    }
}

/// Lines of a file: its newlines, plus a last line without one.
fn count_lines(path: &Path) -> std::io::Result<u64> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(lines + u64::from(last != b'\n'));
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
}

/// Where the values go and how they are encoded.
struct Destination {
    topic: Arc<str>,
    codec: CodecRef,
    /// The agent's name, when sent to an agent.
    agent: Option<String>,
}

impl Destination {
    fn resolve(app: &App, target: &str) -> anyhow::Result<Self> {
        let Some(name) = target.strip_prefix('@') else {
            return Ok(Self {
                topic: target.into(),
                codec: CodecRef::JSON,
                agent: None,
            });
        };
        let agent = super::in_reach(app, name)?;
        let Some(topic) = agent.get_topic_names().into_iter().next() else {
            bail!(
                "agent `{}` reads topic patterns only: send to one of its topics",
                agent.name()
            );
        };
        Ok(Self {
            agent: Some(agent.name().to_string()),
            topic: topic.into(),
            codec: agent.value_codec().clone(),
        })
    }

    /// `agent @name (topic t, partitions)` or `topic t (partitions)`.
    fn describe(&self, partitions: &str) -> String {
        match &self.agent {
            Some(name) => format!("agent @{name} (topic {}, {partitions})", self.topic),
            None => format!("topic {} ({partitions})", self.topic),
        }
    }
}

/// Where the values of one partition were written.
#[derive(serde::Serialize)]
struct Written {
    partition: i32,
    values: u64,
    first_offset: i64,
    last_offset: i64,
}

/// Records queued with the producer, at most [`MAX_IN_FLIGHT`] deliveries
/// awaited at once, oldest first.
struct Pipeline {
    transport: Arc<dyn Transport>,
    /// The source's name, for errors.
    name: String,
    /// A record could not be queued or delivered.
    failed: bool,
    in_flight: VecDeque<(u64, DeliveryFuture)>,
    /// Values delivered.
    sent: u64,
    partitions: BTreeMap<i32, Written>,
}

/// What stdout gets: one JSON object.
#[derive(serde::Serialize)]
struct Summary<'a> {
    topic: &'a str,
    sent: u64,
    /// Blank lines.
    skipped: u64,
    partitions: Vec<&'a Written>,
}

impl Pipeline {
    fn new(transport: Arc<dyn Transport>, name: &str) -> Self {
        Self {
            transport,
            name: name.to_string(),
            failed: false,
            in_flight: VecDeque::new(),
            sent: 0,
            partitions: BTreeMap::new(),
        }
    }

    /// Queue the record of `line`; wait only while the producer cannot
    /// take it or [`MAX_IN_FLIGHT`] deliveries are pending.
    async fn push(&mut self, line: u64, record: ProducerRecord) -> anyhow::Result<()> {
        let delivery = match self.transport.try_enqueue(record) {
            Ok(Enqueued::Delivered(meta)) => {
                self.delivered(&meta);
                // Nothing waited: let the other tasks of this thread run.
                tokio::task::consume_budget().await;
                None
            }
            Ok(Enqueued::Queued(delivery)) => Some(Ok(delivery)),
            Ok(Enqueued::WouldWait(record)) => Some(self.transport.enqueue(record).await),
            // Only `try_enqueue_reported` may answer this.
            Ok(Enqueued::Reported) => Some(Err(faust_core::Error::Broker(
                "the transport answered `Reported` to `try_enqueue`".into(),
            ))),
            Err(e) => Some(Err(e)),
        };
        if let Some(delivery) = delivery {
            let delivery = delivery.map_err(|e| self.fail(line, "not sent", e))?;
            self.in_flight.push_back((line, delivery));
        }
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.await_oldest().await?;
        }
        // Count what is delivered already, without waiting.
        while let Some((_, delivery)) = self.in_flight.front_mut() {
            match futures::poll!(delivery) {
                Poll::Ready(outcome) => {
                    let (line, _) = self.in_flight.pop_front().expect("a front delivery");
                    self.settle(line, outcome)?;
                }
                Poll::Pending => break,
            }
        }
        Ok(())
    }

    async fn await_oldest(&mut self) -> anyhow::Result<()> {
        if let Some((line, delivery)) = self.in_flight.pop_front() {
            let outcome = delivery.await;
            self.settle(line, outcome)?;
        }
        Ok(())
    }

    /// Wait for every pending delivery; the first failure, once all ended.
    async fn drain(&mut self) -> anyhow::Result<()> {
        let mut first = Ok(());
        while !self.in_flight.is_empty() {
            if let Err(e) = self.await_oldest().await {
                first = first.and(Err(e));
            }
        }
        first
    }

    fn settle(
        &mut self,
        line: u64,
        outcome: faust_core::Result<RecordMetadata>,
    ) -> anyhow::Result<()> {
        let meta = outcome.map_err(|e| self.fail(line, "not delivered", e))?;
        self.delivered(&meta);
        Ok(())
    }

    /// The error of `line`'s record; what follows it may still be delivered.
    fn fail(&mut self, line: u64, what: &str, e: faust_core::Error) -> anyhow::Error {
        self.failed = true;
        anyhow::Error::new(e).context(format!("line {line} of {}: {what}", self.name))
    }

    fn delivered(&mut self, meta: &RecordMetadata) {
        self.sent += 1;
        self.partitions
            .entry(meta.partition)
            .and_modify(|w| {
                w.values += 1;
                w.first_offset = w.first_offset.min(meta.offset);
                w.last_offset = w.last_offset.max(meta.offset);
            })
            .or_insert(Written {
                partition: meta.partition,
                values: 1,
                first_offset: meta.offset,
                last_offset: meta.offset,
            });
    }

    /// `partition 3`, `partitions 0, 1, 2`, `no partition`.
    fn partition_list(&self) -> String {
        let list: Vec<String> = self.partitions.keys().map(i32::to_string).collect();
        match list.len() {
            0 => "no partition".into(),
            1 => format!("partition {}", list[0]),
            _ => format!("partitions {}", list.join(", ")),
        }
    }

    fn summary<'a>(&'a self, topic: &'a str, skipped: u64) -> Summary<'a> {
        Summary {
            topic,
            sent: self.sent,
            skipped,
            partitions: self.partitions.values().collect(),
        }
    }
}

/// Progress on stderr: a bar on a terminal, plain lines otherwise.
struct Progress {
    started: Instant,
    kind: Kind,
}

enum Kind {
    /// Sized by the file's lines; a spinner with a count for stdin.
    Bar(indicatif::ProgressBar),
    /// A line every `every` values sent, and at least one a second.
    Plain {
        every: u64,
        next_at: u64,
        last: Instant,
        lines: Option<u64>,
    },
}

impl Progress {
    fn new(lines: Option<u64>, every: u64) -> Self {
        let started = Instant::now();
        let kind = if std::io::stderr().is_terminal() {
            Kind::Bar(bar(lines))
        } else {
            Kind::Plain {
                every,
                next_at: every,
                last: started,
                lines,
            }
        };
        Self { started, kind }
    }

    /// `line` lines read, `sent` values delivered.
    fn update(&mut self, line: u64, sent: u64) {
        match &mut self.kind {
            Kind::Bar(bar) => {
                bar.set_position(line);
                if line % 256 == 0 {
                    bar.set_message(format!("{} sent", values(sent)));
                }
            }
            Kind::Plain {
                every,
                next_at,
                last,
                lines,
            } => {
                let now = Instant::now();
                if sent < *next_at && now.duration_since(*last) < PLAIN_INTERVAL {
                    return;
                }
                *next_at = (sent / *every + 1) * *every;
                *last = now;
                match lines {
                    Some(total) => eprintln!(
                        "progress: {} sent (line {line} of {total}, {}%)",
                        values(sent),
                        line * 100 / (*total).max(1)
                    ),
                    None => eprintln!("progress: {} sent (line {line})", values(sent)),
                }
            }
        }
    }

    /// Take the bar off the terminal before the summary or the error.
    fn clear(&self) {
        if let Kind::Bar(bar) = &self.kind {
            bar.finish_and_clear();
        }
    }
}

fn bar(lines: Option<u64>) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let (bar, template) = match lines {
        Some(total) => (
            ProgressBar::new(total),
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} lines, {msg} (eta {eta})",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} [{elapsed_precise}] {pos} lines, {msg}",
        ),
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message("0 values sent");
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_the_codec_refuses_names_its_line_after_the_values_before_it() {
        let app = App::builder("from-file")
            .broker("memory://from-file-raw")
            .build()
            .unwrap();
        let dest = Destination {
            topic: "raw-values".into(),
            codec: CodecRef::RAW,
            agent: None,
        };
        let args = FileSend {
            target: "raw-values",
            path: Path::new("values.txt"),
            key: None,
            partition: Some(0),
            every: PROGRESS_EVERY,
        };
        let mut pipeline = Pipeline::new(app.transport().clone(), "values.txt");
        let mut progress = Progress::new(None, PROGRESS_EVERY);
        let lines: &[u8] = b"a string\n\nanother\n42\nlast\n";
        let err = feed(
            "values.txt",
            Box::new(lines),
            &dest,
            &args,
            &mut pipeline,
            &mut progress,
        )
        .await
        .unwrap_err();
        pipeline.drain().await.unwrap();
        assert!(
            format!("{err:#}").starts_with("line 4 of values.txt: cannot encode the value: "),
            "{err:#}"
        );
        assert_eq!(pipeline.sent, 2);
        assert_eq!(pipeline.partition_list(), "partition 0");
    }

    #[test]
    fn lines_are_counted_with_or_without_a_final_newline() {
        let dir = std::env::temp_dir();
        for (name, text, lines) in [
            ("faust-count-a", &b""[..], 0),
            ("faust-count-b", b"1\n2\n", 2),
            ("faust-count-c", b"1\n\n3", 3),
        ] {
            let path = dir.join(format!("{name}-{}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            assert_eq!(count_lines(&path).unwrap(), lines, "{text:?}");
            std::fs::remove_file(&path).unwrap();
        }
        assert_eq!(trim_newline(b"x\r\n"), b"x");
        assert_eq!(trim_newline(b"x"), b"x");
    }
}
