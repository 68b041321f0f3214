"""Regression loss modules (thin: constructor with torch's signature, ``forward`` calls the functional form)."""

from __future__ import annotations

from torch import Tensor

from .. import functional as F
from ._base import _Loss

__all__ = ["HuberLoss", "L1Loss", "MSELoss", "SmoothL1Loss"]


class MSELoss(_Loss):
    """Mean squared error ``ℓ(x, y) = reduce((x - y)²)`` (see :func:`optimlab.nn.functional.mse_loss`)."""

    __constants__ = ["reduction"]

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ``ℓ(x, y) = reduce(|x - y|)`` (see :func:`optimlab.nn.functional.l1_loss`)."""

    __constants__ = ["reduction"]

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Huber loss: ``½ d²`` for ``|d| < delta``, else ``delta (|d| - ½ delta)``, ``d = x - y``
    (see :func:`optimlab.nn.functional.huber_loss`)."""

    __constants__ = ["reduction", "delta"]

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        if not isinstance(delta, (float, int)):
            raise TypeError(f"delta must be a float or int, got: {type(delta)}")
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """Smooth L1: ``½ d² / beta`` for ``|d| < beta``, else ``|d| - ½ beta``; ``beta = 0`` is L1
    (see :func:`optimlab.nn.functional.smooth_l1_loss`)."""

    __constants__ = ["reduction"]

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean",
                 beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)
