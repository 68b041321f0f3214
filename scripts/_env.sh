# Sourced by the two README commands: make .venv with torch==2.13.0 (the development pin) and
# optimlab installed editable with its test extras. Re-installs only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.optimlab-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setting up .venv (torch==2.13.0 and optimlab[test,stacks]); log in .venv/setup.log"
  # torch is named again in the second install so that no extra can move it off the pin
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" &&
         .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,stacks]" "torch==2.13.0"; } \
       > .venv/setup.log 2>&1; then
    grep -v "^WARNING: Location" .venv/setup.log >&2
    echo "setup failed (full log: .venv/setup.log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
PY=.venv/bin/python
