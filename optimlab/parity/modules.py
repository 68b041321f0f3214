"""Parity of loss modules that hold parameters or return a tuple (AdaptiveLogSoftmaxWithLoss,
LinearCrossEntropyLoss), which the generic loss path (:mod:`.losses`) cannot express: both modules are built from
the same seed, torch's ``state_dict`` is loaded into ours (so a different init order cannot hide behind the seed,
and loading is checked), then every output, the input gradients and the parameter gradients are compared, and in
float64 the double backward. Exceptions must match torch's type, at construction and in forward.

Selected by a catalogue case's ``extra["run"] = run_module_case``; other keys: ``inputs`` (as for losses),
``grad_args`` (default ``(0,)``), ``double_backward`` (default True), ``method`` (a module method to compare instead
of ``forward``, e.g. ``"log_prob"``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..catalog import Case, Component
from . import compare
from ._common import call_both, dtype_name, fresh
from .results import CaseResult


def _outputs(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple) else [out]


def _build(cls: type, kw: dict[str, Any], dtype: torch.dtype, device: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(**fresh(kw)).to(device=device, dtype=dtype)


def run_module_case(comp: Component, case: Case, dtype: torch.dtype, device: str = "cpu",
                    seed: int = 0, compile: bool = False, **_: Any) -> CaseResult:
    """Compare ``optimlab.nn.<name>`` with ``torch.nn.<name>`` on one case (see the module docstring); with
    ``compile``, ours runs under ``torch.compile(fullgraph=True)`` against torch eager (no double backward)."""
    kw = dict(case.kwargs)
    res = CaseResult("losses", comp.name, case.name, dtype_name(dtype), device, True, kwargs=kw)
    ours_cls, ref_cls = comp.ours(), comp.reference()
    mo, mr, problem, raised = call_both(lambda: _build(ours_cls, kw, dtype, device, seed),
                                        lambda: _build(ref_cls, kw, dtype, device, seed))
    if problem or raised:
        res.passed, res.message = problem is None, problem or "both raise (construction)"
        return res
    missing = mo.load_state_dict(mr.state_dict())
    if missing.missing_keys or missing.unexpected_keys:
        res.passed, res.message = False, f"state_dict keys differ: {missing}"
        return res
    g = torch.Generator().manual_seed(seed)
    args = tuple(case.extra["inputs"](g, dtype, "cpu"))
    grad_args: Sequence[int] = tuple(case.get("grad_args", (0,)))

    def prepare() -> list[Any]:
        out = []
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor):
                a = a.detach().clone().to(device)
                if i in grad_args and a.is_floating_point():
                    a.requires_grad_(True)
            out.append(a)
        return out

    a_o, a_r = prepare(), prepare()
    method = case.get("method", "forward")
    fn_o = getattr(mo, method)
    if compile:
        torch._dynamo.reset()
        fn_o = torch.compile(fn_o, fullgraph=True)
    bitwise = case.bitwise and not compile
    out_o, out_r, problem, raised = call_both(lambda: fn_o(*a_o), lambda: getattr(mr, method)(*a_r))
    if problem or raised:
        res.passed, res.message = problem is None, problem or "both raise (forward)"
        return res
    outs_o, outs_r = _outputs(out_o), _outputs(out_r)
    diff = compare.Diff()
    if len(outs_o) != len(outs_r) or type(out_o).__name__ != type(out_r).__name__:
        diff.merge(compare.Diff(ok=False, what=f"output types differ: {type(out_o)} vs {type(out_r)}"))
    for k, (x, y) in enumerate(zip(outs_o, outs_r, strict=False)):
        diff.merge(compare.tensors(x, y, f"output[{k}]", bitwise))
    wrt_o = [a for a in a_o if isinstance(a, torch.Tensor) and a.requires_grad] + list(mo.parameters())
    wrt_r = [a for a in a_r if isinstance(a, torch.Tensor) and a.requires_grad] + list(mr.parameters())
    diffable = [i for i, y in enumerate(outs_r) if y.requires_grad]
    if diff.ok and diffable:
        gen = torch.Generator().manual_seed(seed + 1)
        cots = [torch.randn(outs_r[i].shape, generator=gen, dtype=torch.float64).to(device, outs_r[i].dtype)
                for i in diffable]
        create = bool(case.get("double_backward", True)) and dtype == torch.float64 and not compile
        s_o = sum((outs_o[i] * c).sum() for i, c in zip(diffable, cots, strict=True))
        s_r = sum((outs_r[i] * c).sum() for i, c in zip(diffable, cots, strict=True))
        gr_o = torch.autograd.grad(s_o, wrt_o, allow_unused=True, materialize_grads=True, create_graph=create)
        gr_r = torch.autograd.grad(s_r, wrt_r, allow_unused=True, materialize_grads=True, create_graph=create)
        for k, (x, y) in enumerate(zip(gr_o, gr_r, strict=True)):
            diff.merge(compare.tensors(x, y, f"grad[{k}]", bitwise))
        pairs = [(x, y) for x, y in zip(gr_o, gr_r, strict=True) if y.requires_grad]
        if create and diff.ok and pairs:
            vs = [torch.randn(y.shape, generator=gen, dtype=torch.float64).to(device) for _, y in pairs]
            t_o = sum((x * v).sum() for (x, _), v in zip(pairs, vs, strict=True))
            t_r = sum((y * v).sum() for (_, y), v in zip(pairs, vs, strict=True))
            gg_o = torch.autograd.grad(t_o, wrt_o, allow_unused=True, materialize_grads=True) \
                if t_o.requires_grad else [torch.zeros_like(w) for w in wrt_o]
            gg_r = torch.autograd.grad(t_r, wrt_r, allow_unused=True, materialize_grads=True)
            for k, (x, y) in enumerate(zip(gg_o, gg_r, strict=True)):
                diff.merge(compare.tensors(x, y, f"grad-grad[{k}]", bitwise))
    res.passed, res.max_abs, res.max_rel, res.message = diff.ok, diff.max_abs, diff.max_rel, diff.what
    return res
