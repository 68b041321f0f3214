"""Losses beyond torch (modules; thin wrappers over :mod:`optimlab.nn.functional.extras`)."""

from __future__ import annotations

from torch import Tensor

from .. import functional as F
from ._base import _Loss

__all__ = ["DIoULoss", "FocalLoss", "GIoULoss", "ZeroOneLoss"]


class FocalLoss(_Loss):
    """Sigmoid focal loss ``α_t (1 - p_t)^γ · BCE(x, y)`` on logits (Lin et al. 2017)
    (see :func:`optimlab.nn.functional.sigmoid_focal_loss`)."""

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


class GIoULoss(_Loss):
    """Generalized-IoU box loss, boxes ``(..., 4)`` as ``(x1, y1, x2, y2)`` (Rezatofighi et al. 2019)
    (see :func:`optimlab.nn.functional.generalized_box_iou_loss`)."""

    __constants__ = ["eps", "reduction"]

    def __init__(self, eps: float = 1e-7, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.eps = eps

    def forward(self, boxes1: Tensor, boxes2: Tensor) -> Tensor:
        return F.generalized_box_iou_loss(boxes1, boxes2, reduction=self.reduction, eps=self.eps)


class DIoULoss(_Loss):
    """Distance-IoU box loss, boxes ``(..., 4)`` as ``(x1, y1, x2, y2)`` (Zheng et al. 2020)
    (see :func:`optimlab.nn.functional.diou_loss`)."""

    __constants__ = ["eps", "reduction"]

    def __init__(self, eps: float = 1e-7, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.eps = eps

    def forward(self, boxes1: Tensor, boxes2: Tensor) -> Tensor:
        return F.diou_loss(boxes1, boxes2, reduction=self.reduction, eps=self.eps)


class ZeroOneLoss(_Loss):
    """Misclassification rate (0-1 loss); its gradient is returned as zero
    (see :func:`optimlab.nn.functional.zero_one_loss`)."""

    __constants__ = ["threshold", "reduction"]

    def __init__(self, threshold: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.threshold = threshold

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.zero_one_loss(input, target, threshold=self.threshold, reduction=self.reduction)
