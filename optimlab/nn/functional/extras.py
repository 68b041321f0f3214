"""Losses beyond torch (functional forms): sigmoid focal loss, GIoU/DIoU box losses, 0-1 loss.

No torch counterpart exists, so these are tested against independent formulas and hand-computed values
(tests/test_losses_extras.py). Default ``reduction`` is ``'mean'``, like every torch loss (torchvision's
box and focal functions default to ``'none'``). Reduction via :mod:`optimlab.nn._reduction`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _reduction as R
from .margin import logistic_loss

__all__ = ["diou_loss", "generalized_box_iou_loss", "sigmoid_focal_loss", "zero_one_loss"]


def sigmoid_focal_loss(input: Tensor, target: Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "mean") -> Tensor:
    """Focal loss on logits (Lin et al. 2017): ``ℓ = α_t (1 - p_t)^γ · BCE(x, y)`` with ``p = σ(x)``,
    ``1 - p_t = y σ(-x) + (1 - y) σ(x)`` (computed so, without cancellation) and ``α_t = α y + (1 - α)(1 - y)``;
    ``alpha < 0`` disables the class weighting. ``gamma = 0`` with ``alpha < 0`` is plain BCE with logits.
    Targets in [0, 1], same shape as ``input``."""
    reduction = R.check(reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}")
    if alpha > 1:
        raise ValueError(f"alpha must be at most 1 (or negative to disable it), got {alpha}")
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.size()}) must be the same as input size ({input.size()})")
    y = target.to(input.dtype)
    loss = logistic_loss(input, y)
    if gamma != 0:
        q = y * torch.sigmoid(-input) + (1 - y) * torch.sigmoid(input)  # 1 - p_t
        # q = 0 (a saturated, correct prediction) would give 0 · ∞ in the gradient of q^γ for γ < 1; the floor
        # leaves the value at ~0 and makes that gradient 0, its limit.
        loss = loss * q.clamp_min(torch.finfo(q.dtype).tiny).pow(gamma)
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return R.reduce(loss, reduction)


def _boxes(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, ...]:
    """Validate two broadcastable ``(..., 4)`` box tensors ``(x1, y1, x2, y2)``; return their coordinates."""
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if b.dim() == 0 or b.size(-1) != 4:
            raise ValueError(f"{name} must have shape (..., 4) as (x1, y1, x2, y2), got {list(b.shape)}")
        if not b.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {b.dtype}")
        if bool(((b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])).any()):
            raise ValueError(f"{name} has a box with x2 < x1 or y2 < y1")
    b1, b2 = torch.broadcast_tensors(boxes1, boxes2)
    return (*b1.unbind(-1), *b2.unbind(-1))


def _iou_parts(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """``IoU = |A∩B| / (|A∪B| + ε)``, the union ``|A∪B|``, and the enclosing box's corners."""
    x1, y1, x2, y2, u1, v1, u2, v2 = _boxes(boxes1, boxes2)
    w = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp_min(0)
    h = (torch.minimum(y2, v2) - torch.maximum(y1, v1)).clamp_min(0)
    inter = w * h
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    enclosing = (torch.minimum(x1, u1), torch.minimum(y1, v1), torch.maximum(x2, u2), torch.maximum(y2, v2))
    return inter / (union + eps), union, (x1, y1, x2, y2, u1, v1, u2, v2, *enclosing)


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "mean", eps: float = 1e-7) -> Tensor:
    """GIoU loss (Rezatofighi et al. 2019): ``1 - IoU + (|C| - |A∪B|) / (|C| + ε)``, ``C`` the smallest box
    enclosing both. In [0, 2): 0 for identical boxes, above 1 for disjoint ones."""
    reduction = R.check(reduction)
    iou, union, (*_, c1, d1, c2, d2) = _iou_parts(boxes1, boxes2, eps)
    area_c = (c2 - c1) * (d2 - d1)
    return R.reduce(1 - iou + (area_c - union) / (area_c + eps), reduction)


def diou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "mean", eps: float = 1e-7) -> Tensor:
    """DIoU loss (Zheng et al. 2020): ``1 - IoU + ρ² / (c² + ε)``, ``ρ`` the distance between the box centres
    and ``c`` the diagonal of the smallest enclosing box. In [0, 2)."""
    reduction = R.check(reduction)
    iou, _, (x1, y1, x2, y2, u1, v1, u2, v2, c1, d1, c2, d2) = _iou_parts(boxes1, boxes2, eps)
    rho2 = ((x1 + x2 - u1 - u2) / 2) ** 2 + ((y1 + y2 - v1 - v2) / 2) ** 2
    diag2 = (c2 - c1) ** 2 + (d2 - d1) ** 2
    return R.reduce(1 - iou + rho2 / (diag2 + eps), reduction)


class _ZeroGradient(torch.autograd.Function):
    """Identity on a piecewise-constant loss, with a zero gradient for the scores it was computed from."""

    @staticmethod
    def forward(ctx: Any, value: Tensor, scores: Tensor) -> Tensor:
        ctx.shape, ctx.dtype, ctx.device = scores.shape, scores.dtype, scores.device
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        return None, torch.zeros(ctx.shape, dtype=ctx.dtype, device=ctx.device)


def zero_one_loss(input: Tensor, target: Tensor, threshold: float = 0.0, reduction: str = "mean") -> Tensor:
    """Misclassification indicator ``ℓ_i = [prediction_i ≠ target_i]`` (``mean``: the error rate).

    * Multi-class: scores ``(N, C, d1, …)`` (or ``(C,)``) and integer class indices ``(N, d1, …)`` (or 0-d);
      the prediction is the arg-max over classes.
    * Binary: ``input`` and ``target`` of the same shape; predicted positive where ``input > threshold``
      (0 for logits, 0.5 for probabilities); a target is positive where it exceeds 0.5 (so {0, 1}, {-1, 1},
      bool and soft labels work).

    The loss is piecewise constant: its gradient is 0 almost everywhere and undefined on the decision boundary.
    We return 0 everywhere, so the loss can be logged or summed with differentiable losses without breaking
    ``backward()``, but it does not train anything. A sample whose scores contain NaN gets a NaN loss."""
    reduction = R.check(reduction)
    if input.dim() == target.dim() + 1:
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise RuntimeError(f"zero_one_loss: class-index targets must be integers, got {target.dtype}")
        cdim = 1 if input.dim() >= 2 else 0
        if input.size(cdim) == 0:
            raise ValueError("zero_one_loss: input has no classes")
        if input.shape[:cdim] + input.shape[cdim + 1:] != target.shape:
            raise ValueError(f"zero_one_loss: target size {list(target.shape)} does not match input size "
                             f"{list(input.shape)} without its class dimension {cdim}")
        if target.numel() and bool(((target < 0) | (target >= input.size(cdim))).any()):
            raise IndexError(f"zero_one_loss: target class out of range [0, {input.size(cdim)})")
        scores = input.detach()
        wrong = scores.argmax(cdim) != target
        undefined = scores.isnan().any(cdim)
    elif input.shape == target.shape:
        scores = input.detach()
        positive = target.detach() if target.dtype == torch.bool else target.detach() > 0.5
        wrong = (scores > threshold) != positive
        undefined = scores.isnan()
    else:
        raise ValueError(f"zero_one_loss: expected input of the target's shape (binary) or with one extra class "
                         f"dimension (multi-class), got input {list(input.shape)} and target {list(target.shape)}")
    dtype = input.dtype if input.is_floating_point() else torch.get_default_dtype()
    loss = torch.where(undefined, torch.nan, wrong.to(dtype))
    if input.requires_grad:
        loss = _ZeroGradient.apply(loss, input)
    return R.reduce(loss, reduction)
