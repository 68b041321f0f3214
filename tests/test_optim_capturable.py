"""``capturable=True`` math (tensor step counts and bias corrections, nothing read back to the host),
checked on CPU by letting both torch and optimlab treat the CPU as a capturable device.

Off-accelerator, both raise torch's AssertionError (a catalogue case); here the device check is
widened on both sides so that the capturable formulas themselves run in lockstep with torch's.
"""

from __future__ import annotations

import importlib

import pytest
import torch

import optimlab.optim as oo
from optimlab import parity
from optimlab.catalog import Case, get
from optimlab.parity import compare
from optimlab.parity.optim import batch, loss_of, make_model
from optimlab.parity.tolerances import for_dtype

CAPTURABLE = ["Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adadelta", "RMSprop", "Rprop", "ASGD"]
KWARGS = {
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05},
    "AdamW": {"lr": 0.01},
    "Adamax": {"lr": 0.01, "weight_decay": 0.05},
    "NAdam": {"lr": 0.01, "weight_decay": 0.05},
    "RAdam": {"lr": 0.01},
    "Adadelta": {"lr": 0.5},
    "RMSprop": {"lr": 0.01, "centered": True, "momentum": 0.5},
    "Rprop": {"lr": 0.01},
    "ASGD": {"lr": 0.05, "t0": 5.0},
}


@pytest.fixture
def cpu_capturable(monkeypatch):
    def devices(supports_xla: bool = True) -> list[str]:
        return ["cpu", "cuda"]

    for name in CAPTURABLE:
        mod = importlib.import_module(f"torch.optim.{name.lower()}")
        monkeypatch.setattr(mod, "_get_capturable_supported_devices", devices, raising=False)
    monkeypatch.setattr("optimlab.optim.optimizer._CAPTURABLE_DEVICES", ("cpu", "cuda"))


@pytest.mark.parametrize("name", CAPTURABLE)
def test_capturable_per_tensor_bitwise(cpu_capturable, name):
    """Per tensor, ours runs torch's capturable formulas in torch's order: bit for bit."""
    case = Case("capturable", {**KWARGS[name], "capturable": True, "foreach": False}, bitwise=True)
    for dtype in (torch.float64, torch.float32):
        res = parity.run_case(get("optim", name), case, dtype, "cpu", steps=20)
        assert res.passed, f"{dtype}: {res.message}"


def _run(cls, kwargs: dict, dtype: torch.dtype, steps: int = 20):
    model = make_model("mlp", dtype, "cpu")
    opt = cls(model.parameters(), **kwargs)
    for step in range(1, steps + 1):
        x, y = batch("mlp", step, dtype, "cpu")
        opt.zero_grad()
        loss_of(model, x, y).backward()
        opt.step()
    return [p.detach() for p in model.parameters()], opt.state_dict()["state"]


@pytest.mark.parametrize("name", CAPTURABLE)
def test_capturable_multi_tensor(cpu_capturable, name):
    """On lists, ours runs the same capturable rule: bit for bit with our (= torch's) per-tensor
    capturable path. torch's multi-tensor capturable path reorders those formulas (e.g. Adam folds lr
    into the bias corrections) and evaluates them on float32 step tensors, so it agrees with its own
    per-tensor path, and with ours, only to float32 precision: that is the tolerance used against it."""
    kw = {**KWARGS[name], "capturable": True}
    for dtype in (torch.float64, torch.float32):
        p_many, s_many = _run(getattr(oo, name), {**kw, "foreach": True}, dtype)
        p_loop, s_loop = _run(getattr(oo, name), {**kw, "foreach": False}, dtype)
        p_ref, s_ref = _run(getattr(torch.optim, name), {**kw, "foreach": True}, dtype)
        tol = for_dtype(torch.float32)
        for a, b, r in zip(p_many, p_loop, p_ref, strict=True):
            assert torch.equal(a, b)
            assert compare.tensors(a, r, "param", tol=tol).ok
        for idx, st in s_ref.items():
            for key, val in st.items():
                assert torch.equal(s_many[idx][key], s_loop[idx][key]), key
                assert compare.tensors(s_many[idx][key], val, key, tol=tol).ok, key
