"""Scheduler parity: torch's scheduler and optimlab's drive two identical optimizers for N steps;
after every step each param group's lr (and momentum / betas where present) must agree within
:data:`optimlab.parity.tolerances.SCHED`.

Case ``extra`` keys: ``build`` (callable ``(namespace, optimizer) -> scheduler``; default
``namespace.<Name>(optimizer, **kwargs)``), ``optimizer`` ("SGD" with momentum 0.9, "Adam" for betas,
or "plain": no momentum nor betas), ``lrs`` (one lr per param group, default ``(0.1,)``), ``metrics``
(callable ``step -> float``, or a sequence cycled through, passed to ``step()``, for
ReduceLROnPlateau), ``epochs`` (callable ``step -> epoch`` passed as ``step(epoch)``), ``steps``
(overrides the default).

Both sides' ``get_last_lr()`` are compared too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from ..catalog import Case, Component
from . import compare
from ._common import call_both, fresh
from .results import CaseResult
from .tolerances import SCHED

DEFAULT_STEPS = 1000
HYPER = ("lr", "momentum", "betas")


class _StandIn(torch.optim.Optimizer):
    """An optimizer that only holds param groups (its step does nothing): used for "plain" (no
    momentum nor betas in ``defaults``) and while optimlab.optim lacks the requested class."""

    def __init__(self, params: Any, **defaults: Any) -> None:
        super().__init__(params, defaults)

    def step(self, closure: Any = None) -> None:
        return None


_STAND_IN_DEFAULTS: dict[str, dict[str, Any]] = {"Adam": {"betas": (0.9, 0.999)}, "plain": {}}


def make_optimizer(kind: str, lrs: tuple[float, ...]) -> torch.optim.Optimizer:
    """An optimizer with one parameter per group. Its type is irrelevant to a scheduler, which only
    reads and writes ``param_groups``; optimlab's own classes are used for both sides (a stand-in for
    "plain", or for a class optimlab.optim does not have yet)."""
    optim = importlib.import_module("optimlab.optim")
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "SGD":
        return optim.SGD(groups, lr=lrs[0], momentum=0.9)
    cls = getattr(optim, kind, None)
    if cls is None:
        return _StandIn(groups, lr=lrs[0], **_STAND_IN_DEFAULTS.get(kind, {}))
    return cls(groups, lr=lrs[0])


def metric_at(metrics: Any, step: int) -> float:
    """The metric fed at ``step`` (1-based): ``metrics(step)``, or a sequence cycled through."""
    return metrics(step) if callable(metrics) else metrics[(step - 1) % len(metrics)]


def hyper(opt: torch.optim.Optimizer) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for i, g in enumerate(opt.param_groups):
        for key in HYPER:
            if key not in g:
                continue
            vals = g[key] if isinstance(g[key], tuple) else (g[key],)
            out += [(f"group {i} {key}[{j}]", float(v)) for j, v in enumerate(vals)]
    return out


def _builder(name: str, case: Case, kwargs: dict[str, Any], ns_name: str) -> Callable[[torch.optim.Optimizer], Any]:
    ns = importlib.import_module(ns_name)
    custom = case.get("build")
    if custom is not None:
        return lambda opt: custom(ns, opt)
    return lambda opt: getattr(ns, name)(opt, **fresh(kwargs))


def run_case(comp: Component, case: Case, dtype: torch.dtype | None = None, device: str = "cpu",
             steps: int = DEFAULT_STEPS, ours_cls: type | None = None, ref_cls: type | None = None,
             seed: int = 0, kwargs: dict[str, Any] | None = None) -> CaseResult:
    """Step both schedulers ``steps`` times, comparing every group's lr/momentum after each step."""
    kw = dict(case.kwargs if kwargs is None else kwargs)
    steps = case.get("steps", steps)
    res = CaseResult("sched", comp.name, case.name, "-", device, True, kwargs=kw)
    lrs = tuple(case.get("lrs", (0.1,)))
    kind = case.get("optimizer", "SGD")
    o_opt, r_opt = make_optimizer(kind, lrs), make_optimizer(kind, lrs)
    ns_o, ns_r = comp.namespaces
    mk_o = (lambda opt: ours_cls(opt, **fresh(kw))) if ours_cls else _builder(comp.name, case, kw, ns_o)
    mk_r = (lambda opt: ref_cls(opt, **fresh(kw))) if ref_cls else _builder(comp.name, case, kw, ns_r)
    o, r, problem, raised = call_both(lambda: mk_o(o_opt), lambda: mk_r(r_opt))
    if problem or raised:
        res.passed, res.message = problem is None, problem or "both raise (construction)"
        return res
    metrics, epochs = case.get("metrics"), case.get("epochs")
    diff = compare.Diff()
    for step in range(0, steps + 1):
        if step:
            args = (metric_at(metrics, step),) if metrics is not None else ()
            if epochs is not None:
                args = (*args, epochs(step))

            def advance(opt: torch.optim.Optimizer, s: Any) -> Callable[[], None]:
                return lambda: (opt.step(), s.step(*args))

            _, _, problem, raised = call_both(advance(o_opt, o), advance(r_opt, r))
            if problem or raised:
                diff.merge(compare.Diff(ok=problem is None, what=problem or ""))
                if raised:
                    res.message = "both raise"
                    break
        for (what, v_o), (_, v_r) in zip(hyper(o_opt), hyper(r_opt), strict=True):
            diff.merge(compare.scalars(v_o, v_r, f"{what}", SCHED, case.bitwise))
        for j, (v_o, v_r) in enumerate(zip(o.get_last_lr(), r.get_last_lr(), strict=True)):
            diff.merge(compare.scalars(v_o, v_r, f"get_last_lr()[{j}]", SCHED, case.bitwise))
        if not diff.ok:
            res.first_bad_step = step
            break
    res.passed, res.max_abs, res.max_rel = diff.ok, diff.max_abs, diff.max_rel
    if not diff.ok:
        res.message = f"step {res.first_bad_step}: {diff.what}"
    return res
