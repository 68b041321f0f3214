"""Regression loss modules (thin: constructor with torch's signature, ``forward`` calls the functional form)."""

from __future__ import annotations

from torch import Tensor

from .. import functional as F
from ._base import _Loss

__all__ = ["MSELoss"]


class MSELoss(_Loss):
    """Mean squared error ``ℓ(x, y) = reduce((x - y)²)`` (see :func:`optimlab.nn.functional.mse_loss`)."""

    __constants__ = ["reduction"]

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)
