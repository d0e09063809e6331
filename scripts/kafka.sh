#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller in one JVM) on loopback,
# for integration tests. The broker jars come from Maven Central through
# scripts/kafka/pom.xml; nothing is downloaded from anywhere else.
#
# Usage: scripts/kafka.sh install|start|stop|restart|status|reset|logs|tool ...
#
#   install   copy the broker jars into .kafka/libs (skipped when up to date)
#   start     install if needed, format storage on first use, start the broker
#             in the background and wait until it answers; no-op if something
#             already answers on the port
#   stop      stop the broker started by this script (TERM, then KILL after 30 s)
#   restart   stop + start (data kept)
#   status    exit 0 and print details when running, exit 3 when not
#   reset     stop and delete the broker's data (jars kept)
#   logs [N]  print the last N (default 100) lines of the broker log
#   tool MAIN [ARGS...]
#             run a Java main class with the Kafka classpath, e.g.
#               scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand \
#                   --bootstrap-server 127.0.0.1:9092 --list
#   bootstrap print the bootstrap address (127.0.0.1:PORT)
#   tls-dir   print the directory of the generated CA and certificates
#             (KAFKA_SECURE=1)
#
# Environment:
#   KAFKA_PORT             client port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1)
#   KAFKA_HEAP             JVM heap flags (default "-Xms256m -Xmx1g")
#   KAFKA_START_TIMEOUT    seconds to wait for the broker (default 90)
#   KAFKA_HOME_DIR         state directory (default <repo>/.kafka)
#   KAFKA_SECURE=1         a broker for TLS and SCRAM tests instead: listeners
#                          SASL_SSL (SCRAM-SHA-256) on KAFKA_PORT, SSL on
#                          KAFKA_SSL_PORT (default KAFKA_PORT+2), PLAINTEXT
#                          between brokers on KAFKA_INTERNAL_PORT (default
#                          KAFKA_PORT+3); a throwaway CA (tls/ca.pem), a broker
#                          certificate for 127.0.0.1 signed by it, and an
#                          unrelated CA (tls/other-ca.pem) are generated with
#                          openssl at every start; the SCRAM user
#                          KAFKA_SCRAM_USER (alice) with the password
#                          KAFKA_SCRAM_PASSWORD (alice-secret) is created when
#                          the storage is formatted. State in
#                          .kafka/instance-secure-<port>/.
#
# Layout (default port): .kafka/libs/ (jars), .kafka/server.properties,
# .kafka/log4j.properties, .kafka/data/ (log dirs), .kafka/kafka.log,
# .kafka/kafka.pid. With a non-default KAFKA_PORT the per-instance files live
# in .kafka/instance-<port>/ so that several brokers can coexist.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx1g}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HOST=127.0.0.1

KAFKA_SECURE="${KAFKA_SECURE:-0}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_INTERNAL_PORT="${KAFKA_INTERNAL_PORT:-$((KAFKA_PORT + 3))}"
KAFKA_SCRAM_USER="${KAFKA_SCRAM_USER:-alice}"
KAFKA_SCRAM_PASSWORD="${KAFKA_SCRAM_PASSWORD:-alice-secret}"

KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$ROOT/.kafka}"
LIBS="$KAFKA_HOME_DIR/libs"
if [[ "$KAFKA_SECURE" == 1 ]]; then
  INST="$KAFKA_HOME_DIR/instance-secure-$KAFKA_PORT"
elif [[ "$KAFKA_PORT" == 9092 ]]; then
  INST="$KAFKA_HOME_DIR"
else
  INST="$KAFKA_HOME_DIR/instance-$KAFKA_PORT"
fi
PROPS="$INST/server.properties"
LOG4J="$INST/log4j.properties"
DATA="$INST/data"
LOG="$INST/kafka.log"
PIDFILE="$INST/kafka.pid"
TLS="$INST/tls"
# Password of the generated broker keystore (a throwaway, like the CA).
KEYSTORE_PASSWORD=faust-test-keystore

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# True when something accepts TCP connections on HOST:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# Pid from the pid file if that process is alive and is our Kafka JVM.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

# Serialise install/start/stop/reset between concurrent invocations (e.g.
# parallel test binaries all calling `start`). fd 9 must not leak into the
# broker, or the lock would be held for as long as the broker runs.
take_lock() {
  command -v flock >/dev/null || return 0
  mkdir -p "$KAFKA_HOME_DIR"
  exec 9>"$KAFKA_HOME_DIR/.lock"
  flock -w 300 9 || die "timed out waiting for $KAFKA_HOME_DIR/.lock"
}

# Fingerprint of the pom, so a changed pom triggers a re-install.
pom_stamp() { sha256sum "$POM" | cut -c1-16; }

cmd_install() {
  local stamp marker
  stamp="$(pom_stamp)"
  marker="$LIBS/.installed-$stamp"
  if [[ -f "$marker" ]]; then
    return 0
  fi
  command -v java >/dev/null || die "java not found (need a JRE 11+; 17 is known to work)"
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  log "installing Kafka jars into $LIBS (Maven Central) ..."
  mkdir -p "$KAFKA_HOME_DIR"
  local tmp="$KAFKA_HOME_DIR/libs.tmp.$$"
  rm -rf "$tmp"
  local mvnlog="$KAFKA_HOME_DIR/mvn-install.log"
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime >"$mvnlog" 2>&1; then
    cat "$mvnlog" >&2
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed"
  fi
  rm -f "$mvnlog"
  touch "$tmp/.installed-$stamp"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars"
}

# A throwaway CA, a broker certificate for 127.0.0.1 signed by it (PKCS12
# keystore), and an unrelated CA, in $TLS.
gen_certs() {
  command -v openssl >/dev/null || die "openssl not found (needed by KAFKA_SECURE=1)"
  rm -rf "$TLS"
  mkdir -p "$TLS"
  (
    cd "$TLS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=faust test CA" \
      -keyout ca.key -out ca.pem
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=faust other CA" \
      -keyout other-ca.key -out other-ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$HOST" -keyout broker.key -out broker.csr
    printf 'subjectAltName=IP:%s,DNS:localhost\n' "$HOST" >broker.ext
    openssl x509 -req -days 30 -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -extfile broker.ext -out broker.pem
    openssl pkcs12 -export -name broker -in broker.pem -inkey broker.key -certfile ca.pem \
      -passout "pass:$KEYSTORE_PASSWORD" -out broker.p12
  ) >"$INST/tls.log" 2>&1 || { cat "$INST/tls.log" >&2; die "certificate generation failed"; }
}

write_config() {
  mkdir -p "$INST" "$DATA"
  local listeners
  if [[ "$KAFKA_SECURE" == 1 ]]; then
    listeners="listeners=SASL_SSL://$HOST:$KAFKA_PORT,SSL://$HOST:$KAFKA_SSL_PORT,INTERNAL://$HOST:$KAFKA_INTERNAL_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$HOST:$KAFKA_PORT,SSL://$HOST:$KAFKA_SSL_PORT,INTERNAL://$HOST:$KAFKA_INTERNAL_PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$KEYSTORE_PASSWORD
ssl.key.password=$KEYSTORE_PASSWORD
ssl.client.auth=none"
  else
    listeners="listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT"
  fi
  cat >"$PROPS" <<EOF
# Generated by scripts/kafka.sh -- edits are overwritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
$listeners
controller.listener.names=CONTROLLER
log.dirs=$DATA
num.partitions=8
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.segment.bytes=104857600
EOF
  cat >"$LOG4J" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

java_cmd() {
  # shellcheck disable=SC2086
  java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$LOG4J" -cp "$LIBS/*" "$@"
}

cmd_start() {
  local pid
  if pid="$(running_pid)" && port_open "$KAFKA_PORT"; then
    log "already running (pid $pid) on $HOST:$KAFKA_PORT"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    log "something already answers on $HOST:$KAFKA_PORT; assuming it is a Kafka broker, not starting another"
    return 0
  fi
  if pid="$(running_pid)"; then
    # Our JVM is alive but the port is not open yet (e.g. a start that is
    # still in progress from another invocation): just wait for it.
    log "broker process $pid exists but is not answering yet; waiting"
    wait_ready "$pid"
    return
  fi
  port_open "$KAFKA_CONTROLLER_PORT" &&
    die "controller port $HOST:$KAFKA_CONTROLLER_PORT is already in use (set KAFKA_CONTROLLER_PORT)"

  cmd_install
  [[ "$KAFKA_SECURE" == 1 ]] && gen_certs
  write_config

  if [[ ! -f "$DATA/meta.properties" ]]; then
    local cluster_id
    # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding. An id that starts
    # with '-' would be read as an option by the format tool (Kafka's own generator
    # avoids them too), so draw again until it does not.
    cluster_id="-"
    while [[ "$cluster_id" == -* ]]; do
      cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    log "formatting storage in $DATA (cluster id $cluster_id)"
    local scram=()
    [[ "$KAFKA_SECURE" == 1 ]] &&
      scram=(--add-scram "SCRAM-SHA-256=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]")
    java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" --ignore-formatted \
      "${scram[@]}" >"$INST/format.log" 2>&1 ||
      { cat "$INST/format.log" >&2; die "storage format failed"; }
  fi

  [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.prev"
  log "starting broker on $HOST:$KAFKA_PORT (log: $LOG)"
  local t0=$SECONDS
  # setsid: own session, so the broker outlives the calling shell and does
  # not get the caller's job-control signals. setsid may or may not fork, so
  # the pid is written by the process that then execs the JVM.
  rm -f "$PIDFILE"
  # shellcheck disable=SC2086,SC2016
  setsid bash -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1"; shift; exec "$@"' kafka-start "$PIDFILE" \
    java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$LOG4J" -cp "$LIBS/*" \
    kafka.Kafka "$PROPS" </dev/null >"$LOG" 2>&1 9>&- &
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s "$PIDFILE" ]] && break
    sleep 0.1
  done
  [[ -s "$PIDFILE" ]] || die "broker process did not start"
  pid="$(cat "$PIDFILE")"
  wait_ready "$pid"
  log "broker up (pid $pid) after $((SECONDS - t0)) s"
}

wait_ready() {
  local pid=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker process $pid exited during startup; last log lines:"
      tail -n 60 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if grep -q 'Kafka Server started' "$LOG" 2>/dev/null && port_open "$KAFKA_PORT"; then
      return 0
    fi
    sleep 0.5
  done
  log "broker did not become ready within ${KAFKA_START_TIMEOUT}s; last log lines:"
  tail -n 60 "$LOG" >&2 || true
  cmd_stop   # do not leave a half-started broker behind
  exit 1
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    if port_open "$KAFKA_PORT"; then
      log "not started by this script, but something answers on $HOST:$KAFKA_PORT; leaving it alone"
    else
      log "not running"
    fi
    return 0
  fi
  log "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 30 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$PIDFILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    if port_open "$KAFKA_PORT"; then
      echo "running: pid $pid, bootstrap $HOST:$KAFKA_PORT, data $DATA"
      return 0
    fi
    echo "starting: pid $pid, $HOST:$KAFKA_PORT not answering yet"
    return 3
  fi
  if port_open "$KAFKA_PORT"; then
    echo "running (not started by this script): $HOST:$KAFKA_PORT answers"
    return 0
  fi
  echo "stopped"
  return 3
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA" "$INST/format.log"
  log "data deleted ($DATA)"
}

cmd_tool() {
  [[ $# -ge 1 ]] || die "usage: $0 tool MAIN_CLASS [ARGS...]"
  if [[ ! -f "$LIBS/.installed-$(pom_stamp)" ]]; then
    take_lock
    cmd_install
    exec 9>&-
  fi
  # Tools log to stderr at WARN so their stdout stays clean.
  local cfg="$KAFKA_HOME_DIR/tools-log4j.properties"
  cat >"$cfg" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  exec java -Xmx512m -Dlog4j.configuration="file:$cfg" -cp "$LIBS/*" "$@"
}

case "${1:-}" in
  install) take_lock; cmd_install ;;
  start) take_lock; cmd_start ;;
  stop) take_lock; cmd_stop ;;
  restart) take_lock; cmd_stop; cmd_start ;;
  status) cmd_status ;;
  reset) take_lock; cmd_reset ;;
  logs) tail -n "${2:-100}" "$LOG" ;;
  tool) shift; cmd_tool "$@" ;;
  bootstrap) echo "$HOST:$KAFKA_PORT" ;;
  tls-dir) echo "$TLS" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
