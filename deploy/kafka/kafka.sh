#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, one combined broker+controller node) on loopback, for dev, tests,
# the demo and CI. Jars come from Maven Central through deploy/kafka/pom.xml (the version is pinned
# there); no Docker and no Kafka distribution tarball needed: Java 17+ and Maven only.
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
LOG4J="${KAFKA_LOG4J:-$HERE/log4j2.properties}"
# Optional SASL_SSL listener (none unless KAFKA_SASL_SSL_PORT is set): the PLAINTEXT listener stays for
# inter-broker and admin use. KAFKA_SSL_KEYSTORE is the broker's key and certificate (PKCS12);
# KAFKA_SASL_USERS is "user:password,..." for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (SCRAM users are
# written when the storage is formatted, so only on the first start of a state dir).
SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
SSL_KEYSTORE="${KAFKA_SSL_KEYSTORE:-}"
SSL_KEYSTORE_PASSWORD="${KAFKA_SSL_KEYSTORE_PASSWORD:-}"
SSL_TRUSTSTORE="${KAFKA_SSL_TRUSTSTORE:-}"
SSL_TRUSTSTORE_PASSWORD="${KAFKA_SSL_TRUSTSTORE_PASSWORD:-}"
SASL_USERS="${KAFKA_SASL_USERS:-}"
LIB="$CACHE/lib"
DATA="$STATE/data"
CONFIG="$STATE/server.properties"
PIDFILE="$STATE/kafka.pid"
LOG="$STATE/kafka.log"
# Kafka >= 4.0 has kafka.tools.StorageTool in kafka_2.13 (Scala), the broker main class kafka.Kafka.
STORAGE_TOOL=kafka.tools.StorageTool
MAIN_CLASS=kafka.Kafka

usage() {
  cat <<USAGE
usage: deploy/kafka/kafka.sh up | down [--wipe] | status | logs | --help

  up       resolve Apache Kafka $(pinned_version)'s jars with Maven (first run only, into $LIB),
           format KRaft storage (first run only, in $DATA) and start one combined broker+controller
           on $HOST:$PORT (controller $HOST:$CONTROLLER_PORT) in the background; waits until it answers.
           Idempotent: our broker already running is left as it is; a Kafka broker this script did not
           start that answers on the port is reused as it is (exit 0); anything else there is an error.
  down     stop the broker this script started (pid file; SIGTERM, SIGKILL after 30 s), never another one.
           --wipe also deletes its state (data, cluster id, log) in $STATE
  status   say whether our broker runs (exit 0) or not (exit 1)
  logs     follow the broker log (prints its tail when stdout is not a terminal)

environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HOST (127.0.0.1), KAFKA_HEAP (512m),
             KAFKA_CACHE (jars), KAFKA_STATE (data, log, pid), KAFKA_READY_TIMEOUT (90 s),
             KAFKA_LOG4J (log4j2 config file)
             optional SASL_SSL listener: KAFKA_SASL_SSL_PORT (none by default), KAFKA_SSL_KEYSTORE (PKCS12,
             the broker's key and certificate) and KAFKA_SSL_KEYSTORE_PASSWORD, KAFKA_SSL_TRUSTSTORE and
             KAFKA_SSL_TRUSTSTORE_PASSWORD (PKCS12, optional), KAFKA_SASL_USERS (user:password,... for PLAIN,
             SCRAM-SHA-256 and SCRAM-SHA-512; SCRAM users are stored when the storage is first formatted)
USAGE
}

say() { printf 'kafka: %s\n' "$*"; }
die() {
  printf 'kafka: error: %s\n' "$*" >&2
  exit 1
}

pinned_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml" | head -n1; }

# The command line of a process, NULs as spaces; empty if it does not exist.
cmdline_of() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

# Is this pid a broker running on our state's config?
is_our_broker() {
  local cmd
  cmd="$(cmdline_of "$1")"
  [[ "$cmd" == *" $MAIN_CLASS $CONFIG"* ]]
}

# The pid in our pid file, if that process is alive and is our broker.
our_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(<"$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  is_our_broker "$pid" || return 1
  echo "$pid"
}

# Any process running a broker on our state dir (pid file or not): used to refuse a wipe under it.
brokers_on_our_state() {
  local d pid
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    if is_our_broker "$pid"; then echo "$pid"; fi
  done
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

python_bin() {
  if [[ -x "$REPO/.venv/bin/python" ]]; then
    echo "$REPO/.venv/bin/python"
  elif command -v python3 >/dev/null; then
    command -v python3
  else
    return 1
  fi
}

# Does HOST:PORT speak Kafka? An ApiVersions request (standard library only), then, where
# confluent-kafka is importable, a metadata request (the broker is serving, not just listening).
# Exit 0: yes; 1: no; 2: cannot tell (no Python).
answers_as_kafka() {
  local py
  py="$(python_bin)" || return 2
  "$py" - "$HOST" "$1" <<'PY' 2>/dev/null
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
client = b"kafka.sh"
body = struct.pack(">hhih", 18, 0, 4242, len(client)) + client  # ApiVersions v0, correlation id 4242
try:
    with socket.create_connection((host, port), timeout=3) as s:
        s.settimeout(3)
        s.sendall(struct.pack(">i", len(body)) + body)
        head = b""
        while len(head) < 10:
            chunk = s.recv(10 - len(head))
            if not chunk:
                sys.exit(1)
            head += chunk
except OSError:
    sys.exit(1)
size, corr, err = struct.unpack(">iih", head)
if corr != 4242 or err not in (0, 35) or not 0 < size < 1 << 20:  # 35: UNSUPPORTED_VERSION, still Kafka
    sys.exit(1)
try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    sys.exit(0)
md = AdminClient({"bootstrap.servers": f"{host}:{port}", "log_level": 0}).list_topics(timeout=5)
sys.exit(0 if md.brokers else 1)
PY
}

check_tools() {
  command -v java >/dev/null || die "Java 17+ is needed to run the broker (apt-get install openjdk-17-jre-headless)"
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  major="${major%%.*}"
  if ! [[ "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "Kafka $(pinned_version) needs Java 17 or newer; 'java' is ${major:-unknown}"
  fi
}

resolve_jars() {
  local key stamp tmp
  key="$(sha1sum "$HERE/pom.xml" | cut -c1-12)"
  stamp="$LIB/.resolved-$key"
  [[ -f "$stamp" ]] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to resolve the broker's jars (apt-get install maven)"
  say "resolving Apache Kafka $(pinned_version) and its runtime dependencies with Maven into $LIB (first run only)"
  mkdir -p "$CACHE"
  tmp="$(mktemp -d "$CACHE/.lib.XXXXXX")"
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE/mvn.log" 2>&1; then
    cat "$CACHE/mvn.log" >&2
    rm -rf "$tmp"
    die "Maven could not resolve the broker's jars (log above, also in $CACHE/mvn.log)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "Maven resolved no kafka_2.13 jar into $tmp"
  touch "$tmp/.resolved-$key"
  # Swap in whole: an interrupted run never leaves a half-filled lib that looks resolved.
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  rm -f "$CACHE"/.resolved-* # stamps of earlier versions of this script
}

# The SASL users as "name password" lines.
sasl_users() {
  local pair
  local -a pairs
  IFS=, read -r -a pairs <<<"$SASL_USERS"
  for pair in "${pairs[@]}"; do
    [[ "$pair" == *:* && -n "${pair%%:*}" && -n "${pair#*:}" ]] || die "KAFKA_SASL_USERS: expected user:password,..., got an entry without a colon"
    [[ "$pair" != *[\"\\\ =]* ]] || die "KAFKA_SASL_USERS: names and passwords may not hold quotes, backslashes, spaces or '='"
    printf '%s %s\n' "${pair%%:*}" "${pair#*:}"
  done
}

check_sasl_ssl() {
  [[ -n "$SASL_SSL_PORT" ]] || return 0
  [[ -n "$SSL_KEYSTORE" && -r "$SSL_KEYSTORE" ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE, a readable PKCS12 file"
  [[ -n "$SASL_USERS" ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_SASL_USERS (user:password,...)"
  sasl_users >/dev/null
}

write_config() {
  local listeners="PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT"
  local advertised="PLAINTEXT://$HOST:$PORT"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n "$SASL_SSL_PORT" ]]; then
    listeners+=",SASL_SSL://$HOST:$SASL_SSL_PORT"
    advertised+=",SASL_SSL://$HOST:$SASL_SSL_PORT"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  mkdir -p "$DATA"
  cat >"$CONFIG" <<PROPS
# Written by deploy/kafka/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=268435456
PROPS
  if [[ -n "$SASL_SSL_PORT" ]]; then
    local name password plain="org.apache.kafka.common.security.plain.PlainLoginModule required"
    while read -r name password; do plain+=" user_$name=\"$password\""; done < <(sasl_users)
    cat >>"$CONFIG" <<PROPS
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$SSL_KEYSTORE
listener.name.sasl_ssl.ssl.keystore.password=$SSL_KEYSTORE_PASSWORD
listener.name.sasl_ssl.ssl.key.password=$SSL_KEYSTORE_PASSWORD
PROPS
    if [[ -n "$SSL_TRUSTSTORE" ]]; then
      cat >>"$CONFIG" <<PROPS
listener.name.sasl_ssl.ssl.truststore.type=PKCS12
listener.name.sasl_ssl.ssl.truststore.location=$SSL_TRUSTSTORE
listener.name.sasl_ssl.ssl.truststore.password=$SSL_TRUSTSTORE_PASSWORD
PROPS
    fi
    chmod 600 "$CONFIG" # it holds the users' and the keystore's passwords
  fi
}

java_cmd() {
  java -Xms256m "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$LOG4J" -cp "$LIB/*" "$@"
}

format_storage() {
  local version formatted
  version="$(pinned_version)"
  if [[ -f "$DATA/meta.properties" ]]; then
    formatted="$(cat "$STATE/format.version" 2>/dev/null || echo unknown)"
    if [[ "$formatted" != "$version" && "$formatted" != unknown ]]; then
      # A newer broker runs on older metadata (it keeps the old metadata.version); an older one does not.
      if [[ "$(printf '%s\n%s\n' "$formatted" "$version" | sort -V | head -n1)" != "$formatted" ]]; then
        die "the data in $DATA was written by Kafka $formatted, newer than the pinned $version; run '$0 down --wipe' first"
      fi
      say "note: the data in $DATA was formatted by Kafka $formatted; running $version on it"
    fi
    return 0
  fi
  local cluster_id
  if [[ -s "$STATE/cluster.id" ]]; then
    cluster_id="$(<"$STATE/cluster.id")"
  else
    cluster_id="$(java_cmd "$STORAGE_TOOL" random-uuid 2>>"$STATE/format.log" | tail -n1)"
    [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id (see $STATE/format.log)"
    echo "$cluster_id" >"$STATE/cluster.id"
  fi
  local -a scram=()
  if [[ -n "$SASL_SSL_PORT" ]]; then
    local name password
    while read -r name password; do
      scram+=(--add-scram "SCRAM-SHA-256=[name=$name,password=$password]")
      scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$password]")
    done < <(sasl_users)
  fi
  say "formatting KRaft storage in $DATA (cluster $cluster_id)"
  java_cmd "$STORAGE_TOOL" format -t "$cluster_id" -c "$CONFIG" "${scram[@]}" >"$STATE/format.log" 2>&1 \
    || {
      cat "$STATE/format.log" >&2
      die "could not format KRaft storage"
    }
  echo "$version" >"$STATE/format.version"
}

wait_ready() {
  local pid="$1" start=$SECONDS
  while ((SECONDS - start < READY_TIMEOUT)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG" >&2
      rm -f "$PIDFILE"
      die "the broker exited during start-up (log tail above; full log: $LOG)"
    fi
    if port_open "$PORT" && grep -q "Kafka Server started" "$LOG"; then
      local rc=0
      answers_as_kafka "$PORT" || rc=$?
      if ((rc != 1)); then
        say "broker ready on $HOST:$PORT after $((SECONDS - start)) s (pid $pid, log $LOG)"
        return 0
      fi
    fi
    sleep 0.5
  done
  tail -n 40 "$LOG" >&2
  die "the broker did not become ready in ${READY_TIMEOUT} s (log tail above; pid $pid still runs; full log: $LOG; stop it with '$0 down')"
}

cmd_up() {
  local pid rc=0
  if pid="$(our_pid)"; then
    say "already running (pid $pid) on $HOST:$PORT; nothing to do"
    return 0
  fi
  if port_open "$PORT"; then
    answers_as_kafka "$PORT" || rc=$?
    case $rc in
      0)
        say "a Kafka broker this script did not start already answers on $HOST:$PORT: using it as it is (not managed here: 'down' will not stop it)"
        return 0
        ;;
      2) die "$HOST:$PORT is taken by a process this script did not start, and without Python it cannot tell whether it is Kafka" ;;
      *) die "$HOST:$PORT is taken by a process this script did not start that does not answer as a Kafka broker; free the port or set KAFKA_PORT" ;;
    esac
  fi
  if port_open "$CONTROLLER_PORT"; then
    die "the controller port $HOST:$CONTROLLER_PORT is taken by a process this script did not start; free it or set KAFKA_CONTROLLER_PORT"
  fi
  if [[ -n "$(brokers_on_our_state)" ]]; then
    die "a broker on $CONFIG runs without our pid file (pids: $(brokers_on_our_state | tr '\n' ' ')); not starting a second one"
  fi
  if [[ -n "$SASL_SSL_PORT" ]] && port_open "$SASL_SSL_PORT"; then
    die "the SASL_SSL port $HOST:$SASL_SSL_PORT is taken by a process this script did not start; free it or set KAFKA_SASL_SSL_PORT"
  fi
  check_sasl_ssl
  check_tools
  resolve_jars
  mkdir -p "$STATE"
  write_config
  format_storage
  say "starting Apache Kafka $(pinned_version) (KRaft broker+controller) on $HOST:$PORT"
  : >"$LOG"
  # setsid: the broker outlives the shell (and the CI step) that started it, until `down`.
  # (In a non-interactive script the background child is no process-group leader, so setsid and nohup
  # exec in place and $! is the JVM's pid.)
  setsid nohup java -Xms256m "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$LOG4J" -cp "$LIB/*" "$MAIN_CLASS" "$CONFIG" \
    >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_ready "$!"
}

cmd_down() {
  local pid wipe=0
  case "${1:-}" in
    "") ;;
    --wipe) wipe=1 ;;
    *) die "unknown option to down: $1 (only --wipe)" ;;
  esac
  if ! pid="$(our_pid)"; then
    rm -f "$PIDFILE"
    say "no broker started by this script is running (nothing stopped)"
  else
    say "stopping the broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 60; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "still running after 30 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    rm -f "$PIDFILE"
    say "stopped"
  fi
  if ((wipe)); then
    if [[ -n "$(brokers_on_our_state)" ]]; then
      die "not wiping $STATE: a broker still runs on it (pids: $(brokers_on_our_state | tr '\n' ' '))"
    fi
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

cmd_logs() {
  [[ -f "$LOG" ]] || die "no log yet at $LOG"
  if [[ -t 1 ]]; then
    exec tail -n 100 -F "$LOG"
  fi
  tail -n 200 "$LOG"
}

case "${1:-}" in
  up) cmd_up ;;
  down)
    shift
    cmd_down "$@"
    ;;
  status) cmd_status ;;
  logs) cmd_logs ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
