#!/usr/bin/env bash
# The whole test suite, from a fresh machine: environment, Chromium, a real Neo4j (started by the tests), pytest.
#   ./test.sh                 everything but the tests marked slow (GPU tests skip themselves without CUDA)
#   ./test.sh -m slow         the slow ones; any pytest arguments pass through
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
scripts/setup.sh --browser
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p test-output
DEFAULT=0
if [ "$#" -eq 0 ]; then set -- -m "not slow"; DEFAULT=1; fi
set +e
.venv/bin/python -m pytest "$@" --junitxml=test-output/junit.xml
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "test.sh: pytest collected no tests: that is a failure" >&2; exit 1; fi
# The whole run uses Neo4j 5.26 LTS; the tests of the Neo4j store, the graph schema, the backend's API and the
# Django app run again on the current Neo4j release (it needs Java 21 or later: without one, said and skipped).
CURRENT="${NEO4J_CURRENT_VERSION:-2026.08.1}"
if [ "$DEFAULT" = 1 ] && [ "$CURRENT" != none ]; then
  if NEO4J_VERSION="$CURRENT" scripts/neo4j.sh java >/dev/null; then
    set +e
    NEO4J_VERSION="$CURRENT" .venv/bin/python -m pytest -m "not slow" --junitxml="test-output/junit-neo4j-$CURRENT.xml" \
      tests/test_neo4j_store.py tests/test_graphschema.py tests/test_backend_api.py tests/test_django_app.py
    current_rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then rc=$current_rc; fi
  else
    echo "test.sh: the round on Neo4j $CURRENT is skipped: no Java 21 or later here (see above)" >&2
  fi
fi
exit "$rc"
