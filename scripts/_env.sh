# Sourced by the README commands: make the virtual environment for one torch release and install optimlab
# editable with its test extras and the training stacks. TORCH_VERSION picks the release (default 2.13.0,
# the development pin, in .venv); any other release gets its own venv, .venv-torch$TORCH_VERSION (gitignored).
# Re-installs only when pyproject.toml or the release changes. Sets VENV and PY.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
if [ "$TORCH_VERSION" = 2.13.0 ]; then VENV=.venv; else VENV=.venv-torch$TORCH_VERSION; fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp=$VENV/.optimlab-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1) torch==$TORCH_VERSION"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setting up $VENV (torch==$TORCH_VERSION and optimlab[test,stacks]); log in $VENV/setup.log"
  # torch is named again in the second install so that no extra can move it off the release; the check
  # after it makes sure of that (a stack that pulled another torch would test the wrong release)
  if ! { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" &&
         "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test,stacks]" \
           "torch==$TORCH_VERSION" &&
         "$VENV/bin/python" -c "import sys, torch; v = torch.__version__.split('+')[0]; \
sys.exit(0 if v == '$TORCH_VERSION' else f'torch {v} installed where {\"$TORCH_VERSION\"} was asked for')"; } \
       > "$VENV/setup.log" 2>&1; then
    grep -v "^WARNING: Location" "$VENV/setup.log" >&2
    echo "setup failed (full log: $VENV/setup.log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
# OPTIMLAB_PEERS=1: also the `peers` extra of pyproject.toml (what `python -m optimlab bench --state` compares
# with: bitsandbytes, torchao), each with --no-deps so that neither can move torch; one that fails to install is
# reported and left out (the bench prints why it skips it). Never needed by the tests.
if [ "${OPTIMLAB_PEERS:-0}" = 1 ] && [ "$(cat "$VENV/.optimlab-peers" 2>/dev/null || true)" != "$want" ]; then
  for req in $("$VENV/bin/python" -c "import re; t = open('pyproject.toml').read(); \
print(' '.join(re.findall(r'\"([^\"]+)\"', re.search(r'^peers = \[(.*?)\]', t, re.M | re.S).group(1))))"); do
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$req" >> "$VENV/setup.log" 2>&1 ||
      echo "could not install $req (bench --state will skip it; log: $VENV/setup.log)" >&2
  done
  echo "$want" > "$VENV/.optimlab-peers"
fi
PY=$VENV/bin/python
