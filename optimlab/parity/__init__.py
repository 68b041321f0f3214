"""The parity engine: optimlab's components checked against torch's, one code path per family.

``run_case(component, case, dtype, device, steps)`` dispatches to the family's engine
(:mod:`.optim`, :mod:`.losses`, :mod:`.sched`); :func:`run_all` walks the catalogue;
:mod:`.fuzz` draws random hyperparameters with hypothesis. Tolerances: :mod:`.tolerances`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..catalog import Case, Component, components, unmet
from .results import CaseResult, failure

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def engine(family: str) -> Any:
    from . import losses, optim, sched

    return {"losses": losses, "optim": optim, "sched": sched}[family]


def run_case(comp: Component, case: Case, dtype: torch.dtype | None, device: str = "cpu",
             steps: int | None = None, compile: bool = False, **kw: Any) -> CaseResult:
    """Run one case; an exception inside the engine becomes a failed result, never a crash. A case whose
    ``since`` the installed torch predates is not run: its result is ``skipped`` (passed), with the reason.

    ``compile``: optimlab's side runs under ``torch.compile`` and is held to the compiled tolerance
    rule against torch's eager run (optimizers: :mod:`.optim_compiled`; losses: their engine)."""
    why = unmet(case)
    if why is not None:  # e.g. an option torch added after the installed release: nothing to compare against
        return CaseResult(comp.family, comp.name, case.name, str(dtype).replace("torch.", ""), device, True,
                          message=why, skipped=True, kwargs=dict(case.kwargs))
    eng = engine(comp.family)
    if compile:
        kw["compile"] = True  # passed only when set: engines without a compiled path keep their signature
    try:
        if steps is None:
            res = eng.run_case(comp, case, dtype, device, **kw)
        else:
            res = eng.run_case(comp, case, dtype, device, steps=steps, **kw)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        res = failure(comp.family, comp.name, case.name, dtype, device, e)
    res.bitwise = case.bitwise and not compile
    return res


def plan(family: str | None = None, dtypes: list[torch.dtype] | None = None,
         names: Callable[[str], bool] | None = None,
         compile: bool = False) -> list[tuple[Component, Case, torch.dtype | None]]:
    """Every (component, case, dtype) the report runs. Schedulers have no dtype (Python floats), and
    nothing to compile: ``compile`` leaves them out."""
    out: list[tuple[Component, Case, torch.dtype | None]] = []
    for comp in components(family, names):
        if compile and comp.family == "sched":
            continue
        for case in comp.cases:
            if comp.family == "sched":
                out.append((comp, case, None))
                continue
            for dt in case.dtypes:
                if dtypes is None or dt in dtypes:
                    out.append((comp, case, dt))
    return out


def run_all(family: str | None = None, device: str = "cpu", dtypes: list[torch.dtype] | None = None,
            steps: int | None = None, names: Callable[[str], bool] | None = None,
            compile: bool = False) -> Iterator[CaseResult]:
    for comp, case, dt in plan(family, dtypes, names, compile):
        yield run_case(comp, case, dt, device, steps if comp.family != "losses" else None, compile=compile)
