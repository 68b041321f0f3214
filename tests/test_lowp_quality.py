"""examples/lowp_quality.py (issue 27's quality runs: fp32, bf16 and int8 AdamW state, and the peers' 8-bit
AdamW, on the digits MLP and a character-level GPT) runs in its --quick mode and writes its table and plot.
Only finiteness of the losses is checked here; the numbers are in docs/lowp_quality.md."""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import pytest

pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn (in optimlab[stacks])")
pytest.importorskip("matplotlib", reason="the example plots its curves")
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load():
    spec = importlib.util.spec_from_file_location("example_lowp_quality", EXAMPLES / "lowp_quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_table_and_plot(tmp_path, capsys):
    md = tmp_path / "q.md"
    assert _load().main(["--quick", "--seeds", "0,1", "--out", str(md)]) == 0
    out = capsys.readouterr().out
    text = md.read_text()
    png = tmp_path / "img" / "q.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![loss curves](img/q.png)" in text
    main_table, spread = text.split("Run-to-run spread")
    rows = [line for line in main_table.splitlines() if line.startswith(("| digits |", "| char-GPT |"))]
    assert len(rows) == 2 * 6  # every optimizer of both tasks: a result, or skipped with its reason
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[2].startswith("skipped: "):
            assert len(cells[2]) > len("skipped: ") + 5  # a reason
            continue
        loss, ratio, heldout = float(cells[4]), float(cells[5]), float(cells[6])
        assert all(math.isfinite(v) for v in (loss, ratio, heldout))
        assert 0 < float(cells[2]) <= 8.5  # state bytes per parameter
    assert "torchao" in out  # run, or skipped with its reason
    # the fp32 references always run; torch's and optimlab's fused fp32 AdamW agree
    for task in ("digits", "char-GPT"):
        torch_row, ours_row = (next(r for r in rows if r.startswith(f"| {task} |") and label in r)
                               for label in ("torch AdamW (fp32 state)", "optimlab AdamW fused (fp32)"))
        assert abs(float(torch_row.split("|")[5]) - float(ours_row.split("|")[5])) < 1e-3
    # the spread table: every run that ran, a finite ratio for each seed
    spread_rows = [line for line in spread.splitlines() if line.startswith(("| digits |", "| char-GPT |"))]
    ran = [r for r in rows if "skipped: " not in r]
    assert len(spread_rows) == len(ran)
    for row in spread_rows:
        assert all(math.isfinite(float(c)) for c in row.strip("|").split("|")[2:])


def test_state_bytes_counts_subclass_leaves_once():
    import torch

    lq = _load()
    p = torch.nn.Parameter(torch.zeros(64, 128))
    opt = torch.optim.AdamW([p])
    p.grad = torch.ones_like(p)
    opt.step()
    total, n, low = lq.state_bytes(opt)
    assert n == p.numel() and low == 0 and total >= 8 * p.numel()
    shared = torch.zeros(256)
    opt.state[p]["exp_avg"] = torch.zeros(p.shape, dtype=torch.uint8)
    opt.state[p]["exp_avg_sq"] = torch.zeros(p.shape, dtype=torch.uint8)
    opt.state[p]["qmap1"], opt.state[p]["qmap2"] = shared, shared
    total, _, low = lq.state_bytes(opt)
    assert low == p.numel() and total <= 2 * p.numel() + 256 * 4 + 8
