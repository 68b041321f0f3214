"""The examples run, in a reduced mode, so they cannot rot: examples/digits.py (torch vs optimlab
curves equal, PNG written) and examples/digits_speed.py (every optimizer path, final losses agreeing)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

pytest.importorskip("sklearn", reason="the examples' dataset ships with scikit-learn (in optimlab[stacks])")
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_example(tmp_path, capsys):
    png = tmp_path / "curves.png"
    assert _load("digits").main(["--epochs", "3", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "EQUAL: " in out and "test accuracies identical" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("variants", ["for-loop,foreach,fused", "compile"])
def test_digits_speed_example(variants, capsys):
    """Each variant's two runs end at the same loss (exit status 0); compile: torch.compile of the model
    and of optimizer.step, for both implementations."""
    assert _load("digits_speed").main(["--steps", "4", "--warmup", "3", "--variants", variants]) == 0
    out = capsys.readouterr().out
    assert all(v in out for v in variants.split(",")) and "DIFFER" not in out
