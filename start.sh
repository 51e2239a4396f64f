#!/usr/bin/env bash
# Set up and start the embedding console (Streamlit) on http://127.0.0.1:8501 (this machine only).
#   ./start.sh            the console alone (push targets come from NEO4J_* / BACKEND_URL settings)
#   ./start.sh --demo     also a local Neo4j, the demo recipes (data/indonesian-recipes) loaded into it, the Django
#                         backend under gunicorn on http://127.0.0.1:8000 and the demo export files in
#                         $CONSOLE_WORKDIR/uploads
# Environment: CONSOLE_ADDRESS (127.0.0.1; another address needs CONSOLE_PASSWORD or CONSOLE_PASSWORD_FILE),
# CONSOLE_PORT (8501), BACKEND_PORT (8000), BACKEND_WORKERS/BACKEND_THREADS (backend/gunicorn.conf.py),
# CONSOLE_WORKDIR (./work), DEMO_VECTORS (1: embed and import the demo with the shipped small model; 0: skip),
# CONSOLE_PASSWORD, NEO4J_URI/USER/PASSWORD/DATABASE (your own Neo4j or Aura instead of
# the local one), EMBEDDINGS_IMPORT_TOKEN, DJANGO_SECRET_KEY (generated once into the work folder when unset).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
DEMO=0
for arg in "$@"; do
  case "$arg" in
    --demo) DEMO=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "start.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
# Refuse to open the console to the network without a password (before any setup work).
CONSOLE_ADDRESS="${CONSOLE_ADDRESS:-127.0.0.1}"
case "$CONSOLE_ADDRESS" in
  127.*|localhost|::1) ;;
  *) if [ -z "${CONSOLE_PASSWORD:-}${CONSOLE_PASSWORD_FILE:-}" ]; then
       echo "start.sh: CONSOLE_ADDRESS=$CONSOLE_ADDRESS opens the console to the network: set CONSOLE_PASSWORD" \
         "(or CONSOLE_PASSWORD_FILE, a file readable only by you) too, or leave CONSOLE_ADDRESS unset for 127.0.0.1" >&2
       exit 2
     fi ;;
esac
scripts/setup.sh
if [ "$(id -u)" = 0 ]; then
  echo "start.sh: running as root; once Java and Chromium are installed, prefer a normal user (README: Security)" >&2
fi
PY="$ROOT/.venv/bin/python"
export CONSOLE_WORKDIR="${CONSOLE_WORKDIR:-$ROOT/work}"
mkdir -p "$CONSOLE_WORKDIR/uploads"

STARTED_NEO4J=0
BACKEND_PID=""
on_exit() {
  local rc=$?
  [ -n "$BACKEND_PID" ] && kill "$BACKEND_PID" 2>/dev/null || true
  if [ "$STARTED_NEO4J" = 1 ]; then
    if [ "$rc" != 0 ] && [ "$rc" != 130 ]; then
      echo "start.sh: failed (exit $rc); stopping the Neo4j this run started" >&2
      scripts/neo4j.sh stop || echo "start.sh: stop it yourself with: scripts/neo4j.sh stop" >&2
    else
      echo "start.sh: Neo4j keeps running with its data (bolt://127.0.0.1:${NEO4J_BOLT_PORT:-7687}); stop it with: scripts/neo4j.sh stop" >&2
    fi
  fi
}
trap on_exit EXIT

# A secret generated once into the work folder (mode 600) unless the variable is already set.
secret_file() {
  [ -f "$1" ] || (umask 077; head -c 36 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$1")
  cat "$1"
}

# The demo's vectors, so that every search mode answers: the shipped small model (minilm) embeds the exported files
# once (progress shown; minutes on a 2-core CPU) into $CONSOLE_WORKDIR/demo-vectors, and a later start whose
# export is the same reuses them (the generator's checkpoints embed only what changed otherwise); then they are
# imported (idempotent: unchanged vectors are counted, not rewritten). DEMO_VECTORS=0 skips the step.
demo_vectors() {
  [ "${DEMO_VECTORS:-1}" = 0 ] && { echo "start.sh: DEMO_VECTORS=0: no demo vectors (hybrid search answers with keyword results)" >&2; return; }
  local out="$CONSOLE_WORKDIR/demo-vectors" paths=() inputs=() files=() stamp f
  while IFS= read -r f; do paths+=("$f"); inputs+=(--input "$f"); done \
    < <(sed -n 's/^Wrote [0-9]* [^ ]* records to //p' "$CONSOLE_WORKDIR/.demo-export.log")
  stamp="minilm $(cat "${paths[@]}" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$out/.made-from" 2>/dev/null)" = "$stamp" ] && ls "$out"/embeddings_*.meta.json >/dev/null 2>&1; then
    echo "start.sh: reusing the demo vectors in $out (the shipped small model's, made from this same export)" >&2
  else
    echo "start.sh: embedding the demo export with the shipped small model (minilm, on the CPU; once, several" \
      "minutes on 2 cores) into $out" >&2
    rm -f "$out/.made-from"
    "$PY" external_embedding_generator.py "${inputs[@]}" --output-dir "$out" --model minilm --device cpu
    echo "$stamp" > "$out/.made-from"
  fi
  for f in "$out"/embeddings_*.json; do
    case "$f" in *.meta.json) ;; *) files+=(--embedding-file "$f") ;; esac
  done
  echo "start.sh: importing the demo vectors into Neo4j" >&2
  "$PY" backend/manage.py import_embeddings "${files[@]}"
}

start_backend() {
  export EMBEDDINGS_IMPORT_TOKEN="${EMBEDDINGS_IMPORT_TOKEN:-$(secret_file "$CONSOLE_WORKDIR/.import-token")}"
  export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-$(secret_file "$CONSOLE_WORKDIR/.django-secret-key")}"
  export DJANGO_DEBUG="${DJANGO_DEBUG:-0}" BACKEND_PORT="${BACKEND_PORT:-8000}"
  export DJANGO_STATIC_ROOT="${DJANGO_STATIC_ROOT:-$CONSOLE_WORKDIR/static}"
  export BACKEND_URL="${BACKEND_URL:-http://127.0.0.1:$BACKEND_PORT}"
  "$PY" backend/manage.py load_demo_data
  "$PY" backend/manage.py export_data_for_embeddings --output-dir "$CONSOLE_WORKDIR/uploads" \
    | tee "$CONSOLE_WORKDIR/.demo-export.log"
  demo_vectors
  "$PY" backend/manage.py collectstatic --noinput -v 0
  echo "start.sh: Django backend (gunicorn) on $BACKEND_URL (log: $CONSOLE_WORKDIR/backend.log)" >&2
  "$ROOT/.venv/bin/gunicorn" -c backend/gunicorn.conf.py >"$CONSOLE_WORKDIR/backend.log" 2>&1 &
  BACKEND_PID=$!
}

if [ "$DEMO" = 1 ]; then
  if [ -z "${NEO4J_URI:-}" ]; then
    scripts/neo4j.sh status >/dev/null 2>&1 || STARTED_NEO4J=1
    scripts/neo4j.sh start
    # shellcheck disable=SC1091
    source "${NEO4J_HOME:-$ROOT/.neo4j}/credentials.env"
  fi
  start_backend
  export CONSOLE_DATA_ROOTS="${CONSOLE_DATA_ROOTS:-$CONSOLE_WORKDIR/uploads}"
fi

echo "start.sh: the console is on http://$CONSOLE_ADDRESS:${CONSOLE_PORT:-8501}" >&2
# The console pushes with NEO4J_PASSWORD / EMBEDDINGS_IMPORT_TOKEN; the backend's own secret stays out of it.
env -u DJANGO_SECRET_KEY "$PY" -m streamlit run app.py --server.address "$CONSOLE_ADDRESS" \
  --server.port "${CONSOLE_PORT:-8501}"
