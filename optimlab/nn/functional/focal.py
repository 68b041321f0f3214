"""Focal losses (Lin et al. 2017): binary on logits (torchvision's ``sigmoid_focal_loss``) and multi-class on
softmax logits (``softmax_focal_loss``, with cross entropy's ``weight``/``ignore_index``; γ = 0 is cross
entropy)."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _reduction as R
from ._autograd import BinaryCrossEntropyWithLogits, apply
from ._ce import pick, target_weights, with_targets
from .probabilistic import _check_class_target, _class_dim

__all__ = ["sigmoid_focal_loss", "softmax_focal_loss"]


def _focus(q: Tensor, gamma: float) -> Tensor:
    """``q^γ`` for ``q = 1 - p_t ≥ 0``; ``q = 0`` (a saturated correct prediction) would give ``0·∞`` in the
    gradient for γ < 1: the floor at the smallest normal number leaves the value at ~0 and the gradient 0."""
    return q.clamp_min(torch.finfo(q.dtype).tiny).pow(gamma)


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> Tensor:
    """``ℓ = α_t (1 - p_t)^γ · BCE(x, y)`` on logits ``x``, ``p = σ(x)``, ``1 - p_t = y σ(-x) + (1 - y) σ(x)``
    (computed so, without cancellation), ``α_t = α y + (1 - α)(1 - y)``; ``alpha < 0`` disables α_t. Targets in
    [0, 1], same shape as ``inputs``. torchvision's signature and default ``reduction="none"``."""
    reduction = R.check(reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}")
    if alpha > 1:
        raise ValueError(f"alpha must be at most 1 (or negative to disable it), got {alpha}")
    if targets.shape != inputs.shape:
        raise ValueError(f"Target size ({targets.size()}) must be the same as input size ({inputs.size()})")
    y = targets if targets.dtype == inputs.dtype else targets.to(inputs.dtype)
    loss = apply(BinaryCrossEntropyWithLogits, inputs, y, None, "none")  # BCE's core: one node, torch's gradient
    if gamma != 0:  # 1 - p_t = σ(x) + y·(σ(-x) - σ(x)): each σ where it has no cancellation, exact at y ∈ {0, 1}
        loss = loss * _focus(torch.lerp(torch.sigmoid(inputs), torch.sigmoid(-inputs), y), gamma)
    if alpha >= 0:  # α_t = (1 - α) + (2α - 1)·y
        loss = loss * (y * (2 * alpha - 1) + (1 - alpha))
    return R.reduce(loss, reduction)


def softmax_focal_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, gamma: float = 2.0,
                       ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Multi-class focal loss on logits ``(N, C, d1, …)`` or ``(C,)`` with class indices:
    ``ℓ_i = -w[y_i]·(1 - p_{i y_i})^γ·log p_{i y_i}`` (0 where ``y_i`` is ignored), ``1 - p = -expm1(log p)``;
    ``mean`` divides by ``Σ_i w[y_i]`` over non-ignored targets, as cross entropy does, so γ = 0 is
    ``cross_entropy(input, target, weight, ignore_index=…)``."""
    reduction = R.check(reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}")
    target = _check_class_target(input, target, weight)
    cdim = _class_dim(input)
    lsm = torch.log_softmax(input, cdim)

    def run(valid: Tensor | None, classes: Tensor) -> Tensor:
        logp = pick(lsm, classes, cdim)
        loss = -logp if gamma == 0 else -logp * _focus(-torch.expm1(logp), gamma)
        w = target_weights(classes, valid, weight, input.dtype)
        if w is not None:
            loss = loss * w
        if valid is not None:
            loss = torch.where(valid, loss, 0.0)
        return R.reduce_weighted(loss, reduction, w)

    return with_targets(run, input, target, ignore_index, input.size(cdim))
