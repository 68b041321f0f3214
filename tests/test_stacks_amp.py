"""optimlab under automatic mixed precision, against the same runs with torch's classes:
``torch.autocast`` (bfloat16 on CPU, float16 on CUDA) with ``torch.amp.GradScaler``, including steps
the scaler skips on inf gradients, on the default and fused optimizer paths; and every loss's result
dtype, value and input-gradient dtype under autocast."""

from __future__ import annotations

import warnings

import pytest
import torch
from _util import OPTIM_CONFIGS, raised
from torch import nn

import optimlab.nn as onn
import optimlab.optim as oo
from optimlab.catalog import components
from optimlab.parity import compare
from optimlab.parity._common import fresh
from optimlab.parity.losses import make_inputs
from optimlab.parity.optim import compare_optimizers

AMP_DTYPE = {"cpu": torch.bfloat16, "cuda": torch.float16}

# ------------------------------------------------------------------------------------------- losses

LOSS_CASES = [(comp, case) for comp in components("losses") for case in comp.cases]


def _build(cls, case, device, like=None):
    """The loss module (seeded: a parameterised one, such as AdaptiveLogSoftmaxWithLoss, holds weights;
    ours then loads torch's, ``like``)."""
    torch.manual_seed(0)
    module = cls(**fresh(case.kwargs)).to(device)
    if like is not None and len(like.state_dict()):
        module.load_state_dict(like.state_dict())
    return module


def _under_autocast(module, case, args, device):
    """``module(*args)`` under autocast; returns (loss tensor, gradient of the first input or None)."""
    args = tuple(a.detach().clone().to(device) if isinstance(a, torch.Tensor) else a for a in args)
    first = args[0]
    grad_ok = isinstance(first, torch.Tensor) and first.is_floating_point() and 0 in case.get("grad_args", (0,))
    if grad_ok:
        first.requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autocast(device, dtype=AMP_DTYPE[device]):
            out = module(*args)
        out = getattr(out, "loss", out)  # AdaptiveLogSoftmaxWithLoss returns (output, loss)
        grad = None
        if grad_ok and out.requires_grad:
            (grad,) = torch.autograd.grad(out.float().sum(), first, allow_unused=True)
    return out, grad


@pytest.mark.parametrize("input_dtype", [torch.float32, "amp"], ids=["float32-inputs", "amp-dtype-inputs"])
def test_losses_under_autocast(device, input_dtype):
    """Every catalogued loss case, module form, inside ``torch.autocast``: the same exception type as
    torch's, or the same result dtype and values (tolerance of that dtype), and the same dtype for the
    first input's gradient. Inputs are float32, or the autocast dtype (as a preceding autocast layer
    produces them); torch runs most of its losses in float32 there."""
    dtype = AMP_DTYPE[device] if input_dtype == "amp" else input_dtype
    checked, failures = 0, []
    for comp, case in LOSS_CASES:
        args = make_inputs(case, dtype, "cpu")
        got = {}
        ref_module = None
        for side, cls in (("torch", comp.reference()), ("ours", comp.ours())):
            err, _ = raised(lambda cls=cls: _build(cls, case, device, ref_module))
            if err is None:
                module = _build(cls, case, device, ref_module)
                ref_module = ref_module or module
                err, _ = raised(lambda m=module: _under_autocast(m, case, args, device))
            got[side] = err if err is not None else _under_autocast(module, case, args, device)
        label = f"{comp.name}[{case.name}]"
        o, r = got["ours"], got["torch"]
        if isinstance(o, type) or isinstance(r, type):
            if o is not r:
                name = {True: "raises {}", False: "returns"}
                failures.append(f"{label}: optimlab {name[isinstance(o, type)].format(o)}, torch "
                                f"{name[isinstance(r, type)].format(r)}")
            continue
        (out_o, g_o), (out_r, g_r) = o, r
        d = compare.tensors(out_o, out_r, f"{label} output")
        if not d.ok:
            failures.append(d.what)
        if (g_o is None) != (g_r is None) or (g_r is not None and g_o.dtype != g_r.dtype):
            failures.append(f"{label}: input gradient {None if g_o is None else g_o.dtype} vs torch's "
                            f"{None if g_r is None else g_r.dtype}")
        checked += 1
    assert not failures, "\n".join(failures[:20])
    assert checked > 300


# ------------------------------------------------------------------------------ GradScaler + optimizers

AMP_OPTIM = [(name, {}) for name in OPTIM_CONFIGS] + [(n, {"fused": True}) for n in ("SGD", "Adam", "AdamW", "Adagrad")]
STEPS, INF_STEPS = 10, (3, 4, 8)  # gradient set to inf before scaler.step at these steps


def _train(nn_ns, optim_ns, name, path, device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)).to(device)
    kw = {**OPTIM_CONFIGS[name], **path}
    opt = getattr(optim_ns, name)(model.parameters(), **kw)
    scaler = torch.amp.GradScaler(device, init_scale=2.0**12, growth_interval=2)
    loss_fn = nn_ns.CrossEntropyLoss()
    trace = []
    for step in range(STEPS):
        g = torch.Generator().manual_seed(step)
        x, y = torch.randn(16, 8, generator=g).to(device), torch.randint(0, 4, (16,), generator=g).to(device)
        opt.zero_grad()
        with torch.autocast(device, dtype=AMP_DTYPE[device]):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        if step in INF_STEPS:
            model[0].weight.grad[0, 0] = float("inf")
        before = [p.detach().clone() for p in model.parameters()]
        scaler.step(opt)
        scaler.update()
        unchanged = all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
        trace.append((loss.dtype, float(loss.detach()), scaler.get_scale(), unchanged))
    return model, opt, trace


@pytest.mark.parametrize("name,path", AMP_OPTIM, ids=[f"{n}{'-fused' if p else ''}" for n, p in AMP_OPTIM])
def test_grad_scaler_with_autocast(device, name, path):
    """optimlab's CrossEntropyLoss + optimizer vs torch's under autocast and GradScaler for 10 steps with
    inf gradients at three of them: the same loss dtype and values, the same scale after each update,
    parameters untouched exactly at the skipped steps, and parameters and state equal at the end
    (float32 tolerance: the fused paths evaluate the formulas in another order)."""
    m_o, o_o, t_o = _train(onn, oo, name, path, device)
    m_r, o_r, t_r = _train(torch.nn, torch.optim, name, path, device)
    assert [t[0] for t in t_o] == [t[0] for t in t_r] == [torch.float32] * STEPS
    assert [t[2] for t in t_o] == [t[2] for t in t_r]  # scale: backs off at inf steps, grows otherwise
    assert [t[3] for t in t_o] == [t[3] for t in t_r] == [s in INF_STEPS for s in range(STEPS)]
    assert [t[1] for t in t_o] == pytest.approx([t[1] for t in t_r], rel=1e-5)
    diff = compare_optimizers(o_o, o_r, m_o, m_r, bitwise=False)
    assert diff.ok, diff.what
