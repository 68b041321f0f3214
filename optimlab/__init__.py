"""optimlab: drop-in, re-implemented and parity-verified PyTorch losses, optimizers and LR schedulers.

Swap one import: ``from optimlab import nn, optim`` (``optim.lr_scheduler``, ``optim.swa_utils``)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["nn", "optim", "__version__"]


def __getattr__(name: str) -> Any:
    """``optimlab.nn`` / ``optimlab.optim`` imported on first use: ``import optimlab.nn`` does not pay for the
    optimizers, nor the other way round."""
    if name in ("nn", "optim"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
