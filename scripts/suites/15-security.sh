#!/usr/bin/env bash
# TLS and SASL/SCRAM against a real broker (faust-kafka/tests/security.rs,
# built with `--features ssl`): a second single-node broker started here
# with scripts/kafka.sh in KAFKA_SECURE mode -- SASL_SSL (SCRAM-SHA-256) on
# SECURE_KAFKA_PORT (default 9192), SSL on the port after the controller's
# (9194), a throwaway CA generated at start -- and stopped on exit.
# scripts/test.sh runs this after the main broker is up; to run it alone:
#
#   scripts/suites/15-security.sh
#
# Needs openssl (certificates) besides Java and Maven; building rdkafka
# with `ssl` needs OpenSSL's headers (libssl-dev) and pkg-config.
# Extra arguments go to the test harness, e.g. a test name filter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

export KAFKA_SECURE=1
export KAFKA_PORT="${SECURE_KAFKA_PORT:-9192}"
export KAFKA_HEAP="${KAFKA_HEAP:--Xms128m -Xmx512m}"
SSL_PORT="${KAFKA_SSL_PORT:-$((KAFKA_PORT + 2))}"

stop() { scripts/kafka.sh stop >/dev/null 2>&1 || true; }
trap stop EXIT
scripts/kafka.sh start

TLS="$(scripts/kafka.sh tls-dir)"
export FAUST_TEST_KAFKA_SASL_SSL="127.0.0.1:$KAFKA_PORT"
export FAUST_TEST_KAFKA_SSL="127.0.0.1:$SSL_PORT"
export FAUST_TEST_KAFKA_CA="$TLS/ca.pem"
export FAUST_TEST_KAFKA_OTHER_CA="$TLS/other-ca.pem"

echo "security tests: SASL_SSL on $FAUST_TEST_KAFKA_SASL_SSL, SSL on $FAUST_TEST_KAFKA_SSL"
start=$SECONDS
cargo test -p faust-kafka --features ssl --test security -- --test-threads=1 "$@"
echo "security suite passed in $((SECONDS - start)) s"
