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
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
set +e
.venv/bin/python -m pytest "$@" --junitxml=test-output/junit.xml
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "test.sh: pytest collected no tests: that is a failure" >&2; exit 1; fi
exit "$rc"
