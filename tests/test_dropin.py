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
    if comp.family == "optim" and params and params[-1][0] == "fused" \
            and "fused" not in inspect.signature(ref.__init__).parameters:
        # optimlab's one extension (issue 10): a trailing keyword-only fused=None where torch has no fused path
        assert params[-1] == ("fused", inspect.Parameter.KEYWORD_ONLY, None)
        params = params[:-1]
    assert params == _params(ref.__init__)


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
    assert res.returncode == 0, res.stdout
