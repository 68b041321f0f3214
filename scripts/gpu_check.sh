#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, in under 10 minutes, set up torch 2.14.1 (the local wheel store's
# CUDA build, cu130: the 2.13.0 wheel there is CPU-only) in .venv-torch2.14.1 via scripts/_env.sh, then run
#   1. the parity report's optimizers on CUDA (every catalogued config, float32, 10 lockstep steps: the
#      fused=True configs compile to Triton there, capturable ones run as on a GPU),
#   2. the CUDA tests: CUDA-graph capture/replay (tests/test_stacks_cuda_graphs.py), autocast + GradScaler and
#      SWA on CUDA (--device cuda), every test marked `cuda`, and tests/test_optim_capturable.py,
#   3. the optimizer benchmark (python -m optimlab bench --device cuda, 5 rounds, printed, RESULTS.md untouched),
#   4. the parity report's losses on CUDA (float32),
# writing every command, its exit status, time and output to one file, gpu_check.txt (GPU_CHECK_OUT=...).
# Each step has a time cap, and all of them a shared deadline (GPU_CHECK_BUDGET, default 540 s from the start,
# setup included): a step with no time left is recorded as skipped, never silently dropped.
#
# Usage: bash scripts/gpu_check.sh           the check (exit 2, with a clear message, if no CUDA device)
#        bash scripts/gpu_check.sh --cpu     the same steps on --device cpu, shrunk to a tiny subset (pytest only
#                                            collects): proves every command exists and its arguments parse
#        bash scripts/gpu_check.sh --dry-run print the CUDA commands and check, without a GPU, that each exists
#                                            and its arguments parse (optimlab's through its own argument
#                                            parser, pytest's with --collect-only)
# GPU_CHECK_PYTHON=/path/to/python uses that interpreter instead of setting up .venv-torch2.14.1.
# Exit status: 0 if every step passed, 1 if any failed, timed out or was skipped, 2 if there is no CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=cuda
case "${1:-}" in
  "") ;;
  --cpu) mode=cpu ;;
  --dry-run) mode=dry ;;
  *) echo "usage: bash scripts/gpu_check.sh [--cpu|--dry-run]" >&2; exit 2 ;;
esac
OUT=${GPU_CHECK_OUT:-gpu_check.txt}
BUDGET=${GPU_CHECK_BUDGET:-540}
start=$SECONDS

if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY=$GPU_CHECK_PYTHON
else
  TORCH_VERSION=2.14.1
  source scripts/_env.sh  # sets PY (first run: ~3 min from the local wheel store)
fi

{
  echo "optimlab GPU check ($mode) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ local changes)')"
} > "$OUT"
"$PY" - >> "$OUT" <<'EOF'
import platform, torch
gpu = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})" if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__}, python {platform.python_version()}, GPU: {gpu}")
EOF

if [ "$mode" = cuda ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  msg="No CUDA device is present (torch.cuda.is_available() is False under $PY): the GPU check needs a machine
with a CUDA GPU and driver. Nothing was run. (bash scripts/gpu_check.sh --cpu runs its steps on the CPU.)"
  echo "$msg" >&2
  echo "$msg" >> "$OUT"
  exit 2
fi

if [ "$mode" != cpu ]; then  # (--dry-run prints the CUDA commands)
  DEV=cuda
  PARITY_OPTIM=(--family optim --dtype float32 --steps 10)
  PARITY_LOSSES=(--family losses --dtype float32)
  PYTEST_ARGS=(-q -p no:cacheprovider)
  PYTEST_MARKED=(-m cuda)
  BENCH=(--rounds 5 --no-write)
else  # --cpu: the same commands on a tiny subset
  DEV=cpu
  PARITY_OPTIM=(--family optim --only SGD,LBFGS --dtype float32 --steps 2)
  PARITY_LOSSES=(--family losses --only MSELoss --dtype float32)
  PYTEST_ARGS=(-q -p no:cacheprovider --collect-only)
  PYTEST_MARKED=(-m cuda)
  BENCH=(--only SGD --rounds 1 --no-write)
fi
CUDA_FILES=(tests/test_stacks_cuda_graphs.py tests/test_stacks_amp.py tests/test_swa.py tests/test_optim_capturable.py)

failed=0
step() {  # step NAME CAP_SECONDS CMD...: run CMD under the cap (and the shared deadline), log it to $OUT
  local name=$1 cap=$2 rc=0 t0=$SECONDS left
  shift 2
  left=$((BUDGET - (SECONDS - start)))
  if [ "$cap" -gt "$left" ]; then cap=$left; fi
  echo "=== $name: $*" | tee -a "$OUT"
  if [ "$mode" = dry ]; then
    if [ "$2 $3" = "-m optimlab" ]; then  # CMD = PY -m optimlab SUBCOMMAND ARGS: parse them as the CLI does
      "$1" -c 'import sys; from optimlab.cli import parser; parser().parse_args(sys.argv[1:])' "${@:4}" \
        >> "$OUT" 2>&1 || rc=$?
    else  # CMD = PY -m pytest ARGS: collect only (the files, the options, the marker)
      "$@" --collect-only > /dev/null 2>> "$OUT" || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then echo "--- $name: does not parse (exit $rc)" | tee -a "$OUT"; failed=1
    else echo "--- $name: parses" | tee -a "$OUT"; fi
    return 0
  fi
  if [ "$cap" -lt 15 ]; then
    echo "--- $name: SKIPPED (the ${BUDGET} s budget is spent)" | tee -a "$OUT"
    failed=1
    return 0
  fi
  timeout --kill-after=10 "$cap" "$@" >> "$OUT" 2>&1 || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "--- $name: TIMED OUT after ${cap} s" | tee -a "$OUT"
    failed=1
  elif [ "$rc" -ne 0 ]; then
    echo "--- $name: FAILED (exit $rc) in $((SECONDS - t0)) s" | tee -a "$OUT"
    failed=1
  else
    echo "--- $name: passed in $((SECONDS - t0)) s" | tee -a "$OUT"
  fi
}

step "parity, optimizers" 200 "$PY" -m optimlab parity --device "$DEV" "${PARITY_OPTIM[@]}"
step "CUDA tests" 120 "$PY" -m pytest "${PYTEST_ARGS[@]}" --device "$DEV" "${CUDA_FILES[@]}"
step "tests marked cuda" 60 "$PY" -m pytest "${PYTEST_ARGS[@]}" --device "$DEV" "${PYTEST_MARKED[@]}" tests
step "bench" 150 "$PY" -m optimlab bench --device "$DEV" "${BENCH[@]}"
step "parity, losses" 90 "$PY" -m optimlab parity --device "$DEV" "${PARITY_LOSSES[@]}"

echo "total $((SECONDS - start)) s; results in $OUT" | tee -a "$OUT"
exit "$failed"
