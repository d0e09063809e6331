//! The CLI of an app, run as a user would: the quickstart example's binary.

use std::process::{Command, Output};

/// `target/<profile>/examples/<name>`, next to this test's `deps/`.
fn example_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples").join(name))
        .unwrap();
    assert!(bin.exists(), "build the example first: {}", bin.display());
    bin
}

fn quickstart(args: &[&str]) -> Output {
    let bin = example_bin("quickstart");
    Command::new(bin)
        .args(args)
        .env_remove("FAUST_BROKER")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn agents_json_lists_every_agent_sorted_with_topic_and_help() {
    let out = quickstart(&["agents", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["@price", "@quote", "@totals"]);
    assert_eq!(rows[0]["topic"], "orders");
    assert_eq!(rows[0]["concurrency"], 4);
    assert_eq!(rows[1]["topic"], "quickstart-quickstart.quote");
    assert_eq!(
        rows[1]["help"],
        "Quote the price of one order (request/reply)."
    );
}

#[test]
fn channel_agents_are_listed_with_local_only_and_cannot_be_sent_to_from_here() {
    let out = quickstart(&["agents", "--local", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["name"], "@large");
    assert_eq!(rows[0]["topic"], "<LOCAL>");
    assert_eq!(rows.as_array().unwrap().len(), 4);
    let out = quickstart(&["send", "@large", "12"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in-memory channel `prices`"), "{err}");
}

#[test]
fn agents_table_is_readable() {
    let out = quickstart(&["agents"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with("name"), "{text}");
    assert!(text.contains("@price   orders"), "{text}");
}

#[test]
fn ask_prints_the_reply_as_json() {
    let out = quickstart(&["ask", "@quote", r#"{"id":1,"item":"tea","quantity":2}"#]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), r#""2 x tea = 8.00""#);
}

#[test]
fn send_prints_where_the_value_was_written() {
    let out = quickstart(&["send", "@totals", "2.5", "--partition", "3"]);
    assert!(out.status.success(), "{out:?}");
    let meta: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(meta["topic"], "quickstart-quickstart.totals");
    assert_eq!(meta["partition"], 3);
}

#[test]
fn unknown_agent_and_bad_input_fail_with_a_clear_message() {
    let out = quickstart(&["ask", "@nope", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown agent `nope`; registered agents: large, price, quote, totals"),
        "{err}"
    );
    let out = quickstart(&["ask", "quote", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("write `@quote`"));
    let out = quickstart(&["ask", "@quote", "not an order", "--timeout", "5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot decode"), "{err}");
    let out = quickstart(&["--broker", "nats://x", "agents"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no transport for scheme `nats`"));
}

#[test]
fn help_reads_well() {
    let out = quickstart(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for word in ["worker", "agents", "send", "ask", "--broker", "--loglevel"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

/// Run `example`'s worker (logs at info, no broker or app id from the
/// environment) until a stderr line satisfies `ready`, then SIGTERM it.
/// Returns stderr up to that line and the lines after it; asserts a
/// graceful exit.
fn worker_until(example: &str, ready: impl Fn(&str) -> bool) -> (String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let bin = example_bin(example);
    let mut child = Command::new(bin)
        .arg("worker")
        .env_remove("FAUST_BROKER")
        .env_remove("FAUST_APP_ID")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if ready(&line) {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?} {rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("worker stopped; offsets committed")),
        "{rest:?}"
    );
    (seen, rest)
}

#[test]
fn worker_prints_a_banner_and_stops_gracefully_on_sigterm() {
    // The banner, then the "app started" log line: the worker is running.
    let (banner, _) = worker_until("quickstart", |line| line.contains("app started"));
    // Nothing named the app: its id is the executable's name, and the
    // banner says what renaming the binary would do.
    assert!(
        banner.contains("app id:  quickstart (the executable's name: renaming the binary renames the consumer group"),
        "{banner}"
    );
    assert!(banner.contains("broker:  memory://"), "{banner}");
    assert!(banner.contains("@price"), "{banner}");
}

#[cfg(feature = "kafka")]
#[test]
fn ask_without_a_broker_exits_at_its_timeout() {
    // Nothing listens on port 1: the reply topic can never be created.
    let t0 = std::time::Instant::now();
    let out = quickstart(&[
        "--broker",
        "kafka://127.0.0.1:1",
        "ask",
        "@quote",
        r#"{"id":1,"item":"tea","quantity":2}"#,
        "--timeout",
        "2",
    ]);
    let spent = t0.elapsed();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ask to agent `quote` while starting the reply consumer (deadline 2s) timed out after 2."),
        "{err}"
    );
    assert!(
        spent < std::time::Duration::from_secs(4),
        "the process exited {spent:?} after it started"
    );
}

/// Run the quickstart binary with stdout and stderr piped, killing it after
/// `secs` seconds.
fn quickstart_within(args: &[&str], secs: u64) -> Output {
    let bin = example_bin("quickstart");
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("FAUST_BROKER")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {secs} s: {out:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let out = quickstart_within(
        &[
            "-l",
            "info",
            "ask",
            "@quote",
            r#"{"id":1,"item":"tea","quantity":2}"#,
        ],
        60,
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("app started"), "{err}");
    assert!(!err.contains("\x1b["), "ANSI codes in piped logs: {err:?}");
}

/// A known password, as given (percent-encoded) and as decoded.
const PASSWORD: &str = "S3cr3t@pw-4711";
const PASSWORD_ENCODED: &str = "S3cr3t%40pw-4711";

fn assert_no_password(out: &Output) {
    let text = all_output(out);
    for secret in [PASSWORD, PASSWORD_ENCODED, "S3cr3t"] {
        assert!(!text.contains(secret), "`{secret}` printed:\n{text}");
    }
}

#[test]
fn the_broker_password_is_never_printed() {
    let url = format!(
        "kafka://no-such-host.invalid:9092?security.protocol=sasl_plaintext&sasl.mechanisms=PLAIN\
         &sasl.username=alice&sasl.password={PASSWORD_ENCODED}&producer.sasl.password={PASSWORD_ENCODED}\
         &faust.operation.timeout.ms=3000&producer.message.timeout.ms=3000&faust.delivery.timeout.ms=3000"
    );
    // Banner, logs and the final error of a worker that cannot reach its broker.
    let out = quickstart_within(&["--broker", &url, "-l", "debug", "worker"], 90);
    assert!(!out.status.success(), "{out:?}");
    let text = all_output(&out);
    assert!(
        text.contains("broker:  kafka://no-such-host.invalid:9092?"),
        "{text}"
    );
    assert!(text.contains("sasl.password=***"), "{text}");
    assert_no_password(&out);
    // `send`: its delivery error.
    let out = quickstart_within(&["--broker", &url, "send", "@totals", "1"], 90);
    assert!(!out.status.success(), "{out:?}");
    assert_no_password(&out);
    // Credentials in the host part are rejected without being echoed.
    let out = quickstart_within(
        &[
            "--broker",
            &format!("kafka://alice:{PASSWORD_ENCODED}@no-such-host.invalid:9092"),
            "agents",
        ],
        30,
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(all_output(&out).contains("sasl.password"), "{out:?}");
    assert_no_password(&out);
    // An invalid property next to the password.
    let out = quickstart_within(
        &[
            "--broker",
            &format!("kafka://127.0.0.1:1?sasl.password={PASSWORD_ENCODED}&no.such.property=1"),
            "agents",
        ],
        30,
    );
    assert!(!out.status.success(), "{out:?}");
    assert_no_password(&out);
}

/// The service example's binary (settings in code, a timer, a start-up
/// hook, a command of its own), with `env` set and nothing else of faust's.
fn service(args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = example_bin("service");
    Command::new(bin)
        .args(args)
        .env_remove("FAUST_BROKER")
        .env_remove("FAUST_APP_ID")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn settings(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let mut all = args.to_vec();
    all.push("settings");
    let out = service(&all, env);
    assert!(out.status.success(), "{out:?}");
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    (
        s["app_id"].as_str().unwrap().to_string(),
        s["broker"].as_str().unwrap().to_string(),
    )
}

#[test]
fn settings_come_from_code_then_the_environment_then_the_command_line() {
    let code = ("service".to_string(), "memory://service".to_string());
    assert_eq!(settings(&[], &[]), code);
    let env = [("FAUST_BROKER", "memory://env"), ("FAUST_APP_ID", "env-id")];
    assert_eq!(
        settings(&[], &env),
        ("env-id".into(), "memory://env".into())
    );
    let flags = ["--broker", "memory://flag", "--app-id", "flag-id"];
    assert_eq!(
        settings(&flags, &env),
        ("flag-id".into(), "memory://flag".into())
    );
    assert_eq!(
        settings(&flags, &[]),
        ("flag-id".into(), "memory://flag".into())
    );
    // An empty variable is no setting.
    assert_eq!(settings(&[], &[("FAUST_BROKER", "")]), code);
}

#[test]
fn the_apps_own_command_is_in_the_help_with_fausts() {
    let out = service(&["--help"], &[]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for word in [
        "worker",
        "agents",
        "settings",
        "Print the app id and broker",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn the_worker_runs_its_hook_and_timer_then_stops_on_sigterm() {
    // The banner, the hook's line, the agent's greeting, then a timer run
    // that counts it.
    let (seen, _) = worker_until("service", |line| {
        line.contains("report") && line.contains("greeted=1")
    });
    assert!(seen.contains("app id:  service\n"), "{seen}");
    assert!(seen.contains("timers:\n  report"), "{seen}");
    assert!(seen.contains("service ready: 1 agent(s)"), "{seen}");
    assert!(seen.contains("hello, the first visitor"), "{seen}");
}

#[test]
fn errors_print_as_one_message_even_with_rust_backtrace() {
    let bin = example_bin("quickstart");
    let out = Command::new(bin)
        .args(["ask", "@nope", "1"])
        .env_remove("FAUST_BROKER")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error: unknown agent `nope`"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn send_on_the_embedded_broker_warns_that_nothing_else_reads_it() {
    let out = quickstart(&["send", "@totals", "2.5"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("embedded in this process") && err.contains("--broker"),
        "{err}"
    );
}

/// A file of the tests' scratch directory holding `contents`.
fn scratch_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Run the quickstart binary with `input` on stdin and stdout and stderr
/// piped; fails the test if it still runs after `secs` seconds.
fn quickstart_fed(args: &[&str], input: &[u8], secs: u64) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(example_bin("quickstart"))
        .args(args)
        .env_remove("FAUST_BROKER")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written apart, then closed: the child may not read it all.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pid = child.id();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match exited.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => {
            writer.join().unwrap();
            out.unwrap()
        }
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "`quickstart {}` still running after {secs} s",
                args.join(" ")
            );
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn send_from_file_sends_every_line_with_plain_progress_and_a_summary() {
    // 500 values, a blank line, a line of spaces and a CRLF line ending.
    let mut text = String::new();
    for i in 1..=500 {
        text.push_str(&i.to_string());
        text.push_str(match i {
            10 => "\n\n",
            20 => "\n   \n",
            30 => "\r\n",
            _ => "\n",
        });
    }
    let path = scratch_file("send-from-file.txt", text.as_bytes());
    let path = path.to_str().unwrap();
    let out = quickstart_fed(
        &[
            "send",
            "@totals",
            "--from-file",
            path,
            "--partition",
            "3",
            "--progress-every",
            "100",
        ],
        b"",
        60,
    );
    assert!(out.status.success(), "{out:?}");
    // stdout: one JSON summary; every value landed in partition 3 of a
    // fresh broker, at offsets 0 to 499.
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({
            "topic": "quickstart-quickstart.totals",
            "sent": 500,
            "skipped": 2,
            "partitions": [
                {"partition": 3, "values": 500, "first_offset": 0, "last_offset": 499}
            ],
        })
    );
    let err = stderr(&out);
    assert!(err.contains("embedded in this process"), "{err}");
    for n in [100, 200, 300, 400, 500] {
        assert!(
            err.contains(&format!("progress: {n} values sent (line ")),
            "no progress line for {n}: {err}"
        );
    }
    assert!(
        err.contains("of 502, "),
        "the file's lines are counted: {err}"
    );
    assert!(
        err.contains(&format!(
            "sent 500 values from {path} to agent @totals \
             (topic quickstart-quickstart.totals, partition 3) in "
        )),
        "{err}"
    );
    assert!(
        !err.contains("\x1b["),
        "terminal codes in piped stderr: {err:?}"
    );
}

#[test]
fn send_from_stdin_to_a_topic_with_a_key() {
    let input: String = (1..=20).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    let out = quickstart_fed(
        &["send", "readings", "--from-file", "-", "--key", "sensor-1"],
        input.as_bytes(),
        60,
    );
    assert!(out.status.success(), "{out:?}");
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["topic"], "readings");
    assert_eq!(summary["sent"], 20);
    // One key: one partition, in order.
    let parts = summary["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{summary}");
    assert_eq!(parts[0]["values"], 20);
    assert_eq!(parts[0]["first_offset"], 0);
    assert_eq!(parts[0]["last_offset"], 19);
    let err = stderr(&out);
    let partition = &parts[0]["partition"];
    assert!(
        err.contains(&format!(
            "sent 20 values from stdin to topic readings (partition {partition}) in "
        )),
        "{err}"
    );
}

#[test]
fn send_from_file_names_the_bad_line_and_what_was_sent_before_it() {
    let path = scratch_file("send-bad-line.txt", b"1\n2\n\n3\n\xff\xfe\n5\n");
    let path = path.to_str().unwrap();
    let out = quickstart_fed(&["send", "@totals", "--from-file", path], b"", 60);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).is_empty(), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Error: line 5 of {path}: not UTF-8 text (invalid utf-8 sequence"
        )),
        "{err}"
    );
    assert!(
        err.trim_end().ends_with("; 3 values sent before it"),
        "{err}"
    );
    // A record the broker refuses (a partition it does not have).
    let path = scratch_file("send-refused.txt", b"1\n2\n");
    let path = path.to_str().unwrap();
    let out = quickstart_fed(
        &["send", "@totals", "--from-file", path, "--partition", "99"],
        b"",
        60,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Error: line 1 of {path}: not sent: ")),
        "{err}"
    );
    assert!(err.contains("partition 99"), "{err}");
    assert!(err.trim_end().ends_with("; 0 values sent"), "{err}");
}

#[test]
fn send_from_a_missing_file_fails_with_a_clear_message() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-values.txt");
    let path = path.to_str().unwrap();
    let out = quickstart_fed(&["send", "@totals", "--from-file", path], b"", 60);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).is_empty(), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("Error: cannot open --from-file {path}: ")),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn send_takes_a_value_or_a_file_not_both() {
    let path = scratch_file("send-conflict.txt", b"1\n");
    let path = path.to_str().unwrap();
    let out = quickstart_fed(&["send", "@totals", "1", "--from-file", path], b"", 60);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("the argument '[VALUE]' cannot be used with '--from-file <PATH>'"),
        "{err}"
    );
    let out = quickstart_fed(&["send", "@totals"], b"", 60);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("<VALUE>"), "{out:?}");
    let out = quickstart_fed(&["send", "@totals", "1", "--progress-every", "5"], b"", 60);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("--progress-every goes with --from-file"),
        "{out:?}"
    );
}
