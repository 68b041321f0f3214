#!/usr/bin/env bash
# The tests: set up (first run only), lint with ruff, run the pytest suite. Extra arguments go to pytest.
source "$(dirname "$0")/_env.sh"
.venv/bin/ruff check .
set +e
"$PY" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit "$rc"
