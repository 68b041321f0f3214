"""``fused=True`` fails closed: a compiled kernel that breaks at a call (a changed Inductor, a device it cannot
handle) leaves each parameter updated exactly once, warns once, and training goes on unfused in lockstep with
torch, GradScaler's skipped steps included; and with torch's private internals gone, ``import optimlab`` and
every eager path still work (``fused=True`` then warns once and runs unfused)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from test_optim_fused import CONFIGS

import optimlab.optim as oo
from optimlab.optim import _fused
from optimlab.parity.tolerances import FUSED

MUON = ("Muon", {"lr": 0.02, "weight_decay": 0.01})
#: enough parameters for two chunks of every rule (at most 8 slots a chunk)
MANY = [(7, 5), (5,), (3, 4, 2), (33,), (6,), (4, 4), (9,), (2, 3), (11,), (5, 2), (8,)]


def _set(name: str, dtype=torch.float32) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5, 9), (12, 4), (3, 3), (6, 2)] if name == "Muon" else MANY
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in shapes]


def _run(name: str, kw: dict, steps: int, inf_step: int | None, after_first_chunk=None) -> None:
    a, b = _set(name), _set(name)
    ours = getattr(oo, name)(a, **kw, fused=True)
    ref = getattr(torch.optim, name)(b, **kw, **({} if name == "Muon" else {"foreach": False}))
    amp = name != "Muon"  # (torch's Muon has no GradScaler support to compare with)
    scalers = [torch.amp.GradScaler("cpu", init_scale=64.0) for _ in range(2)] if amp else None
    for s in scalers or ():
        s.scale(torch.ones(()))  # (creates its scale; the gradients below are set already scaled)
    for t in range(steps):
        gen = torch.Generator().manual_seed(100 + t)
        grads = [torch.randn(p.shape, generator=gen) for p in a]
        for k, (opt, ps) in enumerate(((ours, a), (ref, b))):
            for p, g in zip(ps, grads, strict=True):
                inf = amp and t == inf_step and p is ps[0]  # (an inf step only where a GradScaler skips it)
                p.grad = g * (float("inf") if inf else 1.0) * (64.0 if amp else 1.0)
            if scalers:
                scalers[k].step(opt)
                scalers[k].update()
            else:
                opt.step()
            if k == 0 and t == 0 and after_first_chunk is not None:
                after_first_chunk()
        for p, q in zip(a, b, strict=True):
            tol = FUSED[q.dtype]
            assert torch.isfinite(p).all(), f"{name} step {t}: non-finite weights"
            assert torch.allclose(p, q, rtol=tol.rtol, atol=tol.atol), f"{name} step {t}: {(p - q).abs().max()}"
        for p, q in zip(a, b, strict=True):
            for key, val in ref.state[q].items():
                if isinstance(val, torch.Tensor) and val.dim():
                    tol = FUSED[val.dtype]
                    got = ours.state[p][key].to(val.dtype)
                    assert torch.allclose(got, val, rtol=tol.rtol, atol=tol.atol), f"{name} state {key} step {t}"


@pytest.mark.parametrize("name,kw", [*CONFIGS, MUON], ids=[c[0] for c in [*CONFIGS, MUON]])
def test_a_failure_at_a_kernel_call_finishes_the_step_once_and_goes_on_unfused(name, kw, monkeypatch):
    """The first step's second compiled call raises (after the first one updated its parameters): the rest
    of that step runs the eager chunk body, one warning, later steps unfused; an inf step is skipped."""
    _run(name, kw, steps=1, inf_step=None)  # the kernels compiled and probed (cached in the process)
    monkeypatch.setattr(_fused, "_failed", set())
    monkeypatch.setattr(_fused, "_warned", set())
    calls = []
    call = _fused._Direct.__call__

    def breaks_second(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated: the generated code fails at its call")
        return call(self, *args)

    monkeypatch.setattr(_fused._Direct, "__call__", breaks_second)
    with pytest.warns(RuntimeWarning, match="simulated") as record:
        _run(name, kw, steps=4, inf_step=2)
    assert len(calls) >= 2, "the injected failure never ran"
    assert len([w for w in record if "fused=True" in str(w.message)]) == 1
    assert _fused._failed == {"cpu"}


_HIDDEN = textwrap.dedent("""
    import sys, warnings
    import torch
    import torch._dynamo  # (torch's own optimizer base imports it, and with it parts of Inductor)
    for name in ("torch._inductor.compile_fx", "torch._inductor.custom_graph_pass", "torch._inductor.output_code",
                 "torch._inductor.config", "torch._guards", "torch.fx.experimental.proxy_tensor"):
        sys.modules[name] = None  # gone: importing it raises ImportError
    del torch._C._increment_version
    import optimlab, optimlab.nn, optimlab.optim as oo
    from optimlab.parity.tolerances import FUSED
    class Gone:  # the base class's private hook removed, for optimlab's classes (torch's reference keeps it)
        def __get__(self, obj, cls):
            raise AttributeError("gone")
    oo.Optimizer._accelerator_graph_capture_health_check = Gone()
    names = ["SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "ASGD", "NAdam", "RAdam", "RMSprop", "Rprop"]
    kws = {"SGD": {"momentum": 0.9}, "RMSprop": {"centered": True}}
    for name in names:
        for path in ({"foreach": False}, {"foreach": True}, {"fused": True}):
            torch.manual_seed(0)
            a = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(4))]
            b = [torch.nn.Parameter(p.detach().clone()) for p in a]
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                ours = getattr(oo, name)(a, lr=0.01, **kws.get(name, {}), **path)
                ref = getattr(torch.optim, name)(b, lr=0.01, **kws.get(name, {}), foreach=False)
                for t in range(3):
                    for p, q in zip(a, b):
                        p.grad = torch.randn(p.shape)
                        q.grad = p.grad.clone()
                    ours.step(); ref.step()
            fell_back = [w for w in seen if "fused=True could not compile" in str(w.message)]
            assert len(fell_back) == (1 if "fused" in path and name == "SGD" else 0), (name, path, fell_back)
            tol = FUSED[torch.float32]
            for p, q in zip(a, b):
                assert torch.allclose(p, q, rtol=tol.rtol, atol=tol.atol), (name, path, (p - q).abs().max())
    print("ok")
""")


def test_import_and_eager_paths_work_with_private_internals_hidden():
    """Inductor, make_fx and ``torch._C._increment_version`` gone (a future torch): import works, the
    per-tensor and foreach paths match torch, ``fused=True`` warns once (for the process) and runs unfused."""
    out = subprocess.run([sys.executable, "-c", _HIDDEN], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
