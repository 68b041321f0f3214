"""Losses beyond torch (functional forms): the 0-1 loss. The focal losses are in :mod:`.focal`, the box losses in
:mod:`.detection` (both re-exported here under their older import path). No torch counterpart exists, so these are
tested against independent formulas and hand-computed values (tests/test_losses_extras.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _reduction as R
from .detection import diou_loss, generalized_box_iou_loss  # noqa: F401 - the older import path
from .focal import sigmoid_focal_loss  # noqa: F401 - the older import path

__all__ = ["zero_one_loss"]


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
        if target.numel() and R.host(target) and bool(((target < 0) | (target >= input.size(cdim))).any()):
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
