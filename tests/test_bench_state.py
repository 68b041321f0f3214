"""``python -m optimlab bench --state`` (benchmarks/bench_state.py, issue 27) runs and writes its table: tiny
shapes, one round, optimlab's fp32 (and its low-precision states where this checkout has them) against torch;
the peers (bitsandbytes, torchao) only where installed, and a peer that does not import is skipped with a
reason. Timings are not checked (they are the benchmark's, on a quiet machine)."""

from __future__ import annotations

import sys

import pytest
import torch

from optimlab import cli

TINY = [(64, 64), (64,)]  # 4096 elements: the smallest tensor every library quantises; a bias kept in fp32


@pytest.fixture()
def bs(tmp_path, monkeypatch):
    mod = cli._bench_module("bench_state")
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(mod, "CHART", tmp_path / "state.png")
    monkeypatch.setattr(mod, "step_shapes", lambda: list(TINY))
    monkeypatch.setattr(mod, "gpt2_shapes", lambda: [(128, 64), (64,)])
    monkeypatch.setattr(mod, "OURS", {"fp32": None})  # bf16/int8 compile their own kernels: the bench's, not here
    return mod


def _table(text: str) -> list[list[str]]:
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in text.splitlines()
            if ln.startswith("| ") and not ln.startswith("| optimizer")]


def test_run_measures_bytes_and_times(bs):
    results, skipped = bs.run("cpu", rounds=1, warmup=1, algos=["SGD", "Adam"], peers=(), log=print)
    assert [r.name for r in results] == ["SGD", "Adam"] and skipped == {}
    sgd, adam = results
    assert sgd.torch_ref == "torch fp32 (fused)"
    assert sgd.bytes["torch fp32 (fused)"] == pytest.approx(4.0, abs=0.01)  # momentum_buffer
    assert adam.bytes["optimlab fp32"] == pytest.approx(8.0, abs=0.01)  # exp_avg, exp_avg_sq, the step scalars
    assert adam.gpt2_bytes["optimlab fp32"] == pytest.approx(8.0, abs=0.01)
    for res in results:
        assert len(res.times["optimlab fp32"]) == 1 and res.ratio(res.torch_ref) == 1.0
        assert [c.label for c in res.configs if c.library == "optimlab"] == ["optimlab fp32"]


def test_configurations_per_optimizer(bs, monkeypatch):
    """optimlab's three precisions (``state_dtype`` None / bfloat16 / "int8") on every optimizer; the peers
    only where they have the algorithm."""
    monkeypatch.setattr(bs, "OURS", {"fp32": None, "bf16": torch.bfloat16, "int8": "int8"})
    peers = {"bitsandbytes": object(), "torchao": object()}
    labels = {n: [c.label for c in bs.configs(n, kw, peers)] for n, kw in bs.ALGOS}
    assert len(labels) == 11
    assert labels["AdamW"] == ["torch fp32 (fused)", "optimlab fp32", "optimlab bf16", "optimlab int8",
                               "bitsandbytes int8", "torchao int8", "torchao int4"]
    assert labels["Rprop"] == ["torch fp32 (foreach)", "torch fp32 (for-loop)", "optimlab fp32", "optimlab bf16",
                               "optimlab int8"]
    assert "bitsandbytes int8" in labels["RMSprop"] and "torchao int8" not in labels["RMSprop"]


def test_torch_without_a_fused_kernel_is_its_faster_path(bs):
    results, _ = bs.run("cpu", rounds=1, warmup=1, algos=["Rprop"], peers=(), gpt2=False, log=lambda s: None)
    (res,) = results
    assert {"torch fp32 (foreach)", "torch fp32 (for-loop)"} <= set(res.times)
    assert res.torch_ref in ("torch fp32 (foreach)", "torch fp32 (for-loop)")
    assert [c.label for c in res.shown()].count(res.torch_ref) == 1
    assert not any(c.library == "torch" and c.label != res.torch_ref for c in res.shown())


def test_cli_writes_its_section_and_chart(bs, capsys):
    bs.RESULTS.write_text("# Optimizer step benchmark\n\nthe suite's table\n")
    assert cli.main(["bench", "--state", "--only", "AdamW", "--rounds", "1", "--no-peers"]) == 0
    text = bs.RESULTS.read_text()
    assert text.startswith("# Optimizer step benchmark\n\nthe suite's table\n")  # the rest of the file is kept
    assert text.count(bs.BEGIN) == 1 and text.count(bs.END) == 1
    header = next(ln for ln in text.splitlines() if ln.startswith("| optimizer"))
    assert [c.strip() for c in header.strip("|").split("|")] == bs.HEADER
    rows = _table(text)
    assert [r[:3] for r in rows[:2]] == [["AdamW", "torch (fused)", "fp32"], ["AdamW", "optimlab", "fp32"]]
    assert all(len(r) == len(bs.HEADER) for r in rows)
    assert float(rows[0][bs.HEADER.index("× torch fp32")]) == 1.0
    assert float(rows[1][bs.HEADER.index("state bytes / param")]) == pytest.approx(8.0, abs=0.01)
    assert torch.__version__ in text and "state_tradeoff" not in text and "state.png" in text
    assert bs.CHART.read_bytes()[:4] == b"\x89PNG"
    assert "state precision" in capsys.readouterr().out
    # a second run replaces the section instead of appending another
    assert cli.main(["bench", "--state", "--only", "SGD", "--rounds", "1", "--no-peers", "--no-gpt2"]) == 0
    text = bs.RESULTS.read_text()
    assert text.count(bs.BEGIN) == 1 and "| SGD |" in text and "| AdamW |" not in text


def test_the_suites_rewrite_keeps_the_state_section(bs):
    kept = bs.section([], {}, "cpu", 1, TINY, False, bs.CHART)
    text = bs.splice("# Optimizer step benchmark\n\nold table\n", kept)
    assert bs.kept_section(text) == kept
    assert bs.splice(text, kept.replace("Machine", "Host")).count(bs.BEGIN) == 1


def test_a_peer_that_does_not_import_is_skipped_with_a_reason(bs, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "bitsandbytes.optim", None)
    seen: list[str] = []
    results, skipped = bs.run("cpu", rounds=1, warmup=1, algos=["SGD"], peers=("bitsandbytes",), gpt2=False,
                              log=seen.append)
    assert set(skipped) == {"bitsandbytes"} and "pip install --no-deps bitsandbytes==0.50.2" in skipped["bitsandbytes"]
    assert any(s.startswith("skipping bitsandbytes: does not import") for s in seen)
    assert not any(c.library == "bitsandbytes" for c in results[0].configs)
    section = bs.section(results, skipped, "cpu", 1, TINY, False, bs.CHART)
    assert "bitsandbytes skipped: does not import" in section


def test_bitsandbytes_when_installed(bs):
    """bitsandbytes needs no compile: its 8-bit AdamW on the tiny set (4096 quantised elements, a float32 bias)."""
    pytest.importorskip("bitsandbytes.optim", reason="bitsandbytes (the `peers` extra) is not installed")
    results, skipped = bs.run("cpu", rounds=1, warmup=1, algos=["AdamW"], peers=("bitsandbytes",), gpt2=False,
                              log=lambda s: None)
    assert skipped == {}
    res = results[0]
    assert "bitsandbytes int8" in res.times
    # state1/state2 uint8, their absmax per 256, the float32 bias state and the two shared 256-entry maps
    assert 2.0 < res.bytes["bitsandbytes int8"] < 2.7  # the maps are 0.49 byte/param of this tiny set
