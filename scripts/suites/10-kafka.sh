#!/usr/bin/env bash
# The real-broker suite (tests/broker_suite.rs): worker processes
# (examples/worker.rs) in consumer groups on the Apache Kafka broker of
# scripts/kafka.sh, then faust-kafka's real-broker transport tests and the
# transport conformance suite (faust-kafka/tests/conformance.rs) on it.
# scripts/test.sh starts the broker and runs this; to run it alone:
#
#   scripts/kafka.sh start && scripts/suites/10-kafka.sh
#
# Environment: FAUST_TEST_KAFKA (default: the bootstrap address of
# scripts/kafka.sh, 127.0.0.1:9092), WORKER_RUST_LOG (the workers' log
# filter, default info; logs are kept in target/tmp/broker-suite/).
# Extra arguments go to the test harness, e.g. a test name filter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

export FAUST_TEST_KAFKA="${FAUST_TEST_KAFKA:-$(scripts/kafka.sh bootstrap)}"
if ! timeout 2 bash -c "exec 3<>/dev/tcp/${FAUST_TEST_KAFKA%:*}/${FAUST_TEST_KAFKA##*:}" 2>/dev/null; then
  echo "10-kafka.sh: no broker answers on $FAUST_TEST_KAFKA (scripts/kafka.sh start)" >&2
  exit 1
fi

echo "building the worker (examples/worker.rs) and the quickstart CLI app"
cargo build --example worker --example quickstart

# A failed test ends with its error message, not a backtrace after it (the
# end of a long log is what a reader sees first); panics keep theirs.
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"
echo "real-broker suite against $FAUST_TEST_KAFKA"
start=$SECONDS
cargo test --test broker_suite -- --test-threads=1 --nocapture "$@"
echo "real-broker suite passed in $((SECONDS - start)) s"

echo "transport tests against $FAUST_TEST_KAFKA (faust-kafka/tests/real_broker.rs)"
cargo test -p faust-kafka --test real_broker -- --test-threads=1

echo "transport conformance suite against $FAUST_TEST_KAFKA (faust-kafka/tests/conformance.rs)"
cargo test -p faust-kafka --test conformance real_broker -- --test-threads=1
