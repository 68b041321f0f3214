"""Regression losses (functional forms, torch.nn.functional's signatures); reduction via
:mod:`optimlab.nn._reduction`."""

from __future__ import annotations

from torch import Tensor

from .. import _reduction as R

__all__ = ["mse_loss"]


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Mean squared error: ``ℓ_i = w_i (x_i - y_i)²``; ``mean`` divides by ``Σ w`` when weighted,
    else by the element count."""
    R.same_size_or_warn(input, target)
    reduction = R.resolve(reduction, size_average, reduce)
    x, y = R.broadcast(input, target)
    loss = (x - y).pow(2)
    if weight is None:
        return R.reduce(loss, reduction)
    if weight.size() != input.size():
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    return R.reduce(loss, reduction, None if reduction != "mean" else weight.sum())
