"""Helpers shared by the family engines: building both sides, matching exceptions and warnings."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import torch


def fresh(kwargs: Any) -> Any:
    """A deep copy of constructor arguments, so torch's side and ours never share a tensor."""
    return copy.deepcopy(dict(kwargs))


def call_both(ours: Callable[[], Any], ref: Callable[[], Any],
              warnings_match: bool = True) -> tuple[Any, Any, str | None, bool]:
    """Run ``ref`` then ``ours``; return (ours_out, ref_out, problem, raised).

    If torch raises, optimlab must raise the same exception type (then ``raised`` is True and the
    case passes). Warning categories emitted by each side must match too (unless ``warnings_match`` is False).
    """
    with warnings.catch_warnings(record=True) as w_ref:
        warnings.simplefilter("always")
        try:
            r = ref()
            r_exc = None
        except Exception as e:  # noqa: BLE001 - any exception type is part of the contract
            r, r_exc = None, e
    with warnings.catch_warnings(record=True) as w_ours:
        warnings.simplefilter("always")
        try:
            o = ours()
            o_exc = None
        except Exception as e:  # noqa: BLE001
            o, o_exc = None, e
    if r_exc is not None or o_exc is not None:
        if r_exc is None:
            return o, r, f"optimlab raised {type(o_exc).__name__}: {o_exc}; torch did not", True
        if o_exc is None:
            return o, r, f"torch raised {type(r_exc).__name__}: {r_exc}; optimlab did not", True
        if not isinstance(o_exc, type(r_exc)):
            return o, r, f"optimlab raised {type(o_exc).__name__}, torch {type(r_exc).__name__}: {r_exc}", True
        return o, r, None, True
    cats_ref = sorted({c.category.__name__ for c in w_ref})
    cats_ours = sorted({c.category.__name__ for c in w_ours})
    if warnings_match and cats_ref != cats_ours:
        return o, r, f"warnings differ: optimlab {cats_ours}, torch {cats_ref}", False
    return o, r, None, False


def dtype_name(dtype: torch.dtype | None) -> str:
    return "-" if dtype is None else str(dtype).replace("torch.", "")
