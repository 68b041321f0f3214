"""Regression losses (functional forms, torch.nn.functional's signatures); reduction via
:mod:`optimlab.nn._reduction`.

Every loss here is elementwise on the broadcast ``(input, target)`` pair, so unbatched and
K-dimensional inputs need nothing special."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _reduction as R

__all__ = ["huber_loss", "l1_loss", "mse_loss", "smooth_l1_loss"]


def _weighted(loss: Tensor, input: Tensor, weight: Tensor | None, reduction: str, mean_by_weight: bool) -> Tensor:
    """Apply an elementwise ``weight`` (same size as ``input``) and reduce; ``mean`` divides by ``Σ w``
    when ``mean_by_weight`` (torch's l1/mse) and by the element count otherwise (torch's huber)."""
    if weight is None:
        return R.reduce(loss, reduction)
    if weight.size() != input.size():
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    return R.reduce(loss, reduction, weight.sum() if mean_by_weight and reduction == "mean" else None)


def _diff(input: Tensor, target: Tensor) -> Tensor:
    """``x - y`` after torch's size warning and broadcasting."""
    R.same_size_or_warn(input, target)
    x, y = R.broadcast(input, target)
    return x - y


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Mean squared error: ``ℓ_i = w_i (x_i - y_i)²``; ``mean`` divides by ``Σ w`` when weighted,
    else by the element count."""
    d = _diff(input, target)
    reduction = R.resolve(reduction, size_average, reduce)
    return _weighted(d.pow(2), input, weight, reduction, mean_by_weight=True)


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Mean absolute error: ``ℓ_i = w_i |x_i - y_i|``; ``mean`` divides by ``Σ w`` when weighted,
    else by the element count. The gradient at ``x = y`` is 0 (``sign(0)``), as in torch."""
    d = _diff(input, target)
    reduction = R.resolve(reduction, size_average, reduce)
    return _weighted(d.abs(), input, weight, reduction, mean_by_weight=True)


def _huber(d: Tensor, delta: float) -> Tensor:
    """``½ d²`` where ``|d| < δ``, else ``δ (|d| - ½ δ)``; written on ``d`` (not ``|d|``) in the
    quadratic branch so the first and second derivatives are ``d`` and 1 there, exactly."""
    a = d.abs()
    return torch.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """Huber loss: ``ℓ_i = w_i · (½ d_i²  if |d_i| < δ  else  δ(|d_i| - ½ δ))`` with ``d = x - y``.
    ``mean`` divides by the element count even when weighted (torch's rule for huber)."""
    d = _diff(input, target)
    reduction = R.check(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    return _weighted(_huber(d, delta), input, weight, reduction, mean_by_weight=False)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Smooth L1: ``ℓ_i = ½ d_i² / β  if |d_i| < β  else  |d_i| - ½ β``; ``β = 0`` is the L1 loss.
    Equals the Huber loss divided by ``β``."""
    d = _diff(input, target)
    reduction = R.resolve(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        return R.reduce(d.abs(), reduction)
    a = d.abs()
    return R.reduce(torch.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta), reduction)
