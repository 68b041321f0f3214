#!/usr/bin/env bash
# The main job: set up (first run only) and print the parity report over every catalogued component.
# Extra arguments go to `python -m optimlab parity` (e.g. --family optim --device cuda --json out.json).
source "$(dirname "$0")/_env.sh"
exec "$PY" -m optimlab parity "$@"
