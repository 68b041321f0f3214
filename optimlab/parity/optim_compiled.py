"""Optimizer parity under ``torch.compile``: optimlab's ``torch.compile(opt.step)`` against torch's eager step.

One model steps with optimlab's optimizer through ``torch.compile`` (inductor), one with torch's eager
optimizer, on the same batches (:mod:`.optim`'s models, batches and loss). After every step the largest
absolute difference over parameters and floating state tensors is taken. A compiled step is not expected
to be bit-identical (inductor fuses and reorders, and bias corrections are computed from the step tensor),
so the bound is relative to torch's *own* compiled step (:data:`.tolerances.COMPILED_FACTOR`, with a floor
:func:`.tolerances.compiled_floor`); torch's compiled run is only made when ours exceeds the floor.

Also checked: no new graphs after :data:`WARMUP_STEPS` (a per-step recompilation means a Python number
was specialised into the graph), and exceptions: where torch's eager step raises, ours compiled must
raise exactly when torch's compiled step does (torch skips e.g. the capturable device check while compiling).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..catalog import Case, Component
from ._common import call_both, dtype_name
from .optim import batch, build, make_model, stepper
from .results import CaseResult
from .tolerances import COMPILED_FACTOR, compiled_floor

DEFAULT_STEPS = 6
#: step 1 traces the state's creation, step 2 the step with state; after that no graph may be added
WARMUP_STEPS = 2


class GraphCounter:
    """A ``torch.compile`` backend that counts the graphs it is given and compiles them with ``backend``."""

    def __init__(self, backend: str = "inductor") -> None:
        self.graphs = 0
        self._backend = torch._dynamo.lookup_backend(backend)

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        self.graphs += 1
        return self._backend(gm, example_inputs)


def _outcome(fn: Callable[[], Any]) -> tuple[Any, Exception | None]:
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001 - exceptions are part of the comparison
        return None, e


def _floating(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| (complex as real pairs); NaN where only one side is NaN counts as infinite."""
    a, b = a.detach(), b.detach()
    if a.is_sparse:
        a, b = a.to_dense(), b.to_dense()
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    a, b = a.double(), b.double()
    if a.shape != b.shape or not torch.equal(a.isnan(), b.isnan()):
        return float("inf")
    diff = (a - b).abs().nan_to_num(nan=0.0, posinf=float("inf"))
    return diff.max().item() if diff.numel() else 0.0


def max_error(ours: torch.optim.Optimizer, ref: torch.optim.Optimizer, m_o: nn.Module, m_r: nn.Module) -> float:
    """The largest absolute difference over parameters and every floating state tensor (lists too)."""
    err = max((_err(a, b) for a, b in zip(m_o.parameters(), m_r.parameters(), strict=True)), default=0.0)
    s_o, s_r = ours.state_dict()["state"], ref.state_dict()["state"]
    for idx, st_r in s_r.items():
        for key, v_r in st_r.items():
            v_o = s_o.get(idx, {}).get(key)
            pairs = zip(v_o, v_r, strict=False) if isinstance(v_r, (list, tuple)) else [(v_o, v_r)]
            for a, b in pairs:
                if _floating(b):
                    err = max(err, _err(a, b) if _floating(a) else float("inf"))
    return err


def _trajectory(cls: type, case: Case, kw: dict[str, Any], kind: str, dtype: torch.dtype, device: str, seed: int,
                steps: int, compiled: bool, ref: tuple[torch.optim.Optimizer, nn.Module] | None = None,
                fullgraph: bool = False) -> tuple[list[float], list[int]]:
    """Step ``cls`` (compiled or not) ``steps`` times; the per-step error against ``ref`` replayed in
    lockstep (torch's eager optimizer, rebuilt here) and the number of graphs after each step."""
    torch._dynamo.reset()
    model = make_model(kind, dtype, device, seed)
    opt = build(cls, model, case, kw)
    counter = GraphCounter()
    step = torch.compile(opt.step, backend=counter, fullgraph=fullgraph) if compiled else opt.step
    errs, graphs = [], []
    assert ref is not None
    ref_opt, ref_model = ref
    for i in range(1, steps + 1):
        x, y = batch(kind, i, dtype, device, seed)
        stepper(opt, model, step, bool(case.get("closure")), x, y)()
        stepper(ref_opt, ref_model, ref_opt.step, bool(case.get("closure")), x, y)()
        errs.append(max_error(opt, ref_opt, model, ref_model))
        graphs.append(counter.graphs)
    return errs, graphs


def run_case(comp: Component, case: Case, dtype: torch.dtype, device: str = "cpu", steps: int = DEFAULT_STEPS,
             ours_cls: type | None = None, ref_cls: type | None = None, seed: int = 0,
             kwargs: dict[str, Any] | None = None, fullgraph: bool = False) -> CaseResult:
    """Run one case with optimlab's step compiled, against torch's eager step (see the module docstring).
    ``fullgraph``: compile optimlab's step with ``fullgraph=True`` (any graph break, e.g. a ``.item()``
    host read, then raises); torch's own compiled step, which graph-breaks, is compiled without it."""
    ours_cls = ours_cls or comp.ours()
    ref_cls = ref_cls or comp.reference()
    kw = dict(case.kwargs if kwargs is None else kwargs)
    res = CaseResult("optim", comp.name, case.name, dtype_name(dtype), device, True, kwargs=kw)
    kind = case.get("model", "mlp")

    def fresh_ref() -> tuple[torch.optim.Optimizer, nn.Module]:
        model = make_model(kind, dtype, device, seed)
        return build(ref_cls, model, case, kw), model

    def ours_run(cls: type) -> Callable[[], tuple[list[float], list[int]]]:
        full = fullgraph and cls is ours_cls
        return lambda: _trajectory(cls, case, kw, kind, dtype, device, seed, steps, True, fresh_ref(), full)

    m_o, m_r = make_model(kind, dtype, device, seed), make_model(kind, dtype, device, seed)
    _, _, problem, raised = call_both(lambda: build(ours_cls, m_o, case, kw), lambda: build(ref_cls, m_r, case, kw))
    if problem or raised:
        res.passed, res.message = problem is None, problem or "both raise (construction)"
        return res
    # Where torch's eager step raises (e.g. capturable on CPU), compare with torch's compiled step instead.
    _, eager_exc = _outcome(lambda: _trajectory(ref_cls, case, kw, kind, dtype, device, seed, steps, False,
                                                fresh_ref()))
    if eager_exc is not None:
        _, exc_c = _outcome(ours_run(ref_cls))
        _, exc_o = _outcome(ours_run(ours_cls))
        res.passed = (exc_o is None) == (exc_c is None) and (exc_c is None or isinstance(exc_o, type(exc_c)))
        res.message = (f"torch's eager step raises {type(eager_exc).__name__}; compiled, torch's "
                       f"{'raises ' + type(exc_c).__name__ if exc_c else 'does not'}, "
                       f"ours {'raises ' + type(exc_o).__name__ if exc_o else 'does not'}")
        return res
    out, exc = _outcome(ours_run(ours_cls))
    if exc is not None:
        res.passed, res.message = False, f"compiled step raised {type(exc).__name__}: {exc}"
        return res
    errs, graphs = out
    res.max_abs = max(errs)
    floor = compiled_floor(dtype)
    if steps > WARMUP_STEPS and graphs[-1] != graphs[WARMUP_STEPS - 1]:
        new = next(i for i in range(WARMUP_STEPS, steps) if graphs[i] != graphs[WARMUP_STEPS - 1])
        res.passed, res.first_bad_step = False, new + 1
        res.message = f"recompiled after warm-up (graphs per step {graphs})"
        return res
    if res.max_abs <= floor:
        return res
    own, _ = ours_run(ref_cls)()  # torch's own compiled drift from its eager step
    allowed = max(COMPILED_FACTOR * max(own), floor)
    if res.max_abs > allowed:
        res.passed = False
        res.first_bad_step = next(i + 1 for i, e in enumerate(errs) if e > allowed)
        res.message = (f"compiled step {res.max_abs:.2e} from torch's eager run; torch's own compiled step "
                       f"{max(own):.2e} (allowed {allowed:.2e})")
    return res
