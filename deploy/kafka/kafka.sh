#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, one combined broker+controller node) on loopback, for dev, tests,
# the demo and CI. Jars come from Maven Central through deploy/kafka/pom.xml; no Docker needed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${KAFKA_CACHE:-$REPO/.cache/kafka}"
STATE="${KAFKA_STATE:-$REPO/.run/kafka}"
HOST="${KAFKA_HOST:-127.0.0.1}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${KAFKA_HEAP:-512m}"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
LIB="$CACHE/lib"
PIDFILE="$STATE/kafka.pid"
LOG="$STATE/kafka.log"

usage() {
  cat <<USAGE
usage: deploy/kafka/kafka.sh up|down [--wipe]|status|logs|--help

  up       resolve the broker's jars with Maven (once, into $CACHE), format KRaft storage (once, in
           $STATE) and start one broker+controller on $HOST:$PORT; waits until it answers.
           Idempotent: a broker we started that is still running is left as it is.
  down     stop the broker this script started (never another one); --wipe also deletes its data
  status   say whether our broker is running
  logs     follow the broker log

environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HOST (127.0.0.1), KAFKA_HEAP (512m),
             KAFKA_CACHE, KAFKA_STATE, KAFKA_READY_TIMEOUT (90 s)
USAGE
}

say() { printf 'kafka: %s\n' "$*"; }
die() { printf 'kafka: error: %s\n' "$*" >&2; exit 1; }

our_pid() {
  # The pid in our pid file, if that process is alive and is our broker.
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q "kafka.Kafka" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

answers_as_kafka() {
  local py="$REPO/.venv/bin/python"
  [[ -x "$py" ]] || py=python3
  "$py" - "$HOST:$PORT" <<'PY' 2>/dev/null
import sys
try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    sys.exit(0)  # cannot ask in Kafka's protocol here; the open port and the log are all we have
AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=5)
PY
}

resolve_jars() {
  local stamp="$CACHE/.resolved-$(sha1sum "$HERE/pom.xml" | cut -c1-12)"
  [[ -f "$stamp" ]] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to resolve the broker's jars"
  command -v java >/dev/null || die "Java 17+ is needed to run the broker"
  say "resolving the broker's jars with Maven into $LIB (first run only)"
  rm -rf "$LIB"
  mkdir -p "$LIB"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB" \
    || die "Maven could not resolve the broker's jars"
  touch "$stamp"
}

write_config() {
  mkdir -p "$STATE/data"
  cat >"$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$STATE/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=268435456
PROPS
}

java_cmd() {
  java -Xms256m "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$HERE/log4j2.properties" -cp "$LIB/*" "$@"
}

format_storage() {
  [[ -f "$STATE/data/meta.properties" ]] && return 0
  local cluster_id
  if [[ -f "$STATE/cluster.id" ]]; then
    cluster_id="$(cat "$STATE/cluster.id")"
  else
    cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid | tail -n1)"
    echo "$cluster_id" >"$STATE/cluster.id"
  fi
  say "formatting KRaft storage in $STATE/data (cluster $cluster_id)"
  java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$STATE/server.properties" >"$STATE/format.log" 2>&1 \
    || { cat "$STATE/format.log" >&2; die "could not format KRaft storage"; }
}

wait_ready() {
  local pid="$1" waited=0
  while ((waited < READY_TIMEOUT)); do
    kill -0 "$pid" 2>/dev/null || { tail -n 40 "$LOG" >&2; rm -f "$PIDFILE"; die "the broker exited during start-up (log: $LOG)"; }
    if port_open "$PORT" && grep -q "Kafka Server started" "$LOG" && answers_as_kafka; then
      say "broker ready on $HOST:$PORT (pid $pid, log $LOG)"
      return 0
    fi
    sleep 1
    waited=$((waited + 1))
  done
  tail -n 40 "$LOG" >&2
  die "the broker did not become ready in ${READY_TIMEOUT}s (log: $LOG)"
}

cmd_up() {
  local pid
  if pid="$(our_pid)"; then
    say "already running (pid $pid) on $HOST:$PORT"
    return 0
  fi
  if port_open "$PORT"; then
    if answers_as_kafka; then
      say "a Kafka broker this script did not start already answers on $HOST:$PORT; using it as it is"
      return 0
    fi
    die "port $HOST:$PORT is taken by something that is not a Kafka broker"
  fi
  resolve_jars
  mkdir -p "$STATE"
  write_config
  format_storage
  say "starting the broker on $HOST:$PORT"
  : >"$LOG"
  # setsid: the broker outlives the shell (and the CI step) that started it, until `down`.
  setsid nohup java -Xms256m "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$HERE/log4j2.properties" -cp "$LIB/*" kafka.Kafka "$STATE/server.properties" \
    >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_ready "$(cat "$PIDFILE")"
}

cmd_down() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PIDFILE"
    say "no broker started by this script is running (nothing stopped)"
  else
    say "stopping the broker (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "still running after 30 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    say "stopped"
  fi
  if [[ "${1:-}" == "--wipe" ]]; then
    rm -rf "$STATE"
    say "wiped $STATE"
  fi
}

cmd_status() {
  local pid
  if pid="$(our_pid)"; then
    say "running (pid $pid) on $HOST:$PORT, log $LOG"
  elif port_open "$PORT"; then
    say "not started by this script, but something listens on $HOST:$PORT"
    return 1
  else
    say "not running"
    return 1
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) shift; cmd_down "${1:-}" ;;
  status) cmd_status ;;
  logs) exec tail -n 100 -F "$LOG" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
