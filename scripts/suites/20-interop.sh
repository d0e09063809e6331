#!/usr/bin/env bash
# Interop with Python Faust (faust-streaming 0.15.3) on the real broker:
# Python calls Rust agents and Rust calls Python agents, both request modes,
# records, plain producers, mismatches. See docs/interop.md and
# tests/interop/run.py. scripts/test.sh starts the broker and runs this; to
# run it alone:
#
#   scripts/kafka.sh start && scripts/suites/20-interop.sh
#
# Environment: INTEROP_BROKER (default kafka://<scripts/kafka.sh bootstrap>),
# INTEROP_TIMEOUT (seconds for the whole run, default 480). Logs are kept in
# target/tmp/interop/<run>/; the topics of the run are deleted afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BOOTSTRAP="$(scripts/kafka.sh bootstrap)"
export INTEROP_BROKER="${INTEROP_BROKER:-kafka://$BOOTSTRAP}"
addr="${INTEROP_BROKER#kafka://}"
addr="${addr%%[,?]*}"
if ! timeout 2 bash -c "exec 3<>/dev/tcp/${addr%:*}/${addr##*:}" 2>/dev/null; then
  echo "20-interop.sh: no broker answers on $addr (scripts/kafka.sh start)" >&2
  exit 1
fi

PY="$(scripts/python-env.sh)"

echo "building the Rust side (examples/interop.rs)"
cargo build --example interop
BIN="${CARGO_TARGET_DIR:-target}/debug/examples/interop"

# Every topic, app id and reply topic of this run starts with the prefix.
export INTEROP_PREFIX="interop-$(date +%s)-$$-"
delete_topics() {
  timeout 60 scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$addr" --delete --topic "${INTEROP_PREFIX}.*" >/dev/null 2>&1 || true
}
trap delete_topics EXIT

start=$SECONDS
timeout --kill-after=20 "${INTEROP_TIMEOUT:-480}" "$PY" tests/interop/run.py --rust-bin "$BIN"
echo "interop suite passed in $((SECONDS - start)) s"
