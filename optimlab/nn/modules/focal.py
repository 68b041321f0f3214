"""Focal loss modules (thin wrappers over :mod:`optimlab.nn.functional.focal`)."""

from __future__ import annotations

from torch import Tensor

from .. import functional as F
from ._base import _Loss, _WeightedLoss

__all__ = ["FocalLoss", "SigmoidFocalLoss", "SoftmaxFocalLoss"]


class FocalLoss(_Loss):
    """Sigmoid focal loss ``α_t (1 - p_t)^γ · BCE(x, y)`` on logits (Lin et al. 2017)
    (see :func:`optimlab.nn.functional.sigmoid_focal_loss`); also named :class:`SigmoidFocalLoss`."""

    __constants__ = ["alpha", "gamma", "reduction"]

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        if gamma < 0:
            raise ValueError(f"gamma must be non-negative, got {gamma}")
        if alpha > 1:
            raise ValueError(f"alpha must be at most 1 (or negative to disable it), got {alpha}")
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.sigmoid_focal_loss(input, target, alpha=self.alpha, gamma=self.gamma, reduction=self.reduction)


SigmoidFocalLoss = FocalLoss


class SoftmaxFocalLoss(_WeightedLoss):
    """Multi-class focal loss ``-w_y (1 - p_y)^γ log p_y`` on logits with class indices; γ = 0 is
    :class:`CrossEntropyLoss` (see :func:`optimlab.nn.functional.softmax_focal_loss`)."""

    __constants__ = ["gamma", "ignore_index", "reduction"]

    def __init__(self, weight: Tensor | None = None, gamma: float = 2.0, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, reduction=reduction)
        if gamma < 0:
            raise ValueError(f"gamma must be non-negative, got {gamma}")
        self.gamma = gamma
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.softmax_focal_loss(input, target, weight=self.weight, gamma=self.gamma,
                                    ignore_index=self.ignore_index, reduction=self.reduction)
