#!/usr/bin/env bash
# Set up and start the embedding console (Streamlit) on http://localhost:8501.
#   ./start.sh            the console alone (push targets come from NEO4J_* / BACKEND_URL settings)
#   ./start.sh --demo     also a local Neo4j, the demo recipes loaded into it, the Django backend on
#                         http://127.0.0.1:8000 and the demo export files in $CONSOLE_WORKDIR/uploads
# Environment: CONSOLE_PORT (8501), BACKEND_PORT (8000), CONSOLE_WORKDIR (./work), CONSOLE_PASSWORD (optional),
# NEO4J_URI/USER/PASSWORD/DATABASE (your own Neo4j or Aura instead of the local one), EMBEDDINGS_IMPORT_TOKEN.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
DEMO=0
for arg in "$@"; do
  case "$arg" in
    --demo) DEMO=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "start.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
scripts/setup.sh
PY="$ROOT/.venv/bin/python"
export CONSOLE_WORKDIR="${CONSOLE_WORKDIR:-$ROOT/work}"
mkdir -p "$CONSOLE_WORKDIR/uploads"

if [ "$DEMO" = 1 ]; then
  if [ -z "${NEO4J_URI:-}" ]; then
    scripts/neo4j.sh start
    # shellcheck disable=SC1091
    source "$ROOT/.neo4j/credentials.env"
  fi
  if [ -z "${EMBEDDINGS_IMPORT_TOKEN:-}" ]; then
    tokfile="$CONSOLE_WORKDIR/.import-token"
    [ -f "$tokfile" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$tokfile")
    EMBEDDINGS_IMPORT_TOKEN="$(cat "$tokfile")"
  fi
  export EMBEDDINGS_IMPORT_TOKEN
  export BACKEND_URL="${BACKEND_URL:-http://127.0.0.1:${BACKEND_PORT:-8000}}"
  "$PY" backend/manage.py load_demo_data
  "$PY" backend/manage.py export_data_for_embeddings --output-dir "$CONSOLE_WORKDIR/uploads"
  echo "start.sh: Django backend on $BACKEND_URL (log: $CONSOLE_WORKDIR/backend.log)" >&2
  "$PY" backend/manage.py runserver "127.0.0.1:${BACKEND_PORT:-8000}" --noreload >"$CONSOLE_WORKDIR/backend.log" 2>&1 &
  trap 'kill $! 2>/dev/null || true' EXIT
fi

echo "start.sh: the console is on http://localhost:${CONSOLE_PORT:-8501}" >&2
"$PY" -m streamlit run app.py --server.port "${CONSOLE_PORT:-8501}"
