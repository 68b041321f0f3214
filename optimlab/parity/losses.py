"""Loss parity: forward value, input gradients and (float64) double backward for identical inputs.

Both the module (``optimlab.nn.X(**kwargs)``) and, where catalogued, the functional form
(``optimlab.nn.functional.x(*inputs, **kwargs)``) are compared with torch's.

Case ``extra`` keys: ``inputs`` (callable ``(gen, dtype, device) -> tuple`` of forward arguments),
``grad_args`` (indices of the arguments to differentiate, default ``(0,)``; non-floating ones are
ignored), ``double_backward`` (default True: checked in float64), ``functional`` (default True),
``module`` (default True), ``accuracy`` (float32 results may pass through accuracy mode instead of the table, see
:mod:`.tolerances`), ``accuracy_check`` (default True: every float32 result must also be as accurate as torch's
against float64, :func:`.compare.accurate`).

``run_case(..., compile=True)`` is the compiled dimension: optimlab's module (or, without one, its functional
form) runs through ``torch.compile(fullgraph=True)`` and is compared, forward and input gradients, with torch's
*eager* result under ``tolerances.COMPILED_LOSS``. Where ours cannot be traced in one graph, torch's own is tried:
if torch's cannot either, ours is compiled with graph breaks and the case says so; otherwise the case fails.
Cases where torch raises are not compiled (the eager run checks the exception).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..catalog import FUNCTIONAL, Case, Component, resolve
from . import compare
from ._common import call_both, dtype_name, fresh
from .results import CaseResult
from .tolerances import COMPILED_LOSS


def _prepare(args: Sequence[Any], grad_args: Sequence[int], device: str) -> list[Any]:
    out = []
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            a = a.detach().clone().to(device)
            if i in grad_args and (a.is_floating_point() or a.is_complex()):
                a.requires_grad_(True)
        out.append(a)
    return out


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], go: torch.Tensor, create_graph: bool) -> tuple:
    return torch.autograd.grad(out, inputs, go, create_graph=create_graph, allow_unused=True)


def compare_callables(ours: Callable[..., torch.Tensor], ref: Callable[..., torch.Tensor], args: Sequence[Any],
                      grad_args: Sequence[int], dtype: torch.dtype, device: str, bitwise: bool,
                      double_backward: bool, seed: int, label: str, accuracy: bool = False,
                      accuracy_check: bool = True, compiled: bool = False) -> compare.Diff:
    """Forward, backward and double backward of two loss callables on the same inputs. In float32, torch's
    float64 evaluation of the same inputs is also computed: every result must be as accurate as torch's
    (``accuracy_check``), and with ``accuracy`` it is the fallback reference. ``compiled``: ``ours`` is a
    compiled callable, compared with ``tolerances.COMPILED_LOSS`` (no double backward, no accuracy check, and no
    warning comparison: a traced function does not warn)."""
    a_o, a_r = _prepare(args, grad_args, device), _prepare(args, grad_args, device)
    out_o, out_r, problem, raised = call_both(lambda: ours(*a_o), lambda: ref(*a_r), warnings_match=not compiled)
    if problem:
        return compare.Diff(ok=False, what=f"{label}: {problem}")
    if raised:
        return compare.Diff()
    for a, orig in zip(a_o, args, strict=True):  # the inputs must come back unmodified
        if isinstance(orig, torch.Tensor) and not torch.equal(a.detach().cpu(), orig.detach().cpu()):
            if orig.is_floating_point() and torch.equal(a.isnan(), orig.to(a.device).isnan()):
                continue
            return compare.Diff(ok=False, what=f"{label}: an input was modified in place")
    want64 = dtype == torch.float32 and not compiled and (accuracy or accuracy_check)
    ref64 = _float64_reference(ref, args, grad_args, device) if want64 else None
    tol = COMPILED_LOSS.get(dtype) if compiled else None

    def check(x: torch.Tensor, y: torch.Tensor, what: str, k: int) -> compare.Diff:
        if ref64 is None or ref64[k] is None:
            return compare.tensors(x, y, what, bitwise and not compiled, tol=tol)
        diff = compare.accuracy(x, y, ref64[k], what) if accuracy else compare.tensors(x, y, what, bitwise)
        if accuracy_check and diff.ok and isinstance(x, torch.Tensor) and isinstance(ref64[k], torch.Tensor):
            diff.merge(compare.accurate(x, y, ref64[k], what))
        return diff

    diff = check(out_o, out_r, f"{label} forward", 0)
    in_o = [a for a in a_o if isinstance(a, torch.Tensor) and a.requires_grad]
    in_r = [a for a in a_r if isinstance(a, torch.Tensor) and a.requires_grad]
    if not in_r or not out_r.requires_grad or not diff.ok:
        return diff
    if not out_o.requires_grad:
        return diff.merge(compare.Diff(ok=False, what=f"{label}: optimlab's output does not require grad"))
    g = torch.Generator().manual_seed(seed + 1)
    go = torch.randn(out_r.shape, generator=g, dtype=torch.float64).to(device=device, dtype=out_r.dtype)
    create = double_backward and dtype == torch.float64 and not compiled
    gr_o, gr_r = _grads(out_o, in_o, go, create), _grads(out_r, in_r, go, create)
    if ref64 is not None:
        ref64 = [ref64[0], *_grads(ref64[0], ref64[1], go.to(torch.float64), False)]
    for i, (x, y) in enumerate(zip(gr_o, gr_r, strict=True)):
        if y is None:
            continue
        if x is None:
            x = torch.zeros_like(y)
        diff.merge(check(x, y, f"{label} grad[{i}]", i + 1))
    if not create or not diff.ok:
        return diff
    pairs = [(x, y) for x, y in zip(gr_o, gr_r, strict=True) if y is not None and y.requires_grad]
    if not pairs:
        return diff
    vs = [torch.randn(y.shape, generator=g, dtype=torch.float64).to(device) for _, y in pairs]
    s_o = sum((x * v).sum() for (x, _), v in zip(pairs, vs, strict=True))
    s_r = sum((y * v).sum() for (_, y), v in zip(pairs, vs, strict=True))
    # A gradient that does not depend on the inputs (a loss linear in them, e.g. NLL) has zero second
    # derivatives: compared as zeros against torch's.
    gg_o = torch.autograd.grad(s_o, in_o, allow_unused=True) if s_o.requires_grad else (None,) * len(in_o)
    gg_r = torch.autograd.grad(s_r, in_r, allow_unused=True)
    for i, (x, y) in enumerate(zip(gg_o, gg_r, strict=True)):
        if y is None:
            continue
        if x is None:
            x = torch.zeros_like(y)
        diff.merge(compare.tensors(x, y, f"{label} grad-grad[{i}]", bitwise))
    return diff


def _float64_reference(ref: Callable[..., torch.Tensor], args: Sequence[Any], grad_args: Sequence[int],
                       device: str) -> list[Any] | None:
    """torch's output on the floating inputs cast to float64, and those inputs (for its gradients)."""
    up = [a.detach().to(torch.float64) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    a64 = _prepare(up, grad_args, device)
    try:
        out = ref(*a64)
    except Exception:  # noqa: BLE001 - no float64 reference: plain comparison only
        return None
    return [out, [a for a in a64 if isinstance(a, torch.Tensor) and a.requires_grad]]


def make_inputs(case: Case, dtype: torch.dtype, device: str, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return tuple(case.extra["inputs"](g, dtype, "cpu"))


def run_case(comp: Component, case: Case, dtype: torch.dtype, device: str = "cpu", steps: int | None = None,
             ours_cls: type | None = None, ref_cls: type | None = None, seed: int = 0,
             kwargs: dict[str, Any] | None = None, ours_fn: Callable | None = None,
             ref_fn: Callable | None = None, compile: bool = False) -> CaseResult:
    """Compare one loss case (module and functional form; with ``compile``, the compiled module, or the compiled
    functional form where there is no module, against torch eager). ``steps`` is unused (one evaluation)."""
    if case.get("run") is not None:  # a module with parameters or tuple outputs (see .modules)
        return case.extra["run"](comp, case, dtype, device, seed=seed, compile=compile)
    kw = dict(case.kwargs if kwargs is None else kwargs)
    scale = kw.pop("_scale", None)  # fuzzing: multiply the floating inputs (extreme magnitudes)
    res = CaseResult("losses", comp.name, case.name, dtype_name(dtype), device, True, kwargs=kw)
    args = make_inputs(case, dtype, device, seed)
    if scale is not None:
        args = tuple((a * scale).to(a.dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                     for a in args)
    grad_args = tuple(case.get("grad_args", (0,)))
    dbl = bool(case.get("double_backward", True))
    diff = compare.Diff()
    pairs: list[tuple[str, Callable, Callable]] = []
    if case.get("module", True):
        ours_cls = ours_cls or comp.ours()
        ref_cls = ref_cls or comp.reference()
        made = call_both(lambda: ours_cls(**fresh(kw)), lambda: ref_cls(**fresh(kw)))
        if made[2] or made[3]:
            res.passed, res.message = made[2] is None, made[2] or "both raise (construction)"
            return res
        pairs.append(("module", made[0].to(device), made[1].to(device)))
    if comp.functional and case.get("functional", True) and not (compile and pairs):
        f_o = ours_fn or resolve(f"{FUNCTIONAL[0]}.{comp.functional}")
        f_r = ref_fn or resolve(f"{FUNCTIONAL[1]}.{comp.functional}")
        k_o, k_r = fresh(kw), fresh(kw)
        for k in (k_o, k_r):
            for name, v in k.items():
                if isinstance(v, torch.Tensor):
                    k[name] = v.to(device)
        pairs.append(("functional", functools.partial(f_o, **k_o), functools.partial(f_r, **k_r)))
    notes = []
    for label, o, r in pairs:
        if compile:
            o, label, note = _compiled(o, r, args, grad_args, device, label)
            if o is None:
                diff.merge(compare.Diff(ok=False, what=note))
                continue
            notes += [note] if note else []
        diff.merge(compare_callables(o, r, args, grad_args, dtype, device, case.bitwise, dbl, seed, label,
                                     accuracy=bool(case.get("accuracy", False)),
                                     accuracy_check=bool(case.get("accuracy_check", True)), compiled=compile))
    res.passed, res.max_abs, res.max_rel = diff.ok, diff.max_abs, diff.max_rel
    res.message = diff.what or "; ".join(notes)
    return res


def _compiled(ours: Callable, ref: Callable, args: Sequence[Any], grad_args: Sequence[int], device: str,
              label: str) -> tuple[Callable | None, str, str]:
    """``torch.compile(ours, fullgraph=True)``, traced here on the case's inputs, forward and backward; if that
    cannot trace but torch's own cannot either, ours compiled with graph breaks; ``None`` and the reason when
    ours fails where torch's compiles. Returns (callable, label, note). Where torch raises on the inputs, ours
    stays eager (no compiled dimension for an error case)."""
    torch._dynamo.reset()  # a fresh cache per case: a recompile limit hit by earlier cases must not leak in

    def trace(fn: Callable, fullgraph: bool) -> tuple[Callable, BaseException | None]:
        compiled = torch.compile(fn, fullgraph=fullgraph)
        a = _prepare(args, grad_args, device)
        try:
            out = compiled(*a)
            leaves = [t for t in a if isinstance(t, torch.Tensor) and t.requires_grad]
            if leaves and isinstance(out, torch.Tensor) and out.requires_grad:
                torch.autograd.grad(out, leaves, torch.ones_like(out), allow_unused=True)
        except Exception as e:  # noqa: BLE001 - reported
            return compiled, e
        return compiled, None

    try:
        ref(*_prepare(args, grad_args, device))
    except Exception:  # noqa: BLE001 - an error case: compared eagerly
        return ours, f"{label} (eager: torch raises)", f"{label}: torch raises on these inputs, compared eagerly"
    compiled, err = trace(ours, True)
    if err is None:
        return compiled, f"{label} compiled", ""
    _, ref_err = trace(ref, True)
    if ref_err is None:
        return None, label, f"{label}: fullgraph compile fails where torch's compiles: {type(err).__name__}: " + \
            str(err).splitlines()[0][:200]
    compiled, err = trace(ours, False)
    if err is not None:
        return None, label, f"{label}: compile (with graph breaks) fails: {type(err).__name__}: " + \
            str(err).splitlines()[0][:200]
    return compiled, f"{label} compiled", f"{label}: not one graph, as torch's is not either ({type(ref_err).__name__})"
