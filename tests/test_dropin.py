"""Drop-in: every catalogued class subclasses torch's base and has torch's exact signature and
defaults; functional forms likewise; optimlab/ calls none of torch's own implementations."""

from __future__ import annotations

import inspect
import pathlib
import subprocess
import sys

import pytest
import torch

from optimlab import catalog

COMPONENTS = catalog.components()
BASES = {"losses": torch.nn.Module, "optim": torch.optim.Optimizer, "sched": torch.optim.lr_scheduler.LRScheduler}


def _params(fn):
    sig = inspect.signature(fn)
    out = []
    for p in sig.parameters.values():
        default = p.default
        if isinstance(default, torch.Tensor):
            default = ("tensor", default.tolist())
        out.append((p.name, p.kind, default if default is not inspect.Parameter.empty else "<required>"))
    return out


@pytest.mark.parametrize("comp", COMPONENTS, ids=[f"{c.family}:{c.name}" for c in COMPONENTS])
def test_subclasses_torch_base_with_torch_signature(comp):
    ours, ref = comp.ours(), comp.reference()
    assert issubclass(ours, BASES[comp.family])
    assert ours is not ref and ours.__module__.startswith("optimlab.")
    params = _params(ours.__init__)
    if comp.family == "optim" and [p[0] for p in params[-2:]] == ["state_dtype", "param_rounding"]:
        # optimlab's low-precision state (issue 27): two trailing keyword-only options, off by default
        assert params[-2:] == [("state_dtype", inspect.Parameter.KEYWORD_ONLY, None),
                               ("param_rounding", inspect.Parameter.KEYWORD_ONLY, None)]
        params = params[:-2]
    elif comp.family == "optim" and params and params[-1][0] == "state_dtype":
        # Muon: the stored momentum only (its update is not elementwise: no param_rounding)
        assert params[-1] == ("state_dtype", inspect.Parameter.KEYWORD_ONLY, None)
        params = params[:-1]
    if comp.family == "optim" and params and params[-1][0] == "fused" \
            and "fused" not in inspect.signature(ref.__init__).parameters:
        # optimlab's one extension (issue 10): a trailing keyword-only fused=None where torch has no fused path
        assert params[-1] == ("fused", inspect.Parameter.KEYWORD_ONLY, None)
        params = params[:-1]
    ref_params = _params(ref.__init__)
    ref_names = {p[0] for p in ref_params}
    newer = {arg for arg, release in catalog.NEWER_API.get(f"{comp.family}:{comp.name}", {}).items()
             if not catalog.torch_has(release)}
    # an argument a newer torch added is offered on every torch: where the installed torch predates it, ours
    # has exactly that one extra (keyword-only) parameter, and nothing else differs
    assert newer.isdisjoint(ref_names)
    extra = [p for p in params if p[0] in newer]
    assert {p[0] for p in extra} == newer
    assert all(p[1] == inspect.Parameter.KEYWORD_ONLY for p in extra)
    assert [p for p in params if p[0] not in newer] == ref_params


FUNCS = [c for c in COMPONENTS if c.functional]


@pytest.mark.parametrize("comp", FUNCS, ids=[c.functional for c in FUNCS])
def test_functional_signature(comp):
    ours = catalog.resolve(f"{catalog.FUNCTIONAL[0]}.{comp.functional}")
    ref = catalog.resolve(f"{catalog.FUNCTIONAL[1]}.{comp.functional}")
    assert ours.__module__.startswith("optimlab.")
    assert _params(ours) == _params(ref)


NO_WRAPPING = pathlib.Path(__file__).resolve().parents[2] / "shared" / "tools" / "no_wrapping.py"


@pytest.mark.skipif(not NO_WRAPPING.exists(), reason="the workplace's no_wrapping checker (../shared/tools) is "
                    "not beside this checkout; it only exists in the development workplace")
def test_no_call_into_torch_implementations():
    pkg = pathlib.Path(__file__).resolve().parents[1] / "optimlab"
    res = subprocess.run([sys.executable, str(NO_WRAPPING), str(pkg)], capture_output=True, text=True)
    hits = [line for line in res.stdout.splitlines() if not line.startswith("calls into")]
    # The one reference allowed: torch's ReduceLROnPlateau as a second base class of ours, for the
    # isinstance checks of Lightning and transformers' Trainer (issue 12); none of its code runs
    # (test_plateau_runs_none_of_torchs_code).
    allowed = [f"{pkg / 'optim' / 'lr_scheduler' / 'plateau.py'}:{_plateau_base_line()}: "
               "torch.optim.lr_scheduler.ReduceLROnPlateau"]
    assert hits == allowed, res.stdout


def _plateau_base_line() -> int:
    import optimlab.optim.lr_scheduler.plateau as mod

    lines = inspect.getsource(mod).splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith("class ReduceLROnPlateau("))


def test_plateau_runs_none_of_torchs_code(monkeypatch):
    """optimlab's ReduceLROnPlateau is an instance of torch's (trainers check that), but every method
    torch's class defines is our own: with each of torch's replaced by a trap, a schedule still runs,
    equal to torch's own run."""
    from optimlab.optim import lr_scheduler as L

    T = torch.optim.lr_scheduler.ReduceLROnPlateau
    assert issubclass(L.ReduceLROnPlateau, T) and issubclass(L.ReduceLROnPlateau, torch.optim.lr_scheduler.LRScheduler)
    own = [k for k in vars(T) if k not in ("__doc__", "__module__", "__dict__", "__weakref__")]
    assert own, "torch's class defines methods"
    assert all(getattr(L.ReduceLROnPlateau, k) is not getattr(T, k) for k in own)
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]

    def run(cls):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = cls(opt, patience=1, factor=0.5, cooldown=1)
        lrs = []
        for m in metrics:
            sched.step(m)
            lrs.append(sched.get_last_lr()[0])
        return lrs, sched.state_dict()

    ref_lrs, ref_state = run(T)

    def trap(*args, **kwargs):
        raise AssertionError("torch's ReduceLROnPlateau code ran")

    for k in own:
        monkeypatch.setattr(T, k, property(trap) if isinstance(vars(T)[k], property) else trap)
    lrs, state = run(L.ReduceLROnPlateau)
    assert lrs == ref_lrs and len(set(lrs)) > 2
    assert {k: v for k, v in state.items() if k != "_is_better"} == {k: v for k, v in ref_state.items()
                                                                     if k != "_is_better"}
