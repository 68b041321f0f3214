"""Optimizer parity: torch's optimizer and optimlab's step two identical models in lockstep.

Each step both models see the same batch; gradients come from a real loss (mean squared error of a
small network). After every step every parameter and every per-parameter state tensor (and the
param_groups' hyperparameters) are compared; the first step that diverges is reported.

Case ``extra`` keys: ``model`` ("mlp" | "bounded" | "complex" | "sparse" | "rosenbrock" | "matrix"), ``groups``
(a list of per-group overrides; parameters are dealt round-robin into the groups), ``lr_tensor`` (pass lr as a
0-d tensor), ``closure`` (call ``step(closure)`` and compare the losses it returns).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..catalog import Case, Component
from . import compare
from ._common import call_both, dtype_name, fresh
from .results import CaseResult
from .tolerances import FUSED, Tol, for_dtype

DEFAULT_STEPS = 50


class _Complex(nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 6, dtype=torch.complex128).to(dtype))
        self.b = nn.Parameter(torch.randn(4, dtype=torch.complex128).to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.view_as_real(x.to(self.w.dtype)[:, :6] @ self.w.T + self.b).flatten(1)


class _Rosenbrock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.xy = nn.Parameter(torch.tensor([-1.5, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.xy[0], self.xy[1]
        return ((1 - a) ** 2 + 100 * (b - a * a) ** 2).reshape(1, 1)


def make_model(kind: str, dtype: torch.dtype, device: str, seed: int = 0) -> nn.Module:
    """A small deterministic model of the given kind; the same seed gives the same weights."""
    torch.manual_seed(seed)
    if kind in ("mlp", "bounded"):
        # "bounded": the mlp with its outputs squashed into (-1, 1), so that a run that *maximizes* the loss
        # stays finite (the plain mlp's loss grows without bound, and two runs gone to inf/NaN prove nothing)
        head = (nn.Tanh(),) if kind == "bounded" else ()
        model: nn.Module = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4), *head)
        model.register_parameter("unused", nn.Parameter(torch.randn(3)))  # never gets a gradient
    elif kind == "complex":
        return _Complex(torch.complex128 if dtype == torch.float64 else torch.complex64).to(device)
    elif kind == "sparse":
        # Opt out of sparse invariant checks explicitly (the default) so that torch's one-time
        # "implicitly disabled" warning cannot fire on one side only.
        torch.sparse.check_sparse_tensor_invariants.disable()
        model = nn.Sequential(nn.Embedding(20, 4, sparse=True))
    elif kind == "matrix":  # only 2-D parameters (Muon accepts nothing else)
        model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.Tanh(), nn.Linear(16, 4, bias=False))
        model.register_parameter("unused", nn.Parameter(torch.randn(3, 5)))  # never gets a gradient
    elif kind == "rosenbrock":
        model = _Rosenbrock()
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    return model.to(device=device, dtype=dtype)


def batch(kind: str, step: int, dtype: torch.dtype, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The (input, target) batch for ``step``, identical for both sides."""
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    real = torch.float64 if dtype.is_complex else dtype
    if kind == "sparse":
        x = torch.randint(0, 20, (16,), generator=g)
        y = torch.randn(16, 4, generator=g, dtype=torch.float64).to(real)
        return x.to(device), y.to(device)
    x = torch.randn(16, 8, generator=g, dtype=torch.float64).to(real)
    out = 8 if kind == "complex" else (1 if kind == "rosenbrock" else 4)
    y = torch.randn(16, out, generator=g, dtype=torch.float64).to(real)
    return x.to(device), y.to(device)


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error, written out (the engine must not lean on torch's loss modules)."""
    out = model(x)
    if out.dtype != y.dtype:
        y = y.to(out.dtype)
    return ((out - y) ** 2).mean()


def param_groups(model: nn.Module, case: Case) -> list[dict[str, Any]] | Any:
    params = list(model.parameters())
    groups = case.get("groups")
    if not groups:
        return params
    out = [dict(fresh(over), params=[]) for over in groups]
    for i, p in enumerate(params):
        out[i % len(out)]["params"].append(p)
    return out


def build(cls: type, model: nn.Module, case: Case, kwargs: dict[str, Any] | None = None) -> torch.optim.Optimizer:
    kw = fresh(case.kwargs if kwargs is None else kwargs)
    if case.get("lr_tensor") and "lr" in kw:
        # float32 where both sides are fused (torch's fused kernels); where only ours is (``ref_drop``), the
        # reference's float64 on both sides, so that param_groups compare equal
        fused = kw.get("fused") is not None and "fused" not in case.get("ref_drop", ())
        kw["lr"] = torch.tensor(kw["lr"], dtype=torch.float32 if fused else torch.float64)
    return cls(param_groups(model, case), **kw)


def _sequences(ours: Any, ref: Any, what: str, bitwise: bool) -> compare.Diff:
    """Compare two lists of state values (tensors, numbers or None) item by item."""
    if not isinstance(ours, (list, tuple)) or len(ours) != len(ref):
        return compare.Diff(ok=False, what=f"{what}: {type(ours).__name__} of length "
                            f"{len(ours) if isinstance(ours, (list, tuple)) else '-'} vs torch's {len(ref)}")
    if ref and all(isinstance(x, torch.Tensor) for x in (*ours, *ref)) and len({(x.shape, x.dtype) for x in
                                                                             (*ours, *ref)}) == 1:
        return compare.tensors(torch.stack(list(ours)), torch.stack(list(ref)), what, bitwise)  # one check, fast
    diff = compare.Diff()
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        if isinstance(b, torch.Tensor):
            diff.merge(compare.tensors(a, b, f"{what}[{i}]", bitwise))
        elif b is None or a is None:
            diff.merge(compare.Diff(ok=a is b, what=f"{what}[{i}]: {a!r} vs torch's {b!r}"))
        else:
            diff.merge(compare.scalars(a, b, f"{what}[{i}]", for_dtype(torch.float64), bitwise))
    return diff


def _tensors(ours: Any, ref: torch.Tensor, what: str, bitwise: bool, tol: Tol | None = None,
             ref64: torch.Tensor | None = None) -> compare.Diff:
    """:func:`compare.tensors` with a fast path for identical tensors (most of a bitwise run); with
    ``ref64`` (torch's float64 run), :func:`compare.accuracy`'s fallback where the tolerance is missed."""
    if (isinstance(ours, torch.Tensor) and ours.dtype == ref.dtype and ours.shape == ref.shape
            and ours.layout == ref.layout == torch.strided and ours.device == ref.device
            and torch.equal(ours.detach(), ref.detach())):
        return compare.Diff()
    if ref64 is not None and isinstance(ours, torch.Tensor) and ref.is_floating_point() and not ref.is_sparse:
        return compare.accuracy(ours, ref, ref64, what, tol)
    return compare.tensors(ours, ref, what, bitwise, tol if ref.is_floating_point() else None)


def compare_optimizers(ours: torch.optim.Optimizer, ref: torch.optim.Optimizer, ours_model: nn.Module,
                       ref_model: nn.Module, bitwise: bool, tol: Tol | None = None,
                       ref64: tuple[torch.optim.Optimizer, nn.Module] | None = None) -> compare.Diff:
    """Compare parameters, every state entry and the param_groups' hyperparameters (floating tensors
    under ``tol``, default the table's; with ``ref64``, torch's float64 run in lockstep, a parameter or
    state tensor outside ``tol`` still passes in accuracy mode, see :mod:`.tolerances`)."""
    diff = compare.Diff()
    p64 = list(ref64[1].parameters()) if ref64 is not None else None
    for k, ((name, p_o), p_r) in enumerate(zip(ours_model.named_parameters(), ref_model.parameters(), strict=True)):
        diff.merge(_tensors(p_o, p_r, f"param {name}", bitwise, tol, None if p64 is None else p64[k]))
    s_o, s_r = ours.state_dict(), ref.state_dict()
    s_64 = ref64[0].state_dict()["state"] if ref64 is not None else None
    if set(s_o["state"]) != set(s_r["state"]):
        diff.merge(compare.Diff(ok=False, what=f"state for params {sorted(s_o['state'])} vs {sorted(s_r['state'])}"))
        return diff
    for idx, st_r in s_r["state"].items():
        st_o = s_o["state"][idx]
        if set(st_o) != set(st_r):
            diff.merge(compare.Diff(ok=False, what=f"state[{idx}] keys {sorted(st_o)} vs torch's {sorted(st_r)}"))
            continue
        for key, v_r in st_r.items():
            v_o = st_o[key]
            if isinstance(v_r, torch.Tensor):
                v_64 = s_64.get(idx, {}).get(key) if s_64 is not None else None
                v_64 = v_64 if isinstance(v_64, torch.Tensor) and v_r.dim() else None  # (not the 0-d counters)
                diff.merge(_tensors(v_o, v_r, f"state[{idx}][{key!r}]", bitwise, tol, v_64))
            elif isinstance(v_r, (list, tuple)):  # LBFGS keeps histories as lists of tensors
                diff.merge(_sequences(v_o, v_r, f"state[{idx}][{key!r}]", bitwise))
            elif v_o != v_r and not (
                isinstance(v_r, float) and compare.scalars(v_o, v_r, key, for_dtype(torch.float64)).ok
            ):
                diff.merge(compare.Diff(ok=False, what=f"state[{idx}][{key!r}] = {v_o!r}, torch's {v_r!r}"))
    for i, (g_o, g_r) in enumerate(zip(s_o["param_groups"], s_r["param_groups"], strict=True)):
        for key, v_r in g_r.items():
            if key not in g_o:
                diff.merge(compare.Diff(ok=False, what=f"param_groups[{i}] lacks {key!r}"))
            elif isinstance(v_r, torch.Tensor):
                diff.merge(_tensors(g_o[key], v_r, f"param_groups[{i}][{key!r}]", bitwise))
            elif g_o[key] != v_r:
                diff.merge(compare.Diff(ok=False, what=f"param_groups[{i}][{key!r}] = {g_o[key]!r}, torch's {v_r!r}"))
    return diff


def stepper(opt: torch.optim.Optimizer, model: nn.Module, step: Callable[..., Any], closure: bool,
             x: torch.Tensor, y: torch.Tensor) -> Callable[[], Any]:
    """A thunk for one step of ``opt`` on batch ``(x, y)``: through ``step(closure)``, or after one backward
    (the loss is returned only by the closure form)."""
    def loss_closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_of(model, x, y)
        loss.backward()
        return loss

    if closure:
        return lambda: step(loss_closure)
    loss_closure()
    return lambda: (step(), None)[1]


#: fused cases in these dtypes run torch's for-loop in float64 as well, for accuracy mode (:mod:`.tolerances`)
_ACCURACY_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def run_case(comp: Component, case: Case, dtype: torch.dtype, device: str = "cpu", steps: int | None = None,
             ours_cls: type | None = None, ref_cls: type | None = None, seed: int = 0,
             kwargs: dict[str, Any] | None = None, compile: bool = False, **compile_kw: Any) -> CaseResult:
    """Run one case in lockstep; ``ours_cls``/``ref_cls`` override the catalogued classes (used by
    the tests that plant a wrong optimizer). ``compile``: optimlab's step runs under ``torch.compile``
    (:mod:`.optim_compiled`, 6 steps unless ``steps`` is given; ``compile_kw``: its options)."""
    if compile:
        from . import optim_compiled

        return optim_compiled.run_case(comp, case, dtype, device, steps or optim_compiled.DEFAULT_STEPS, ours_cls,
                                       ref_cls, seed, kwargs, **compile_kw)
    steps = DEFAULT_STEPS if steps is None else steps
    ours_cls = ours_cls or comp.ours()
    ref_cls = ref_cls or comp.reference()
    kw = dict(case.kwargs if kwargs is None else kwargs)
    res = CaseResult("optim", comp.name, case.name, dtype_name(dtype), device, True, kwargs=kw)
    kind = case.get("model", "mlp")
    m_o, m_r = make_model(kind, dtype, device, seed), make_model(kind, dtype, device, seed)
    ref_kw = {k: v for k, v in kw.items() if k not in case.get("ref_drop", ())}  # e.g. fused: torch's for-loop
    tol = FUSED[dtype] if case.get("tolerance") == "fused" else None
    o, r, problem, raised = call_both(lambda: build(ours_cls, m_o, case, kw),
                                      lambda: build(ref_cls, m_r, case, ref_kw))
    if problem or raised:
        res.passed, res.message = problem is None, problem or "both raise (construction)"
        return res
    use_closure = bool(case.get("closure"))
    ref64 = None
    if tol is not None and dtype in _ACCURACY_DTYPES and not case.bitwise:
        m_64 = copy.deepcopy(m_r).to(torch.float64)  # the reference in float64, from the same start
        ref64 = (build(ref_cls, m_64, case, ref_kw), m_64)
    diff = compare.Diff()
    for step in range(1, steps + 1):
        x, y = batch(kind, step, dtype, device, seed)
        if ref64 is not None:
            try:
                stepper(ref64[0], ref64[1], ref64[0].step, use_closure, x.to(torch.float64),
                        y.to(torch.float64) if y.is_floating_point() else y)()
            except Exception:  # noqa: BLE001 - a step that raises is the lockstep comparison's to report
                ref64 = None


        l_o, l_r, problem, raised = call_both(stepper(o, m_o, o.step, use_closure, x, y),
                                              stepper(r, m_r, r.step, use_closure, x, y))
        step_diff = compare.Diff(ok=problem is None, what=problem or "")
        if not raised and use_closure:
            step_diff.merge(compare.tensors(l_o, l_r, "closure loss", case.bitwise))
        if not raised:
            step_diff.merge(compare_optimizers(o, r, m_o, m_r, case.bitwise, tol, ref64))
        diff.merge(step_diff)
        if not diff.ok or raised:
            res.first_bad_step = step if not diff.ok else None
            break
    res.passed, res.max_abs, res.max_rel = diff.ok, diff.max_abs, diff.max_rel
    res.message = diff.what if not diff.ok else ""
    if res.first_bad_step is not None:
        res.message = f"step {res.first_bad_step}: {res.message}"
    return res
