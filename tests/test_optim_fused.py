"""``fused=True`` (optimlab/optim/_fused.py): the compiled rule against torch's for-loop results for
every elementwise optimizer, no recompilation in training, GradScaler's contract, the fallback when
compiling fails, and the inline path under an outer torch.compile.

Compiles are the cost here (seconds each on 2 cores, cached on disk afterwards), so each optimizer
gets one configuration that turns on the flags that change its graph; torch's own fused kernels are
compared for SGD/Adam/AdamW/Adagrad by the parity catalogue's fused cases.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import optimlab.optim as oo
from optimlab.optim import _fused
from optimlab.parity.tolerances import FUSED

#: (optimizer, kwargs): the flags that select different branches of each rule
CONFIGS = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05}),
    ("AdamW", {"lr": 0.01, "maximize": True}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01}),
    ("Adadelta", {"lr": 0.5, "weight_decay": 0.01}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.01}),
    ("ASGD", {"lr": 0.01, "t0": 3, "weight_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.01}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.9}),
    ("Rprop", {"lr": 0.01}),
    ("Adafactor", {"lr": 0.05, "weight_decay": 0.05, "maximize": True}),  # shaped: reductions per parameter
]
SHAPES = [(7, 5), (5,), (1,), (3, 4, 2), (33,), (6,)]  # (1,) runs eagerly (no 1-element slots)


def _params(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in SHAPES]


def _grads(step: int, params, dtype=torch.float32):
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, generator=g, dtype=dtype) for p in params]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    tol = FUSED[b.dtype] if b.is_floating_point() else None
    return torch.equal(a, b) if tol is None else torch.allclose(a, b, rtol=tol.rtol, atol=tol.atol)


def _lockstep(name, kw, steps=10, ours_kw=None, each_step=None):
    a, b = _params(), _params()
    ours = getattr(oo, name)(a, **kw, **(ours_kw or {"fused": True}))
    ref = getattr(torch.optim, name)(b, **kw, foreach=False)
    for t in range(steps):
        for p, q, g in zip(a, b, _grads(t, a), strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
        if each_step is not None:
            each_step(t, ours, ref)
        for p, q in zip(a, b, strict=True):
            assert _close(p.detach(), q.detach()), f"{name} step {t}: {(p - q).abs().max().item()}"
        for p, q in zip(a, b, strict=True):
            for key, val in ref.state[q].items():
                if isinstance(val, torch.Tensor):
                    assert _close(ours.state[p][key].to(val.device, val.dtype), val), f"{name} state {key} step {t}"
    return ours, ref


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_fused_matches_torch_for_loop(name, kw):
    before = _fused._failed.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback warning would mean nothing was compiled
        _lockstep(name, kw)
    assert _fused._failed == before
    rule = f"{name.lower().removesuffix('w')}_rule"
    assert any(key[0].__name__ == rule for key in _fused._kernels) or name == "AdamW"


def test_no_recompile_for_lr_schedule_new_group_and_checkpoint():
    _lockstep("Adam", {"lr": 0.01}, steps=1)  # compiled (or loaded) once
    graphs = len(_fused._kernels)
    a, b = _params(), _params()
    ours, ref = oo.Adam(a[:3], lr=0.01, fused=True), torch.optim.Adam(b[:3], lr=0.01, foreach=False)
    sched_o = torch.optim.lr_scheduler.ExponentialLR(ours, 0.7)
    sched_r = torch.optim.lr_scheduler.ExponentialLR(ref, 0.7)
    for t in range(4):
        if t == 2:  # a new group of the same dtype/device, another lr
            ours.add_param_group({"params": a[3:], "lr": 0.02})
            ref.add_param_group({"params": b[3:], "lr": 0.02})
        for p, q, g in zip(a, b, _grads(t, a), strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
        sched_o.step()
        sched_r.step()
    for p, q in zip(a, b, strict=True):  # the scheduled lr and the added group, in lockstep with torch
        assert _close(p.detach(), q.detach())
    fresh = oo.Adam([{"params": a[:3]}, {"params": a[3:], "lr": 0.02}], lr=0.01, fused=True)
    fresh.load_state_dict(ours.state_dict())
    for p, g in zip(a, _grads(9, a), strict=True):
        p.grad = g
    fresh.step()
    assert len(_fused._kernels) == graphs


def _scaler_pair(found: float):
    a, b = _params(), _params()
    ours, ref = oo.Adam(a, lr=0.01, fused=True), torch.optim.Adam(b, lr=0.01, fused=True)
    for opt in (ours, ref):
        opt.grad_scale = torch.tensor(4.0)
        opt.found_inf = torch.tensor(0.0)
    for t in range(3):
        for opt, ps in ((ours, a), (ref, b)):
            opt.found_inf = torch.tensor(found if t == 2 else 0.0)
            for p, g in zip(ps, _grads(t, ps), strict=True):
                p.grad = g * 4.0
            opt.step()
    return a, b, ours, ref


@pytest.mark.parametrize("found", [0.0, 1.0])
def test_grad_scaler_contract_like_torch_fused(found):
    a, b, ours, ref = _scaler_pair(found)
    for p, q in zip(a, b, strict=True):
        assert _close(p.detach(), q.detach())
        assert _close(p.grad, q.grad)  # written back unscaled (found_inf=0) or left alone, as torch's kernel
        assert torch.equal(ours.state[p]["step"], ref.state[q]["step"])
        assert _close(ours.state[p]["exp_avg_sq"], ref.state[q]["exp_avg_sq"])


def test_grad_scaler_steps_without_host_sync(monkeypatch):
    a = _params()
    opt = oo.Adam(a, lr=0.01, fused=True)
    opt.grad_scale, opt.found_inf = torch.tensor(2.0), torch.tensor(0.0)
    for p, g in zip(a, _grads(0, a), strict=True):
        p.grad = g
    opt.step()  # compile outside the check
    opt.found_inf = torch.tensor(1.0)

    def no_read(*args, **kwargs):
        raise AssertionError("found_inf was read on the host")

    monkeypatch.setattr(opt, "found_inf", torch.tensor(1.0))
    monkeypatch.setattr(torch.Tensor, "__float__", no_read, raising=False)
    monkeypatch.setattr(torch.Tensor, "__bool__", no_read, raising=False)
    monkeypatch.setattr(torch.Tensor, "item", no_read)
    assert opt._amp(opt.param_groups[0]) == (None, None)  # the kernel's to apply: the base class does nothing
    assert opt._amp_gate(opt.param_groups[0], a)


def test_compiler_failure_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(_fused, "_failed", set())
    monkeypatch.setattr(_fused, "_warned", set())

    def broken(*args, **kwargs):
        raise RuntimeError("simulated: no C++ compiler")

    monkeypatch.setattr(_fused, "_kernels", {})
    monkeypatch.setattr(_fused, "_compile", broken)
    with pytest.warns(RuntimeWarning, match="fused=True could not compile") as record:
        _lockstep("Adam", {"lr": 0.01, "weight_decay": 0.1}, steps=4)
        _lockstep("SGD", {"lr": 0.05, "momentum": 0.9}, steps=2)
    assert len([w for w in record if "could not compile" in str(w.message)]) == 1
    assert _fused._failed == {"cpu"}


def test_under_outer_compile_the_rule_runs_inline():
    a, b = _params(), _params()
    ours, ref = oo.SGD(a, lr=0.05, momentum=0.9, fused=True), torch.optim.SGD(b, lr=0.05, momentum=0.9)
    n = len(_fused._kernels)
    step = torch.compile(ours.step, backend="eager")
    for t in range(3):
        for p, q, g in zip(a, b, _grads(t, a), strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        step()
        ref.step()
    for p, q in zip(a, b, strict=True):
        assert _close(p.detach(), q.detach())
    assert len(_fused._kernels) == n  # no nested compile


def test_default_path_is_not_fused():
    opt = oo.Adam(_params(), lr=0.01)
    assert not _fused.active(opt.param_groups[0])
    assert oo.RMSprop(_params()).defaults.keys() == torch.optim.RMSprop(_params()).defaults.keys()


@pytest.mark.parametrize("name", ["RMSprop", "ASGD", "Rprop"])
def test_fused_constructor_checks_like_torch(name):
    with pytest.raises(RuntimeError, match="foreach"):
        getattr(oo, name)(_params(), fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="differentiable"):
        getattr(oo, name)(_params(), fused=True, differentiable=True)
    assert getattr(oo, name)(_params(), fused=True)._step_supports_amp_scaling


def test_bench_suite_writes_results_and_chart(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "optim_suite.py"
    spec = importlib.util.spec_from_file_location("optim_suite_under_test", path)
    suite = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = suite
    spec.loader.exec_module(suite)
    rows = suite.run("cpu", rounds=2, warmup=1, algos=["SGD", "Rprop", "Muon"], shapes=[(64, 8), (8,), (3,), (16, 24)])
    assert [r.name for r in rows] == ["SGD", "Rprop", "Muon"]
    assert suite.shapes_for("Muon", [(64, 8), (8,), (3,), (16, 24)]) == [(16, 24)]  # hidden matrices only
    ours = {"optimlab default", "optimlab fused", suite.TWIN, suite.SCHEDULED}
    assert set(rows[2].times) == {"torch for-loop", *ours}  # torch: one path
    assert set(rows[0].times) == {"torch for-loop", "torch foreach", "torch fused", *ours}
    assert "torch fused" not in rows[1].times  # torch has no fused Rprop
    assert all(len(t) == 2 for r in rows for t in r.times.values()) and all(len(r.floor) == 2 for r in rows)
    suite.write_results(rows, "cpu", tmp_path / "RESULTS.md", tmp_path / "chart.png", rounds=2)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| SGD |" in text and "| Rprop |" in text and "| Muon |" in text and torch.__version__ in text
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def _perturb(t, ours, ref):
    """What a training script may do between steps, done to both optimizers alike: swap a parameter's storage
    (``Module.to``-style ``p.data = …``), replace a state tensor, reset a step counter, reload the state."""
    for opt in (ours, ref):
        params = [p for g in opt.param_groups for p in g["params"]]
        if t == 1:
            for p in params:
                p.data = p.data.clone()
        elif t == 2:
            st = opt.state[params[0]]
            key = next(k for k, v in st.items() if isinstance(v, torch.Tensor) and v.dim() and k != "step")
            st[key] = st[key].clone()
        elif t == 3:
            st = opt.state[params[3]]
            st["step"] = torch.zeros_like(st["step"])
        elif t == 4:
            opt.load_state_dict(opt.state_dict())


@pytest.mark.parametrize("name,kw", [("Adam", {"lr": 0.01}), ("Adadelta", {"lr": 0.5})],
                         ids=["step-reading rule", "step-free rule"])
def test_cached_calls_follow_new_storage_state_and_counters(name, kw, monkeypatch):
    """The per-group plan of compiled calls (``_fused._Plan``) is rebuilt whenever what it holds changes: each
    perturbation would leave a stale plan writing old tensors, and the lockstep comparison would fail."""
    builds = []
    build = _fused._build
    monkeypatch.setattr(_fused, "_build", lambda *a: builds.append(1) or build(*a))
    _lockstep(name, kw, steps=7, each_step=_perturb)
    assert len(builds) == 5  # first step, then after each of the four perturbations: reused otherwise


def test_noncontiguous_gradient_is_not_passed_flat():
    a, b = _params(), _params()
    ours, ref = oo.Adam(a, lr=0.01, fused=True), torch.optim.Adam(b, lr=0.01, foreach=False)
    for t in range(3):
        for p, q, g in zip(a, b, _grads(t, a), strict=True):
            if t == 1 and g.dim() == 2:  # same values, transposed strides
                g = g.t().contiguous().t()
            p.grad, q.grad = g.clone() if g.is_contiguous() else g, g.clone()
        ours.step()
        ref.step()
        for p, q in zip(a, b, strict=True):
            assert _close(p.detach(), q.detach()), t


def test_step_is_an_in_place_update_for_autograd():
    """The compiled call bumps the version counters of what it writes, as torch's fused kernels do: a
    parameter saved for backward and then stepped is caught by autograd, on every step (the first call
    goes through Inductor's wrappers, later ones straight into the generated C++ kernel)."""
    p = torch.nn.Parameter(torch.randn(100))
    opt = oo.Adam([p], lr=0.01, fused=True)
    for _ in range(3):
        x = torch.randn(100, requires_grad=True)
        y = (x * p).sum()
        p.grad = torch.randn(100)
        before = p._version
        opt.step()
        assert p._version > before and opt.state[p]["exp_avg"]._version > 0
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.backward()
    assert all(k.call is not None for variants in _fused._kernels.values() for _, k in variants)
    if p.is_cpu:  # from the second step on, each chunk's C++ kernel is called from its argument list
        assert all(isinstance(c[3], _fused._Bound) for plan in _fused._plans[opt].values() for c in plan.calls)


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_steady_steps_reuse_the_plan_and_read_nothing_on_the_host(name, kw, monkeypatch):
    """After the first step a fused step neither rebuilds its plan (a per-step Python value among the
    rule's lists, as ASGD's η and μ read with ``.item()`` once were, rebuilds it at every step) nor reads
    a tensor on the host (``.item()``: a device sync each on a GPU)."""
    a = _params()
    opt = getattr(oo, name)(a, **kw, fused=True)
    for t in range(2):
        for p, g in zip(a, _grads(t, a), strict=True):
            p.grad = g
        opt.step()
    builds, items = [], []
    build, item = _fused._build, torch.Tensor.item
    monkeypatch.setattr(_fused, "_build", lambda *args: builds.append(1) or build(*args))
    monkeypatch.setattr(torch.Tensor, "item", lambda self: items.append(1) or item(self))
    for t in range(2, 5):
        for p, g in zip(a, _grads(t, a), strict=True):
            p.grad = g
        opt.step()
    monkeypatch.undo()
    assert (len(builds), len(items)) == (0, 0)


def _size_dependent_rule(p, g):
    """A rule whose trace branches on a size: compiled from the example, it would be wrong for others."""
    if p.numel() % 16 == 0:
        p.sub_(g)
    else:
        p.add_(g)


def test_a_trace_that_depends_on_the_sizes_is_refused():
    """The chunk graphs are called with no guards, so a trace with any (here ``numel % 16 == 0``) must not
    be compiled: ``_compile`` raises, which :func:`_fused.apply` turns into the warned unfused fallback."""
    spec = (((torch.float32, 1), (torch.float32, 1)), None, False, False, None, 2, ())
    with pytest.raises(RuntimeError, match="depends on the sizes"):
        _fused._compile(_size_dependent_rule, {}, {}, spec, -1, torch.device("cpu"))


def test_sgd_first_momentum_step_compiles_nothing(monkeypatch):
    """SGD's first momentum step (buffers seeded with the gradient) happens once per parameter: it runs
    the chunks' body eagerly instead of compiling a graph for it, and stays in lockstep with torch."""
    compiled = []
    compile_ = _fused._compile
    monkeypatch.setattr(_fused, "_compile", lambda rule, consts, *a: compiled.append(consts["first"])
                        or compile_(rule, consts, *a))
    monkeypatch.setattr(_fused, "_kernels", {})
    seen = []
    _lockstep("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1}, steps=3,
              each_step=lambda t, ours, ref: seen.append(list(compiled)))
    assert seen == [[], [False], [False]]
