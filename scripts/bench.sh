#!/usr/bin/env bash
# Benchmarks side by side: faust for Rust against raw tokio, raw rdkafka,
# Python Faust and the JVM (kafka-clients, Kafka Streams, Spring Kafka),
# measured in the same run. One JSON line per measurement on
# stdout (schema: docs/benchmarks.md), progress on stderr.
#
# Usage:
#   scripts/bench.sh                 full sizes (1 000 000 events, 10 000 asks...)
#   scripts/bench.sh --smoke         tiny sizes of every workload that can run
#                                    here (CI: well under a minute)
#   scripts/bench.sh --start-kafka   start the local broker (scripts/kafka.sh)
#                                    for the kafka-* workloads, stop it after
#   scripts/bench.sh --keep-topics   keep the bench-* topics on the broker
#                                    (deleted at the end otherwise: the e2e
#                                    topics hold ~100 MB per run)
#   scripts/bench.sh [faust-bench flags...]
#                                    e.g. --workload mem-throughput --impl faust-rs,tokio-raw
#                                         --events 200000 --repeat 3
#                                    (target/release/faust-bench --help lists them)
#
# What runs:
#   mem-*      always;
#   python-*   when scripts/python-env.sh gives a Python with faust-streaming
#              (NO_PYTHON=1 skips it);
#   JVM peers  (java-relay*, kafka-streams*, spring-ask*) when java and mvn
#              are on PATH: bench/java is built with Maven (from Maven Central
#              the first time, offline after that; only when a source
#              changed) and FAUST_BENCH_JAVA_JARS set (NO_JAVA=1 skips them);
#   kafka-*    when a broker answers on 127.0.0.1:9092 (KAFKA=host:port to
#              change), otherwise reported as skipped.
# Exit status: non-zero when a measurement failed (not when a target is missed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "bench.sh: $*" >&2; }

start_kafka=0
keep_topics=0
args=()
for a in "$@"; do
  case "$a" in
    --start-kafka) start_kafka=1 ;;
    --keep-topics) keep_topics=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) args+=("$a") ;;
  esac
done

log "building faust-bench (release)"
cargo build --release --quiet -p faust-bench >&2

if [[ "${NO_PYTHON:-0}" != "1" && -z "${FAUST_BENCH_PYTHON:-}" ]]; then
  if py="$(scripts/python-env.sh 2>/tmp/faust-bench-python-env.log)"; then
    export FAUST_BENCH_PYTHON="$py"
  else
    log "no Python Faust (scripts/python-env.sh failed, see /tmp/faust-bench-python-env.log): python-faust skipped"
  fi
fi

if [[ "${NO_JAVA:-0}" != "1" && -z "${FAUST_BENCH_JAVA_JARS:-}" ]]; then
  jars=bench/java/target
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    log "no java or mvn on PATH: JVM peers skipped"
  elif [[ -f $jars/faust-bench-kafka.jar && -f $jars/faust-bench-spring.jar &&
    -z "$(find bench/java -name target -prune -o -type f -newer $jars/faust-bench-kafka.jar -print -quit)" ]]; then
    export FAUST_BENCH_JAVA_JARS="$PWD/$jars"
  else
    log "building the JVM peers (mvn, bench/java)"
    mvn_log=/tmp/faust-bench-java-build.log
    if mvn -q -B -o -f bench/java/pom.xml package >"$mvn_log" 2>&1 ||
      mvn -q -B -f bench/java/pom.xml package >"$mvn_log" 2>&1; then
      export FAUST_BENCH_JAVA_JARS="$PWD/$jars"
    else
      log "could not build the JVM peers (see $mvn_log): JVM peers skipped"
    fi
  fi
fi

if [[ "$start_kafka" == "1" ]]; then
  if ! scripts/kafka.sh status >/dev/null 2>&1; then
    scripts/kafka.sh start >&2
    trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
  fi
fi

if [[ -n "${KAFKA:-}" ]]; then args+=(--kafka "$KAFKA"); fi
status=0
target/release/faust-bench ${args[@]+"${args[@]}"} || status=$?

# Delete the topics the run created (bench-*, inputs, outputs and agents of
# both languages), unless asked to keep them.
broker="${KAFKA:-127.0.0.1:9092}"
if [[ "$keep_topics" == "0" ]] &&
  timeout 2 bash -c "exec 3<>/dev/tcp/${broker%:*}/${broker##*:}" 2>/dev/null; then
  if timeout 60 scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$broker" --delete --if-exists --topic 'bench-.*' >&2; then
    log "deleted the bench-* topics on $broker (--keep-topics keeps them)"
  else
    log "could not delete the bench-* topics on $broker"
  fi
fi
exit "$status"
