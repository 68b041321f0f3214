#!/usr/bin/env bash
# The tests, on both torch releases CI covers (README, "Tested torch releases"), one leg per release:
#   torch 2.13.0 (the development pin, .venv):            ruff, then the whole pytest suite;
#   torch 2.14.1 (the newest release, .venv-torch2.14.1): the parity report (python -m optimlab parity), then
#                 the tests that depend most on torch's internals and newest API: fused, compile, checkpoint,
#                 training stacks, torch 2.14's options, drop-in signatures, capturable, the CLI, low-precision state.
# Usage: bash scripts/test.sh [--torch 2.13.0|2.14.1|all] [--report|--no-report] [pytest args...]
#   --torch (or OPTIMLAB_TORCH=...) runs one leg alone (default: all, in the order above). Every other
#   argument goes to pytest in each leg that runs; a path among them replaces the 2.14.1 leg's own file list,
#   and any argument skips that leg's parity report (a narrowed run), unless --report is given.
# Each leg's venv is made on first use (scripts/_env.sh). Exit status: non-zero if any leg failed.
set -euo pipefail
cd "$(dirname "$0")/.."

legs=${OPTIMLAB_TORCH:-all}
report=auto
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) legs=${2:?--torch needs a release: 2.13.0, 2.14.1 or all}; shift 2 ;;
    --torch=*) legs=${1#--torch=}; shift ;;
    --report) report=yes; shift ;;
    --no-report) report=no; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$legs" in
  all) legs="2.13.0 2.14.1" ;;
  2.13.0|2.14.1) ;;
  *) echo "scripts/test.sh: --torch $legs: CI's legs are 2.13.0, 2.14.1 or all" >&2; exit 2 ;;
esac
if [ "$report" = auto ]; then
  if [ ${#args[@]} -eq 0 ]; then report=yes; else report=no; fi
fi
own_paths=no  # a test path among the arguments (tests/x.py, tests/x.py::test_y) replaces the leg's file list
for a in ${args[@]+"${args[@]}"}; do
  if [ -e "${a%%::*}" ]; then own_paths=yes; fi
done

# the 2.14.1 leg's files (globs: new fused/compile test files join by their names)
LEG2_FILES=(tests/test_optim_fused*.py tests/*compile*.py tests/test_optim_checkpoint.py tests/test_stacks_*.py
            tests/test_optim_torch214.py tests/test_dropin.py tests/test_optim_special.py
            tests/test_optim_capturable.py tests/test_cli.py tests/test_optim_lowp*.py)

run_pytest() {  # run_pytest PY ARGS...: pytest, where collecting nothing is a failure
  local rc=0
  "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then echo "pytest collected no tests"; rc=1; fi
  return "$rc"
}

linted=no
failed=()
summary=()
for leg in $legs; do
  start=$SECONDS
  echo "=== torch $leg: setting up ==="
  TORCH_VERSION=$leg
  source scripts/_env.sh
  if [ "$linted" = no ]; then
    "$VENV/bin/ruff" check .
    linted=yes
  fi
  rc=0
  if [ "$leg" = 2.13.0 ]; then
    echo "=== torch $leg: the test suite ==="
    run_pytest "$PY" -m pytest ${args[@]+"${args[@]}"} || rc=$?
  else
    if [ "$report" = yes ]; then
      echo "=== torch $leg: the parity report ==="
      "$PY" -m optimlab parity || rc=$?
    fi
    echo "=== torch $leg: fused, compile, checkpoint, stacks, new-API, drop-in tests ==="
    files=("${LEG2_FILES[@]}")
    if [ "$own_paths" = yes ]; then files=(); fi
    run_pytest "$PY" -m pytest ${files[@]+"${files[@]}"} ${args[@]+"${args[@]}"} || rc=$?
  fi
  summary+=("torch $leg: $([ "$rc" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s")
  if [ "$rc" -ne 0 ]; then failed+=("$leg"); fi
done
printf '%s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ]
