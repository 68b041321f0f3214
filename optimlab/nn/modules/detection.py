"""Box regression loss modules (thin wrappers over :mod:`optimlab.nn.functional.detection`); ``reduction``
defaults to ``'mean'`` like every torch loss module (the functional forms follow torchvision: ``'none'``)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .. import functional as F
from ._base import _Loss

__all__ = ["CIoULoss", "DIoULoss", "GIoULoss", "IoULoss"]


class _BoxLoss(_Loss):
    """A box loss of ``(boxes1, boxes2)``, boxes ``(..., 4)`` as ``(x1, y1, x2, y2)``."""

    __constants__ = ["eps", "reduction"]
    _fn: Callable[..., Tensor]

    def __init__(self, eps: float = 1e-7, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.eps = eps

    def forward(self, boxes1: Tensor, boxes2: Tensor) -> Tensor:
        return type(self)._fn(boxes1, boxes2, reduction=self.reduction, eps=self.eps)


class IoULoss(_BoxLoss):
    """``1 - IoU`` (see :func:`optimlab.nn.functional.box_iou_loss`)."""

    _fn = staticmethod(F.box_iou_loss)


class GIoULoss(_BoxLoss):
    """Generalized-IoU loss, Rezatofighi et al. 2019 (see :func:`optimlab.nn.functional.generalized_box_iou_loss`)."""

    _fn = staticmethod(F.generalized_box_iou_loss)


class DIoULoss(_BoxLoss):
    """Distance-IoU loss, Zheng et al. 2020 (see :func:`optimlab.nn.functional.distance_box_iou_loss`)."""

    _fn = staticmethod(F.distance_box_iou_loss)


class CIoULoss(_BoxLoss):
    """Complete-IoU loss, Zheng et al. 2020 (see :func:`optimlab.nn.functional.complete_box_iou_loss`)."""

    _fn = staticmethod(F.complete_box_iou_loss)
