#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv, or $VENV) from requirements.txt.
#   scripts/setup.sh              Python packages (skipped when requirements.txt has not changed)
#   scripts/setup.sh --browser    also Debian's chromium for the browser tests (root: apt-get)
# Java 17 and the Neo4j jars are installed by scripts/neo4j.sh on first start.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
log() { echo "setup.sh: $*" >&2; }

"$PYTHON" - <<'PY' || { log "Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))"; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python packages (first time: ~2 min, torch is large)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt"
  if [ -f "$ROOT/pyproject.toml" ]; then "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT"; fi
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)"; exit 1
  fi
fi
