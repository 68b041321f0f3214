"""Bases of every loss module: torch.nn's ``_Loss``/``_WeightedLoss`` attribute layout."""

from __future__ import annotations

from torch import Tensor, nn

from .. import _reduction as R


class _Loss(nn.Module):
    """Base of every loss: stores ``reduction`` (resolving the legacy ``size_average``/``reduce``)."""

    reduction: str

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            self.reduction = R.legacy_reduction(size_average, reduce)
        else:
            self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with a per-class ``weight`` buffer (moved with ``.to(device)`` like torch's)."""

    weight: Tensor | None

    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
