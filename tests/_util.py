"""Helpers shared by the test files."""

from __future__ import annotations

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
