#!/usr/bin/env bash
# Provision, start, stop and inspect a local Neo4j Community server for the project: 5.26 (LTS) by default, or a
# calendar release (NEO4J_VERSION=2026.08.1; needs Java 21 or later, found by need_java).
#
#   scripts/neo4j.sh start     fetch jars (cached), set the password, start, wait for Bolt
#   scripts/neo4j.sh stop      SIGTERM and wait
#   scripts/neo4j.sh status    exit 0 when Bolt answers
#   scripts/neo4j.sh env       print the export lines for NEO4J_URI/USER/PASSWORD/DATABASE
#   scripts/neo4j.sh reset     stop and delete the data folder (the jar cache stays)
#   scripts/neo4j.sh java      print the java that NEO4J_VERSION would run on (exit 1 when there is none)
#
# Nothing of Neo4j is committed: the jars come from Maven Central into $NEO4J_CACHE
# (default ~/.cache/embedding-console/neo4j-<version>); data, logs and the generated password
# live in $NEO4J_HOME (default <project>/.neo4j, ignored by git).
# Settings: NEO4J_VERSION, NEO4J_BOLT_PORT (7687, or the port in $NEO4J_HOME/credentials.env when that exists, so
# that status, stop and env find a server started on a custom port), NEO4J_HEAP (512m), NEO4J_PAGECACHE (512m), NEO4J_START_TIMEOUT
# (180 s), NEO4J_JVM_OPTS (more JVM options, e.g. "--add-modules jdk.incubator.vector"), NEO4J_PASSWORD
# (if unset, a random one is generated once and kept in $NEO4J_HOME/credentials.env, mode 600).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${NEO4J_VERSION:-5.26.30}"
CACHE="${NEO4J_CACHE:-$HOME/.cache/embedding-console/neo4j-$VERSION}"
HOME_DIR="${NEO4J_HOME:-$ROOT/.neo4j}"
CREDS="$HOME_DIR/credentials.env"
# The port: NEO4J_BOLT_PORT, else the one this home's server was started on (its credentials file), else 7687.
creds_port() { [ -f "$CREDS" ] && sed -n "s/^export NEO4J_URI='bolt:\/\/127.0.0.1:\([0-9]*\)'$/\1/p" "$CREDS"; }
PORT="${NEO4J_BOLT_PORT:-$(creds_port || true)}"
[ -n "$PORT" ] || PORT=7687
HEAP="${NEO4J_HEAP:-512m}"
PAGECACHE="${NEO4J_PAGECACHE:-512m}"
START_TIMEOUT="${NEO4J_START_TIMEOUT:-180}"  # seconds; ~5 s on an idle machine, much more on a loaded one
PIDFILE="$HOME_DIR/run/neo4j.pid"

log() { echo "neo4j.sh: $*" >&2; }

# The Java a release needs: 17 for 5.x, 21 or later for the calendar releases (2025.01 on). JAVA is the java to run:
# $JAVA_HOME's when it is new enough, else the first JDK under /usr/lib/jvm that is, else the one on PATH.
java_major() { "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }

need_java() {
  local want=17 candidate
  case "$VERSION" in 5.*|4.*) want=17 ;; *) want=21 ;; esac
  JAVA=""
  for candidate in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} $(command -v java 2>/dev/null) /usr/lib/jvm/*/bin/java; do
    [ -x "$candidate" ] || continue
    if [ "$(java_major "$candidate")" -ge "$want" ] 2>/dev/null; then JAVA="$candidate"; break; fi
  done
  if [ -n "$JAVA" ]; then return; fi
  if [ "$want" = 17 ] && [ "$(id -u)" = 0 ]; then
    log "Java not found; installing Debian's openjdk-17-jre-headless"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    JAVA="$(command -v java)"; return
  fi
  log "Neo4j $VERSION needs Java $want or later, and none was found (JAVA_HOME, PATH, /usr/lib/jvm): install one"
  log "(e.g. Temurin 21 or 25 from adoptium.net) and set JAVA_HOME to it"
  exit 1
}

# The server's entry point: CommunityEntryPoint up to 5.x; Neo4jCommunity in the calendar releases (2025.01 on).
main_class() {
  case "$VERSION" in
    5.*|4.*) echo org.neo4j.server.CommunityEntryPoint ;;
    *) echo org.neo4j.server.Neo4jCommunity ;;
  esac
}

fetch_jars() {
  if [ -f "$CACHE/.complete" ]; then return; fi
  command -v mvn >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && apt-get install -y -qq maven >/dev/null; }
  log "fetching Neo4j $VERSION jars from Maven Central into $CACHE (once, ~1 min)"
  mkdir -p "$CACHE"
  cat > "$CACHE/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.embedding-console</groupId><artifactId>neo4j-runtime</artifactId><version>1</version>
  <dependencies><dependency><groupId>org.neo4j</groupId><artifactId>neo4j</artifactId><version>$VERSION</version></dependency></dependencies>
</project>
POM
  (cd "$CACHE" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$CACHE/lib")
  touch "$CACHE/.complete"
}

write_conf() {
  mkdir -p "$HOME_DIR/conf" "$HOME_DIR/run" "$HOME_DIR/logs"
  chmod 700 "$HOME_DIR"  # data, auth.ini (password hashes) and credentials.env: this user's only
  cat > "$HOME_DIR/conf/neo4j.conf" <<CONF
server.default_listen_address=127.0.0.1
server.bolt.listen_address=127.0.0.1:$PORT
server.bolt.advertised_address=127.0.0.1:$PORT
server.http.enabled=false
server.https.enabled=false
server.memory.heap.initial_size=$HEAP
server.memory.heap.max_size=$HEAP
server.memory.pagecache.size=$PAGECACHE
dbms.usage_report.enabled=false
server.directories.logs=$HOME_DIR/logs
server.directories.run=$HOME_DIR/run
server.directories.data=$HOME_DIR/data
CONF
}

bolt_up() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

ensure_password() {
  if [ -n "${NEO4J_PASSWORD:-}" ]; then PASSWORD="$NEO4J_PASSWORD"
  elif [ -f "$CREDS" ]; then PASSWORD="$(sed -n 's/^export NEO4J_PASSWORD=//p' "$CREDS" | tr -d "'")"
  else PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)"; fi
  if [ ! -d "$HOME_DIR/data/dbms" ]; then
    NEO4J_HOME="$HOME_DIR" NEO4J_CONF="$HOME_DIR/conf" "$JAVA" -cp "$CACHE/lib/*" org.neo4j.cli.AdminTool \
      dbms set-initial-password "$PASSWORD" >/dev/null
  fi
  umask 077
  cat > "$CREDS" <<ENV
export NEO4J_URI='bolt://127.0.0.1:$PORT'
export NEO4J_USER='neo4j'
export NEO4J_PASSWORD='$PASSWORD'
export NEO4J_DATABASE='neo4j'
ENV
}

start() {
  if pid="$(running_pid)" && bolt_up; then log "already running (pid $pid, bolt://127.0.0.1:$PORT)"; return; fi
  if bolt_up; then
    log "port $PORT is taken by a process that is not this server (home $HOME_DIR); stop it or set NEO4J_BOLT_PORT"
    exit 1
  fi
  need_java; fetch_jars; write_conf; ensure_password
  log "starting Neo4j $VERSION on bolt://127.0.0.1:$PORT (home $HOME_DIR)"
  NEO4J_HOME="$HOME_DIR" NEO4J_CONF="$HOME_DIR/conf" nohup "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC ${NEO4J_JVM_OPTS:-} \
    -cp "$CACHE/lib/*" "$(main_class)" \
    --home-dir="$HOME_DIR" --config-dir="$HOME_DIR/conf" >"$HOME_DIR/logs/console.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 $((START_TIMEOUT * 2))); do
    if bolt_up; then log "up (pid $(cat "$PIDFILE")); credentials in $CREDS"; return; fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { log "Neo4j exited; last log lines:"; tail -20 "$HOME_DIR/logs/console.log" >&2; exit 1; }
    sleep 0.5
  done
  log "Neo4j did not answer on port $PORT within $START_TIMEOUT s (NEO4J_START_TIMEOUT); see $HOME_DIR/logs/console.log"; exit 1
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then log "not running"; return; fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { log "stopped"; rm -f "$PIDFILE"; return; }; sleep 0.5; done
  log "still running after 30 s; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running_pid >/dev/null && bolt_up; then echo "running on bolt://127.0.0.1:$PORT"
          else echo "not running (bolt://127.0.0.1:$PORT, home $HOME_DIR)"; exit 1; fi ;;
  env) [ -f "$CREDS" ] && cat "$CREDS" || { log "no credentials yet: run '$0 start'"; exit 1; } ;;
  reset) stop; rm -rf "$HOME_DIR" ;;
  java) need_java; echo "$JAVA" ;;
  *) echo "usage: $0 start|stop|status|env|reset|java" >&2; exit 2 ;;
esac
