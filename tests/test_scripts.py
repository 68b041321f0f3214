"""The README's shell commands: they parse, the test command rejects a release CI does not test, and the GPU
check (scripts/gpu_check.sh, which cannot run here) checks its CUDA commands on --dry-run and fails cleanly
where there is no CUDA device. (Its --cpu mode, the same steps really run on a tiny CPU subset, takes minutes:
run by hand, see docs/ci.md.)"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


def _bash(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_scripts_parse(script):
    assert _bash("-n", str(script)).returncode == 0


def test_ci_runs_the_readme_test_command():
    assert "bash scripts/test.sh\n" in (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in (ROOT / "README.md").read_text()


def test_test_command_rejects_an_untested_release():
    res = _bash("scripts/test.sh", "--torch", "2.12.0", "-k", "nothing")
    assert res.returncode == 2 and "CI's legs are 2.13.0, 2.14.1 or all" in res.stderr


def test_gpu_check_dry_run_checks_the_cuda_commands(tmp_path):
    """--dry-run: the five CUDA commands, each checked without a GPU: optimlab's arguments through its own
    parser (device "cuda" included), pytest's by collecting (the files exist, --device and -m cuda parse)."""
    out = tmp_path / "gpu.txt"
    res = _bash("scripts/gpu_check.sh", "--dry-run",
                env={"GPU_CHECK_OUT": str(out), "GPU_CHECK_PYTHON": sys.executable})
    text = out.read_text()
    assert res.returncode == 0, text[-3000:]
    lines = [ln for ln in text.splitlines() if ln.startswith("=== ")]
    assert len(lines) == 5 and all("--device cuda" in ln for ln in lines), lines
    assert text.count(": parses") == 5, text[-3000:]
    joined = "\n".join(lines)
    assert "-m optimlab parity --device cuda --family optim" in joined
    assert "-m optimlab bench --device cuda" in joined and "tests/test_stacks_cuda_graphs.py" in joined
    assert "-m cuda tests" in joined


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run in full")
def test_gpu_check_without_cuda_fails_cleanly(tmp_path):
    out = tmp_path / "gpu.txt"
    res = _bash("scripts/gpu_check.sh", env={"GPU_CHECK_OUT": str(out), "GPU_CHECK_PYTHON": sys.executable})
    assert res.returncode == 2
    assert "No CUDA device is present" in res.stderr and "Nothing was run" in out.read_text()
    assert "===" not in out.read_text()
