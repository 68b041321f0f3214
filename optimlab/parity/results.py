"""What the parity engine reports for one (component, case, dtype, device) run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CaseResult:
    family: str
    component: str
    case: str
    dtype: str
    device: str
    passed: bool
    max_abs: float = 0.0
    max_rel: float = 0.0
    first_bad_step: int | None = None  # optimizer/scheduler step (1-based) where the first mismatch appeared
    message: str = ""
    bitwise: bool = False  # checked bit for bit rather than within tolerance
    skipped: bool = False  # not run: the installed torch lacks the API the case exercises (``message`` says why)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kwargs"] = {k: repr(v) for k, v in self.kwargs.items()}
        return d


def failure(family: str, comp: str, case: str, dtype: Any, device: str, exc: BaseException) -> CaseResult:
    """A run that raised counts as a failure; the exception becomes the message."""
    return CaseResult(family, comp, case, str(dtype).replace("torch.", ""), device, False,
                      message=f"{type(exc).__name__}: {exc}")
