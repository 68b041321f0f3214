"""Fuzz mode: random hyperparameters across each argument's valid range (the catalogue's
``Component.fuzz``) and random seeds for inputs/batches, each compared against torch by the same
engine. hypothesis shrinks a failure to a minimal reproducer, which is returned and printed.

An argument combination that torch rejects passes as long as optimlab rejects it with the same
exception type, so ranges may be generous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..catalog import Case, Component, FuzzArg
from . import run_case
from .results import CaseResult


@dataclass
class FuzzReport:
    component: str
    examples: int
    failure: CaseResult | None  # the shrunk counterexample, if any

    @property
    def passed(self) -> bool:
        return self.failure is None

    def reproducer(self) -> str:
        if self.failure is None:
            return ""
        f = self.failure
        args = ", ".join(f"{k}={v!r}" for k, v in f.kwargs.items())
        return f"{f.component}({args})  # dtype={f.dtype}: {f.message}"


def strategy(arg: FuzzArg) -> Any:
    from hypothesis import strategies as st

    if arg.kind == "float":
        return st.floats(arg.lo, arg.hi, allow_nan=False)
    if arg.kind == "logfloat":
        import math

        return st.floats(math.log(arg.lo), math.log(arg.hi)).map(math.exp)
    if arg.kind == "int":
        return st.integers(int(arg.lo), int(arg.hi))
    if arg.kind == "bool":
        return st.booleans()
    if arg.kind == "choice":
        return st.sampled_from(arg.options)
    raise ValueError(f"unknown fuzz kind {arg.kind!r}")


def fuzz(comp: Component, examples: int = 25, dtype: torch.dtype = torch.float64, device: str = "cpu",
         steps: int = 10, ours_cls: type | None = None) -> FuzzReport:
    """Draw ``examples`` configurations of ``comp``; return the minimal failing one, if any."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base: Case = comp.fuzz_base or comp.cases[0]
    strat = st.fixed_dictionaries({k: strategy(a) for k, a in comp.fuzz.items()})
    last: list[CaseResult] = []
    extra = {"ours_cls": ours_cls} if ours_cls is not None else {}
    run_steps = None if comp.family == "losses" else steps

    @settings(max_examples=examples, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(drawn=strat, seed=st.integers(0, 2**16))
    def check(drawn: dict[str, Any], seed: int) -> None:
        kw = {**base.kwargs, **drawn}
        dt = None if comp.family == "sched" else dtype
        res = run_case(comp, base, dt, device, run_steps, seed=seed, kwargs=kw, **extra)
        if not res.passed:
            last[:] = [res]
            raise AssertionError(res.message)

    try:
        check()
    except AssertionError:
        return FuzzReport(comp.name, examples, last[0] if last else None)
    return FuzzReport(comp.name, examples, None)
