"""The command line: list, parity (table, exit codes, JSON), the CUDA check, fuzz."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from optimlab import catalog
from optimlab.cli import main


def test_list_shows_every_component_and_its_torch_twin(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for comp in catalog.components():
        assert comp.torch_path in out
        assert comp.ours_path in out


def test_parity_prints_table_and_passes(capsys, tmp_path):
    path = tmp_path / "report.json"
    assert main(["parity", "--family", "sched", "--only", "StepLR", "--steps", "50", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "StepLR" in out and "PASS" in out and "0 failed" in out
    data = json.loads(path.read_text())
    assert data["results"] and all(r["passed"] for r in data["results"])


def test_parity_exits_nonzero_on_failure(monkeypatch, capsys):
    from optimlab import parity
    from optimlab.parity.results import CaseResult

    def broken(comp, case, dtype, device="cpu", steps=None, **kw):
        return CaseResult(comp.family, comp.name, case.name, "float64", device, False, message="planted")

    monkeypatch.setattr(parity, "run_case", broken)
    assert main(["parity", "--family", "sched", "--only", "StepLR"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "planted" in out


def test_parity_cuda_says_when_no_gpu(capsys):
    if torch.cuda.is_available():
        assert main(["parity", "--device", "cuda", "--family", "sched", "--only", "StepLR", "--steps", "20"]) == 0
        return
    assert main(["parity", "--device", "cuda"]) == 2
    assert "No CUDA device is present" in capsys.readouterr().err


def test_fuzz_command(capsys):
    assert main(["fuzz", "--only", "StepLR", "--examples", "5", "--steps", "20"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "optimlab", "list", "--family", "optim"], capture_output=True,
                         text=True, check=True).stdout
    assert "torch.optim.SGD" in out
