"""``fused=True`` under schedules: every numeric hyperparameter is a runtime input of the compiled kernels.

A schedule that changes every hyperparameter an optimizer has at every step (and torch's own OneCycleLR and
CyclicLR, which cycle momentum/betas by default) compiles nothing and rebuilds no plan after warm-up, and
stays in lockstep with torch's for-loop run under the same schedule. A hyperparameter that selects code
(zero or non-zero weight decay) may compile one more kernel when it changes class, but a group whose values
keep selecting new code warns once and runs uncompiled, never compiling at every step.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import optimlab.optim as oo
from optimlab.optim import _fused
from optimlab.parity.tolerances import FUSED

#: (optimizer, constructor kwargs, the group keys the schedule changes at every step)
CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
     ["lr", "momentum", "dampening", "weight_decay"]),
    ("Adam", {"lr": 0.01, "weight_decay": 0.01}, ["lr", "betas", "eps", "weight_decay"]),
    ("AdamW", {"lr": 0.01, "amsgrad": True}, ["lr", "betas", "eps", "weight_decay"]),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01}, ["lr", "lr_decay", "weight_decay", "eps"]),
    ("Adadelta", {"lr": 0.5, "weight_decay": 0.01}, ["lr", "rho", "eps", "weight_decay"]),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.01}, ["lr", "betas", "eps", "weight_decay"]),
    ("ASGD", {"lr": 0.01, "t0": 3.0, "weight_decay": 0.01}, ["lr", "lambd", "alpha", "t0", "weight_decay"]),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.01}, ["lr", "betas", "eps", "weight_decay", "momentum_decay"]),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.01}, ["lr", "betas", "eps", "weight_decay"]),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.01},
     ["lr", "alpha", "eps", "weight_decay", "momentum"]),
    ("Rprop", {"lr": 0.01}, ["lr", "etas", "step_sizes"]),
    ("Adafactor", {"lr": 0.05, "weight_decay": 0.01}, ["lr", "beta2_decay", "eps", "d", "weight_decay"]),
    ("Muon", {"lr": 0.02, "weight_decay": 0.01}, ["lr", "weight_decay", "momentum"]),
]
#: keys whose value v lies in [0, 1) and is scheduled as 1 - (1 - v)·f (betas, momenta, decay rates; ASGD's
#: power alpha = 0.75 as well)
_BELOW_ONE = {"betas", "momentum", "rho", "alpha"}
WARMUP = 2  # SGD's first momentum step runs eagerly, its second compiles


def _factor(t: int) -> float:
    return 1.0 + 0.04 * math.sin(1.3 * t + 0.5)


def _scheduled(key: str, base: object, t: int) -> object:
    f = _factor(t)
    if isinstance(base, tuple):
        return tuple(None if b is None else _scheduled(key, b, t) for b in base)
    if key in _BELOW_ONE:
        return 1 - (1 - base) * f
    return base * f


def _shapes(name: str) -> list[tuple[int, ...]]:
    return [(7, 5), (5, 9), (12, 4)] if name == "Muon" else [(7, 5), (5,), (3, 4, 2), (33,)]


def _run(name: str, kw: dict, keys: list[str], steps: int = 7, sched=None, monkeypatch=None) -> None:
    g = torch.Generator().manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in _shapes(name)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    ours = getattr(oo, name)(a, **kw, fused=True)
    ref = getattr(torch.optim, name)(b, **kw, **({} if name == "Muon" else {"foreach": False}))
    scheds = [sched(ours), sched(ref)] if sched else None
    base = {k: ref.param_groups[0][k] for k in keys}
    compiles, builds = [], []
    compile_, build = _fused._compile, _fused._build
    monkeypatch.setattr(_fused, "_compile", lambda *x: compiles.append(1) or compile_(*x))
    monkeypatch.setattr(_fused, "_build", lambda *x: builds.append(1) or build(*x))
    for t in range(steps):
        gen = torch.Generator().manual_seed(100 + t)
        for p, q in zip(a, b, strict=True):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        if t == WARMUP:
            compiles.clear()
            builds.clear()
        ours.step()
        ref.step()
        for p, q in zip(a, b, strict=True):
            tol = FUSED[q.dtype]
            assert torch.allclose(p, q, rtol=tol.rtol, atol=tol.atol), f"{name} step {t}: {(p - q).abs().max()}"
        if scheds:
            for s in scheds:
                s.step()
        for k in keys:  # the next step's values, written where a scheduler or trainer writes them
            ours.param_groups[0][k] = ref.param_groups[0][k] = _scheduled(k, base[k], t + 1)
    # Muon's update kernel takes the step's fresh Newton–Schulz result, so its plan is rebuilt each step (no
    # compile): one plan a step there, none elsewhere
    assert not compiles and len(builds) == (steps - WARMUP if name == "Muon" else 0), \
        f"{name}: {len(compiles)} compiles, {len(builds)} plans after warm-up"


@pytest.mark.parametrize("name,kw,keys", CASES, ids=[c[0] for c in CASES])
def test_every_hyperparameter_scheduled_compiles_nothing(name, kw, keys, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback warning would mean nothing was compiled
        _run(name, kw, keys, monkeypatch=monkeypatch)


_ONE_CYCLE = ("OneCycleLR", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.02, total_steps=20))
_CYCLIC = ("CyclicLR", lambda o: torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.001, max_lr=0.02, step_size_up=3))


@pytest.mark.parametrize("name,kw", [("AdamW", {"lr": 0.01}), ("SGD", {"lr": 0.05, "momentum": 0.9}),
                                     ("NAdam", {"lr": 0.01}), ("RMSprop", {"lr": 0.01, "momentum": 0.9})],
                         ids=["AdamW", "SGD", "NAdam", "RMSprop"])
@pytest.mark.parametrize("sched", [_ONE_CYCLE, _CYCLIC], ids=lambda s: s[0])
def test_cycling_schedulers_compile_nothing(name, kw, sched, monkeypatch):
    """torch's OneCycleLR and CyclicLR cycle betas or momentum at every step by default."""
    if sched[0] == "CyclicLR" and name in ("AdamW", "NAdam"):
        kw = {**kw, "betas": (0.9, 0.999)}
    _run(name, kw, [], steps=8, sched=sched[1], monkeypatch=monkeypatch)


def test_code_selecting_changes_stop_compiling_after_a_few(monkeypatch):
    """Weight decay flipping between zero and non-zero selects other code: a kernel per class, reused; a value
    that pins a kernel (any new value a new kernel) is capped, warned once, and the group runs uncompiled."""
    monkeypatch.setattr(_fused, "_kernels", {})
    p = torch.nn.Parameter(torch.randn(40))
    opt = oo.Adam([p], lr=0.01, fused=True)
    for t in range(6):
        opt.param_groups[0]["weight_decay"] = 0.0 if t % 2 else 0.01 * (t + 1)
        p.grad = torch.randn(40)
        opt.step()
    assert sum(len(v) for v in _fused._kernels.values()) == 2

    def pinning_rule(p, g, *, lr, c):
        p.sub_(g * float(c) * lr)  # float(): the value becomes a constant of the kernel

    q = torch.nn.Parameter(torch.randn(40))
    opt = oo.SGD([q], lr=0.1, fused=True)
    group = opt.param_groups[0]
    with pytest.warns(RuntimeWarning, match="keeps taking values") as record:
        for t in range(_fused.VARIANTS + 3):
            q.grad = torch.ones(40)
            before = q.detach().clone()
            with torch.no_grad():  # (as inside a step)
                _fused.apply(opt, pinning_rule, group, [[q], [q.grad]], {"lr": 0.1, "c": 1.0 + t})
            assert torch.allclose(before - q.detach(), torch.full((40,), 0.1 * (1.0 + t)))
    assert len([w for w in record if "keeps taking values" in str(w.message)]) == 1
    assert sum(len(v) for k, v in _fused._kernels.items() if k[0] is pinning_rule) == _fused.VARIANTS
