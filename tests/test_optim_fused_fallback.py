"""``fused=True`` where the compiled kernels cannot run (issue 25): GradScaler's contract on the unfused path.

GradScaler hands an optimizer that advertises ``_step_supports_amp_scaling`` (every optimlab optimizer built
with ``fused=True`` but Muon, as torch's fused ones) ``grad_scale`` and ``found_inf`` and does not skip the step
itself. Where the compiled fused path is not taken — no usable C++ compiler (``_fused._failed`` holds the
device), an outer ``torch.compile``, DTensor parameters — the unfused path must unscale and skip as torch's
fused kernels do: on an inf/NaN step nothing changes (lazy state created, counters untouched), otherwise the
gradients are unscaled (and written back to ``.grad``). The reference is torch's fused optimizer where torch
has one, else torch's for-loop, for which GradScaler unscales and skips on the host; the tolerance is the
fused one (:data:`optimlab.parity.tolerances.FUSED`: the reference fused kernels round differently).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from typing import Any

import _dist
import pytest
import torch
from torch import nn

import optimlab.optim as oo
from optimlab.optim import _fused
from optimlab.parity.tolerances import FUSED as FUSED_TOL

#: every optimizer that accepts fused=True, with flags that reach its rule's branches
CONFIGS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01, "maximize": True},
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True},
    "AdamW": {"lr": 0.01, "amsgrad": True},
    "Adagrad": {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.05},
    "Adadelta": {"lr": 0.5, "weight_decay": 0.05, "maximize": True},
    "Adamax": {"lr": 0.01, "weight_decay": 0.05},
    "ASGD": {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 2.0},
    "NAdam": {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True},
    "RAdam": {"lr": 0.01, "weight_decay": 0.05},
    "RMSprop": {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.05},
    "Rprop": {"lr": 0.01, "etas": (0.4, 1.3)},
    "Adafactor": {"lr": 0.01, "weight_decay": 0.05, "maximize": True},
    "Muon": {"lr": 0.02, "weight_decay": 0.01},
}
TORCH_FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}
STEPS, INF_STEP = 6, 2
TOL = FUSED_TOL[torch.float32]


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    bias = name != "Muon"  # Muon takes 2-D parameters only
    return nn.Sequential(nn.Linear(8, 16, bias=bias), nn.Tanh(), nn.Linear(16, 4, bias=bias))


def _run(ns: Any, name: str, ours: bool, step: Any = None, inf_steps: tuple[int, ...] = (INF_STEP,)
         ) -> tuple[nn.Module, torch.optim.Optimizer, list[bool]]:
    """``STEPS`` steps with GradScaler("cpu"), one gradient entry set to inf at ``inf_steps``; the model, the
    optimizer and, per step, whether the parameters were left exactly as they were."""
    model = _model(name)
    fused = ours or name in TORCH_FUSED
    opt = getattr(ns, name)(model.parameters(), **CONFIGS[name], **({"fused": True} if fused else {}))
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    do_step = step(opt) if step is not None else None
    untouched = []
    g = torch.Generator().manual_seed(1)
    for s in range(STEPS):
        x, y = torch.randn(16, 8, generator=g), torch.randint(0, 4, (16,), generator=g)
        opt.zero_grad()
        scaler.scale(nn.functional.cross_entropy(model(x), y)).backward()
        if s in inf_steps:
            model[0].weight.grad[0, 0] = float("inf")
        before = [p.detach().clone() for p in model.parameters()]
        if do_step is None:
            scaler.step(opt)
        else:  # GradScaler's own handing-over, with the optimizer's step replaced (e.g. compiled)
            opt.step, plain = do_step, opt.step
            try:
                scaler.step(opt)
            finally:
                opt.step = plain
        scaler.update()
        untouched.append(all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)))
    return model, opt, untouched


def _max_error(a: tuple[nn.Module, torch.optim.Optimizer], b: tuple[nn.Module, torch.optim.Optimizer]) -> float:
    """Parameters, gradients and every state tensor of ``a`` within the fused tolerance of ``b`` (asserted); the
    largest absolute difference, for the report."""
    (m_a, o_a), (m_b, o_b) = a, b
    pairs = [(p, q) for p, q in zip(m_a.parameters(), m_b.parameters(), strict=True)]
    pairs += [(p.grad, q.grad) for p, q in zip(m_a.parameters(), m_b.parameters(), strict=True)]
    s_a, s_b = o_a.state_dict()["state"], o_b.state_dict()["state"]
    assert set(s_a) == set(s_b)
    for k, st in s_b.items():
        assert set(s_a[k]) == set(st), (sorted(s_a[k]), sorted(st))
        pairs += [(s_a[k][key], v) for key, v in st.items() if isinstance(v, torch.Tensor)]
    err = 0.0
    for x, y in pairs:
        assert bool(x.isfinite().all())
        torch.testing.assert_close(x.to(y.dtype), y, rtol=TOL.rtol, atol=TOL.atol)
        err = max(err, (x.double() - y.double()).abs().max().item())
    return err


def _counters(opt: torch.optim.Optimizer) -> list[float]:
    return [float(st["step"]) for st in opt.state.values() if "step" in st]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_no_compiler_grad_scaler_inf_step(monkeypatch, name):
    """The compiler is unusable (``_fused._failed`` holds "cpu": no warning is due, it was given when the
    compile failed): the inf step is skipped, weights, gradients and state end as torch's run."""
    monkeypatch.setattr(_fused, "_failed", {"cpu"})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        m_o, o_o, same_o = _run(oo, name, True)
    assert not [w for w in record if "fused" in str(w.message)], [str(w.message) for w in record]
    m_r, o_r, same_r = _run(torch.optim, name, False)
    assert same_o == same_r == [s == INF_STEP for s in range(STEPS)]
    assert _counters(o_o) == _counters(o_r)
    _max_error((m_o, o_o), (m_r, o_r))


def test_inf_first_step_creates_state_and_leaves_counters(monkeypatch):
    """An inf/NaN first step, as torch's fused kernels leave it: the state exists (zeros) with step 0."""
    monkeypatch.setattr(_fused, "_failed", {"cpu"})
    for name in ("Adam", "RAdam", "Rprop", "Adafactor"):
        m_o, o_o, same = _run(oo, name, True, inf_steps=(0,))
        assert same[0] and not any(same[1:])
        m_r, o_r, _ = _run(torch.optim, name, False, inf_steps=(0,))
        _max_error((m_o, o_o), (m_r, o_r))


def test_sgd_inf_first_momentum_step_seeds_the_buffer_later(monkeypatch):
    """SGD's momentum buffer is seeded by its first *applied* step: an inf first step creates none (torch's
    fused SGD leaves an uninitialised ``empty_like`` buffer there), as torch's for-loop under GradScaler."""
    monkeypatch.setattr(_fused, "_failed", {"cpu"})
    m_o, o_o, _ = _run(oo, "SGD", True, inf_steps=(0,))
    model = _model("SGD")
    ref = torch.optim.SGD(model.parameters(), **CONFIGS["SGD"])  # the for-loop: GradScaler skips on the host
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    g = torch.Generator().manual_seed(1)
    for s in range(STEPS):
        x, y = torch.randn(16, 8, generator=g), torch.randint(0, 4, (16,), generator=g)
        ref.zero_grad()
        scaler.scale(nn.functional.cross_entropy(model(x), y)).backward()
        if s == 0:
            model[0].weight.grad[0, 0] = float("inf")
        scaler.step(ref)
        scaler.update()
    for p, q in zip(m_o.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=TOL.rtol, atol=TOL.atol)
        torch.testing.assert_close(o_o.state[p]["momentum_buffer"], ref.state[q]["momentum_buffer"],
                                   rtol=TOL.rtol, atol=TOL.atol)


#: one optimizer per kind of state the masked update must keep: step counters (Adam, against torch's fused
#: kernel), 0-d state (ASGD's η, μ), no counters and two rule calls per step (SGD's first momentum step)
COMPILED = ["Adam", "ASGD", "SGD"]


@pytest.mark.parametrize("name", COMPILED)
def test_outer_compile_grad_scaler_inf_step(name):
    """Under ``torch.compile(opt.step, fullgraph=True)`` (no graph break, so no host read of ``found_inf``):
    the unscale and the skip happen on the device, and the run ends as torch's eager one."""
    torch._dynamo.reset()
    m_o, o_o, same_o = _run(oo, name, True, step=lambda opt: torch.compile(opt.step, fullgraph=True))
    m_r, o_r, same_r = _run(torch.optim, name, False)
    assert same_o == same_r == [s == INF_STEP for s in range(STEPS)]
    assert _counters(o_o) == _counters(o_r)
    _max_error((m_o, o_o), (m_r, o_r))


_SUBPROCESS = r"""
import json, sys, warnings
sys.path.insert(0, sys.argv[1])
import torch
import test_optim_fused_fallback as t
from optimlab.optim import _fused
out = {}
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    for name in ("RAdam", "Adam"):
        a = t._run(t.oo, name, True)
        b = t._run(torch.optim, name, False)
        out[name] = [t._max_error(a[:2], b[:2]), a[2] == b[2]]
out["warnings"] = [str(w.message) for w in record if "fused" in str(w.message)]
out["failed"] = sorted(_fused._failed)
print(json.dumps(out))
"""


def test_no_compiler_for_real(tmp_path):
    """A process where the C++ compiler is ``/bin/false`` and Inductor's cache is empty: one warning, then the
    unfused path with GradScaler's contract (RAdam against torch's for-loop, Adam against torch's fused)."""
    env = dict(os.environ, CXX="/bin/false", CC="/bin/false", TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", _SUBPROCESS, os.path.dirname(__file__)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["failed"] == ["cpu"]
    assert len(out["warnings"]) == 1 and "could not compile" in out["warnings"][0], out["warnings"]
    assert out["RAdam"][1] and out["Adam"][1]


def _dtensor_worker(rank: int, world: int) -> dict[str, float]:
    """FSDP2 (DTensor parameters: fused=True runs unfused) with GradScaler's hand-over set as GradScaler sets it
    (the same found_inf on every rank): optimlab's fused Adam and RAdam against torch's fused Adam and for-loop
    RAdam (for which the host unscales and skips)."""
    from torch.distributed.fsdp import fully_shard

    def sharded() -> nn.Module:
        model = _model("Adam")
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        return fully_shard(model)

    def local(t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if hasattr(t, "to_local") else t

    out = {}
    for name in ("Adam", "RAdam"):
        runs = []
        for ns in (oo, torch.optim):
            model = sharded()
            fused = ns is oo or name in TORCH_FUSED
            opt = getattr(ns, name)(model.parameters(), **CONFIGS[name], **({"fused": True} if fused else {}))
            for s in range(STEPS):
                g = torch.Generator().manual_seed(1000 * rank + s)
                x, y = torch.randn(8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)
                opt.zero_grad()
                (nn.functional.cross_entropy(model(x), y) * 256.0).backward()
                found = torch.tensor(1.0 if s == INF_STEP else 0.0)
                if getattr(opt, "_step_supports_amp_scaling", False):
                    opt.grad_scale, opt.found_inf = torch.tensor(256.0), found
                    opt.step()
                    del opt.grad_scale, opt.found_inf
                elif not found:
                    for p in model.parameters():
                        p.grad.div_(256.0)
                    opt.step()
            runs.append((model, opt))
        (m_o, o_o), (m_r, o_r) = runs
        err = 0.0
        pairs = [(local(p), local(q)) for p, q in zip(m_o.parameters(), m_r.parameters(), strict=True)]
        for k, st in o_r.state_dict()["state"].items():
            pairs += [(local(o_o.state_dict()["state"][k][key]), local(v)) for key, v in st.items()]
        for a, b in pairs:
            torch.testing.assert_close(a.to(b.dtype), b, rtol=TOL.rtol, atol=TOL.atol)
            err = max(err, (a.double() - b.double()).abs().max().item())
        out[name] = err
    return out


def test_dtensor_parameters_grad_scaler_inf_step():
    errs = _dist.run(_dtensor_worker)
    assert set(errs[0]) == {"Adam", "RAdam"}
