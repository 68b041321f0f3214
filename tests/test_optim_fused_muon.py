"""``Muon(fused=True)``: the momentum and the update around the eager Newton–Schulz iteration as two
compiled kernels (optimlab/optim/_fused.py), against torch.optim.Muon (torch has no fused Muon) with
real gradients of a small model of 2-D parameters: one tall, one square, one wide matrix (the tall
one's orthogonalised update is a transposed view), over 10 steps, at the fused tolerance.

Each configuration costs a few compiles (seconds each on 2 cores, cached on disk afterwards), so the
two configurations between them turn on every flag that changes a graph or a branch.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import optimlab.optim as oo
from optimlab.optim import _fused
from optimlab.optim import muon as muon_mod
from optimlab.parity.tolerances import FUSED

#: (kwargs, lr as a tensor): nesterov on/off, weight decay, both lr adjustments, a scheduled lr
CONFIGS = [
    ({"lr": 0.02, "weight_decay": 0.1, "nesterov": True, "adjust_lr_fn": "original"}, False),
    ({"lr": 0.02, "weight_decay": 0.1, "nesterov": False, "momentum": 0.9, "adjust_lr_fn": "match_rms_adamw"}, True),
]
IDS = ["nesterov-original", "plain-match_rms_adamw-lr_tensor"]


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 24, bias=False), nn.Tanh(), nn.Linear(24, 24, bias=False), nn.Tanh(),
                         nn.Linear(24, 5, bias=False))  # 24×8 tall, 24×24 square, 5×24 wide


def _backward(model: nn.Module, step: int) -> None:
    g = torch.Generator().manual_seed(1000 + step)
    x, y = torch.randn(32, 8, generator=g), torch.randn(32, 5, generator=g)
    model.zero_grad()
    ((model(x) - y) ** 2).mean().backward()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    tol = FUSED[b.dtype]
    return torch.allclose(a, b, rtol=tol.rtol, atol=tol.atol)


def _check(ours, ref, m_o, m_r, what: str) -> None:
    for (name, p), q in zip(m_o.named_parameters(), m_r.parameters(), strict=True):
        assert _close(p.detach(), q.detach()), f"{what} {name}: {(p - q).abs().max().item()}"
        b_o, b_r = ours.state[p]["momentum_buffer"], ref.state[q]["momentum_buffer"]
        assert _close(b_o, b_r), f"{what} {name} momentum_buffer: {(b_o - b_r).abs().max().item()}"


def _pair(kw, lr_tensor: bool, fused=True):
    m_o, m_r = _model(), _model()
    kw_o, kw_r = dict(kw), dict(kw)
    if lr_tensor:
        kw_o["lr"], kw_r["lr"] = torch.tensor(kw["lr"]), torch.tensor(kw["lr"])
    extra = {} if fused is None else {"fused": fused}
    return oo.Muon(m_o.parameters(), **kw_o, **extra), torch.optim.Muon(m_r.parameters(), **kw_r), m_o, m_r


def _lockstep(kw, lr_tensor=False, steps=10, sched=False, step=None):
    ours, ref, m_o, m_r = _pair(kw, lr_tensor)
    scheds = [torch.optim.lr_scheduler.ExponentialLR(o, 0.8) for o in (ours, ref)] if sched else []
    graphs = None
    for t in range(steps):
        _backward(m_o, t)
        _backward(m_r, t)
        (step or ours.step)()
        ref.step()
        for s in scheds:
            s.step()
        _check(ours, ref, m_o, m_r, f"step {t}")
        if t == 0:
            graphs = len(_fused._kernels)
    assert len(_fused._kernels) == graphs  # a scheduled (tensor) lr recompiles nothing
    return ours, ref, m_o, m_r


@pytest.mark.parametrize("kw,lr_tensor", CONFIGS, ids=IDS)
def test_fused_muon_matches_torch(kw, lr_tensor, monkeypatch):
    before = _fused._failed.copy()

    def unfused(*args, **kwargs):
        raise AssertionError("the unfused path ran")

    monkeypatch.setattr(muon_mod, "muon_rule", unfused)  # Muon.step's unfused loop
    monkeypatch.setattr(_fused, "_eager", unfused)  # _fused.apply's per-parameter fallback
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback warning would mean nothing was compiled
        _lockstep(kw, lr_tensor, sched=True)
    assert _fused._failed == before
    rules = {key[0].__name__ for key in _fused._kernels}
    assert {"muon_momentum_rule", "muon_update_rule"} <= rules
    # the tall matrix's transposed update has a kernel of its own, the same for any tall shape
    forms = {key[2][0][1][1] for key in _fused._kernels if key[0].__name__ == "muon_update_rule"}
    assert {(0, 1), (1, 0)} <= forms


@pytest.mark.parametrize("kw,lr_tensor", CONFIGS, ids=IDS)
def test_fused_equals_the_unfused_path_bit_for_bit_on_cpu(kw, lr_tensor):
    """The kernels round every product-sum as ATen's one FMA (:class:`_fused._EagerFMA`) and a tensor
    lr's scalar math in its dtype: on CPU the buffers and parameters equal torch's bit for bit (but for
    a float64 sum on a float32 tie, ~2^-29 of values), so the bfloat16 Newton–Schulz input is the same."""
    ours, ref, m_o, m_r = _pair(kw, lr_tensor)
    for t in range(10):
        _backward(m_o, t)
        _backward(m_r, t)
        ours.step()
        ref.step()
        for p, q in zip(m_o.parameters(), m_r.parameters(), strict=True):
            assert torch.equal(ours.state[p]["momentum_buffer"], ref.state[q]["momentum_buffer"]), f"step {t}"
            assert torch.equal(p, q), f"step {t}: {(p - q).abs().max().item()}"


def test_compile_failure_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(_fused, "_failed", set())
    monkeypatch.setattr(_fused, "_warned", set())
    monkeypatch.setattr(_fused, "_kernels", {})

    def broken(*args, **kwargs):
        raise RuntimeError("simulated: no C++ compiler")

    monkeypatch.setattr(_fused, "_compile", broken)
    with pytest.warns(RuntimeWarning, match="fused=True could not compile") as record:
        ours, ref, m_o, m_r = _lockstep(*CONFIGS[1], steps=4)
    assert len([w for w in record if "could not compile" in str(w.message)]) == 1
    assert _fused._failed == {"cpu"} and not _fused._kernels
    for p, q in zip(m_o.parameters(), m_r.parameters(), strict=True):  # the unfused path: torch's bits
        assert torch.equal(p, q)


def test_under_outer_compile_the_rule_runs_inline():
    ours, ref, m_o, m_r = _pair(CONFIGS[0][0], False)
    n = len(_fused._kernels)
    step = torch.compile(ours.step, backend="eager")
    for t in range(3):
        _backward(m_o, t)
        _backward(m_r, t)
        step()
        ref.step()
        _check(ours, ref, m_o, m_r, f"compiled step {t}")
    assert len(_fused._kernels) == n  # no nested compile


def test_state_dict_round_trip_with_torch():
    kw = CONFIGS[0][0]
    ours, ref, m_o, m_r = _lockstep(kw, steps=3)
    # ours → torch: torch's Muon continues from our checkpoint as from its own
    m_t = _model()
    m_t.load_state_dict(m_o.state_dict())
    into_torch = torch.optim.Muon(m_t.parameters(), **kw)
    into_torch.load_state_dict(copy.deepcopy(ours.state_dict()))  # load_state_dict aliases
    # torch → ours (fused)
    m_f = _model()
    m_f.load_state_dict(m_r.state_dict())
    into_ours = oo.Muon(m_f.parameters(), **kw, fused=True)
    into_ours.load_state_dict(copy.deepcopy(ref.state_dict()))
    assert "fused" not in into_ours.param_groups[0]  # the checkpoint's groups win, as in torch
    into_ours.param_groups[0]["fused"] = True
    for t in range(3, 6):
        for m in (m_o, m_r, m_t, m_f):
            _backward(m, t)
        for opt in (ours, ref, into_torch, into_ours):
            opt.step()
    _check(ours, ref, m_o, m_r, "continued")
    _check(into_torch, ref, m_t, m_r, "ours into torch")
    _check(into_ours, ref, m_f, m_r, "torch into ours")


def test_grad_scaler_unscales_and_skips_on_the_host():
    """Muon(fused=True) does not advertise ``_step_supports_amp_scaling`` (as torch's Muon): GradScaler
    unscales the gradients and skips inf/NaN steps itself, for both alike."""
    ours, ref, m_o, m_r = _pair(CONFIGS[0][0], False)
    assert not getattr(ours, "_step_supports_amp_scaling", False)
    scalers = [torch.amp.GradScaler("cpu", init_scale=256.0) for _ in range(2)]
    for t in range(3):
        for opt, m, scaler in ((ours, m_o, scalers[0]), (ref, m_r, scalers[1])):
            g = torch.Generator().manual_seed(1000 + t)
            x, y = torch.randn(32, 8, generator=g), torch.randn(32, 5, generator=g)
            opt.zero_grad()
            scaler.scale(((m(x) - y) ** 2).mean()).backward()
            if t == 1:
                next(m.parameters()).grad[0, 0] = float("inf")  # this step is skipped, the scale halved
            scaler.step(opt)
            scaler.update()
        _check(ours, ref, m_o, m_r, f"scaled step {t}")
    assert scalers[0].get_scale() == scalers[1].get_scale() == 128.0


def test_constructor_and_defaults_like_torch():
    m = _model()
    assert oo.Muon(m.parameters()).defaults.keys() == torch.optim.Muon(m.parameters()).defaults.keys()
    assert oo.Muon(m.parameters(), fused=False).defaults["fused"] is False
    with pytest.raises(TypeError):
        oo.Muon(m.parameters(), 0.02, 0.1, 0.95, True, (3.4445, -4.775, 2.0315), 1e-7, 5, None, True)


@pytest.mark.parametrize("name", ["Muon", "Adafactor"])
def test_fused_needs_floating_params_on_a_fused_device(name):
    p = nn.Parameter(torch.zeros(4, 6, device="meta"))
    opt = getattr(oo, name)([p], fused=True)
    p.grad = torch.zeros_like(p)
    with pytest.raises(RuntimeError, match="`fused=True` requires all the params to be floating point"):
        opt.step()
