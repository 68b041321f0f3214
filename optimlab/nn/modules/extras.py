"""Losses beyond torch (modules): the 0-1 loss. Focal and box-loss modules are in :mod:`.focal` and
:mod:`.detection` (re-exported here under their older import path)."""

from __future__ import annotations

from torch import Tensor

from .. import functional as F
from ._base import _Loss
from .detection import DIoULoss, GIoULoss  # noqa: F401 - the older import path
from .focal import FocalLoss  # noqa: F401 - the older import path

__all__ = ["ZeroOneLoss"]


class ZeroOneLoss(_Loss):
    """Misclassification rate (0-1 loss); its gradient is returned as zero
    (see :func:`optimlab.nn.functional.zero_one_loss`)."""

    __constants__ = ["threshold", "reduction"]

    def __init__(self, threshold: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.threshold = threshold

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.zero_one_loss(input, target, threshold=self.threshold, reduction=self.reduction)
