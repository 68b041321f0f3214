"""Memory autograd holds for backward: the one measurement used by the loss benchmarks and tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


def saved_bytes(fn: Callable[..., Any], *inputs: Any, exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd saves while ``fn(*inputs)`` runs, not counting the
    storage of the tensor inputs or of ``exclude`` (e.g. a module's parameters and buffers)."""
    own = {t.untyped_storage().data_ptr() for t in [*inputs, *exclude] if isinstance(t, torch.Tensor)}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in own:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    del out
    return sum(seen.values())
