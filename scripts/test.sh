#!/usr/bin/env bash
# The whole test suite, from scratch: lints, offline tests (embedded broker and
# librdkafka's mock cluster), then the real-broker suite against an Apache Kafka
# broker this script installs and starts on 127.0.0.1 (and stops afterwards).
#
#   scripts/test.sh            everything
#   SKIP_BROKER=1 scripts/test.sh   offline layer only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each step says when it starts (seconds since the start), so a slow step shows.
step() { printf '\n==> [%4d s] %s\n' "$SECONDS" "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "offline tests (embedded broker, mock Kafka cluster)"
cargo test --workspace

# trybuild compiles the facade again for its test cases; without the default
# features (librdkafka's C build, the web server) that takes minutes, not most
# of the suite's time, and the macro is the same.
step "macro UI tests (trybuild, without the default features)"
cargo test -p faust-rs --no-default-features --test ui

step "feature opentelemetry: lints, spans exported to an in-test OTLP/HTTP collector"
cargo clippy --workspace --all-targets --features faust-rs/opentelemetry -- -D warnings
cargo test -p faust-rs --features opentelemetry --test opentelemetry

step "loom models of the synchronisation (release, own target dir)"
RUSTFLAGS="--cfg faust_loom" LOOM_MAX_PREEMPTIONS=3 \
  cargo test -p faust-core --release --lib --target-dir target/loom loom

if [[ "${SKIP_BROKER:-0}" == "1" ]]; then
  echo "SKIP_BROKER=1: real-broker suite skipped"
  exit 0
fi

step "real Apache Kafka broker"
scripts/kafka.sh install
scripts/kafka.sh start
trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT

for suite in scripts/suites/*.sh; do
  [[ -e "$suite" ]] || continue
  step "suite $(basename "$suite")"
  bash "$suite"
done

step "all tests passed"
