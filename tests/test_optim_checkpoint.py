"""Checkpoint interchange: torch's optimizer state loads into optimlab's mid-training (and back),
through ``torch.save``/``torch.load(weights_only=True)``, and both then continue in lockstep."""

from __future__ import annotations

import pytest
import torch
from _util import OPTIM_CONFIGS, checkpoint_roundtrip

import optimlab.optim as oo
from optimlab.parity.optim import batch, compare_optimizers, loss_of, make_model

CONFIGS = OPTIM_CONFIGS


def _steps(opt, model, start: int, n: int) -> None:
    for step in range(start, start + n):
        x, y = batch("mlp", step, torch.float64, "cpu")
        opt.zero_grad()
        loss_of(model, x, y).backward()
        opt.step()


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("source", ["torch", "optimlab"])
def test_state_dict_interchange(name, source):
    """Train ``source``'s optimizer 5 steps, checkpoint it (model and optimizer, through torch.save and
    torch.load(weights_only=True)), load the checkpoint into a fresh torch optimizer and a fresh
    optimlab optimizer, and step both 10 more times: they must stay bitwise in lockstep.

    (Both sides load, because torch's ``load_state_dict`` casts non-step state such as ASGD's
    ``eta`` or NAdam's ``mu_product`` to the parameter's dtype.)"""
    kw = CONFIGS[name]
    m_src = make_model("mlp", torch.float64, "cpu")
    src = (getattr(torch.optim, name) if source == "torch" else getattr(oo, name))(m_src.parameters(), **kw)
    _steps(src, m_src, 1, 5)
    optim_ckpt = checkpoint_roundtrip(src.state_dict())
    sides = []
    for cls in (getattr(oo, name), getattr(torch.optim, name)):
        model = make_model("mlp", torch.float64, "cpu")
        model.load_state_dict(checkpoint_roundtrip(m_src.state_dict()))
        opt = cls(model.parameters(), **kw)
        # each side loads its own copy: torch's load_state_dict keeps (does not copy) state tensors
        # that already have the parameter's dtype and device
        opt.load_state_dict(checkpoint_roundtrip(src.state_dict()))
        sides.append((opt, model))
    (ours, m_ours), (ref, m_ref) = sides
    assert ours.state_dict()["param_groups"] == ref.state_dict()["param_groups"] == optim_ckpt["param_groups"]
    for step in range(6, 16):
        _steps(ours, m_ours, step, 1)
        _steps(ref, m_ref, step, 1)
        diff = compare_optimizers(ours, ref, m_ours, m_ref, bitwise=True)
        assert diff.ok, f"step {step}: {diff.what}"
    # and the continued checkpoint still round-trips into torch
    again = getattr(torch.optim, name)(make_model("mlp", torch.float64, "cpu").parameters(), **kw)
    again.load_state_dict(checkpoint_roundtrip(ours.state_dict()))


def test_old_checkpoint_with_float_steps_is_upgraded():
    """Pre-1.12 checkpoints stored ``step`` as a Python number; torch turns it into a tensor on load."""
    m = make_model("mlp", torch.float64, "cpu")
    opt = oo.Adam(m.parameters(), lr=0.01)
    _steps(opt, m, 1, 2)
    sd = opt.state_dict()
    for st in sd["state"].values():
        st["step"] = float(st["step"])
    ref = torch.optim.Adam(make_model("mlp", torch.float64, "cpu").parameters(), lr=0.01)
    ref.load_state_dict(sd)
    opt.load_state_dict(sd)
    for st_o, st_r in zip(opt.state_dict()["state"].values(), ref.state_dict()["state"].values(), strict=True):
        assert torch.is_tensor(st_o["step"]) and st_o["step"].dtype == st_r["step"].dtype
        assert float(st_o["step"]) == float(st_r["step"]) == 2.0
