"""Helpers shared by the test files."""

from __future__ import annotations

import sys
import types
import unittest
import warnings
from collections.abc import Callable
from typing import Any


def raised(fn: Callable[[], Any]) -> tuple[type[BaseException] | None, str | None]:
    """(exception type, message) that ``fn()`` raises, or (None, None); warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            return type(e), str(e)
    return None, None


def checkpoint_roundtrip(obj: Any) -> Any:
    """``obj`` through ``torch.save`` and ``torch.load(weights_only=True)``, as a checkpoint travels."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# One flag-rich configuration per optimizer (every state tensor it can have is present).
OPTIM_CONFIGS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True},
    "AdamW": {"lr": 0.01, "amsgrad": True},
    "Adamax": {"lr": 0.01, "weight_decay": 0.05},
    "NAdam": {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.05},
    "RAdam": {"lr": 0.01, "weight_decay": 0.05},
    "Adagrad": {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
    "Adadelta": {"lr": 0.5, "weight_decay": 0.05},
    "RMSprop": {"lr": 0.01, "centered": True, "momentum": 0.5},
    "Rprop": {"lr": 0.01, "etas": (0.4, 1.3)},
    "ASGD": {"lr": 0.05, "t0": 3.0},
}


def module_info(cls: type) -> Any:
    """torch's ModuleInfo (``module_db`` entry) for ``cls``; its test helpers import ``expecttest`` (a test-only
    package not installed here) only for a TestCase base class, so a stand-in is registered when it is missing."""
    if "expecttest" not in sys.modules:
        try:
            import expecttest  # noqa: F401
        except ModuleNotFoundError:
            sys.modules["expecttest"] = types.SimpleNamespace(TestCase=unittest.TestCase)
    from torch.testing._internal.common_modules import module_db

    return next(m for m in module_db if m.module_cls is cls)
