"""Likelihood losses: cross entropy, NLL, BCE, KL divergence, Poisson and Gaussian NLL (functional forms).

Signatures follow ``torch.nn.functional``; every loss reduces through :mod:`optimlab.nn._reduction`.
Class-index losses share :func:`_check_class_target` (torch's shape/dtype rules) and cross entropy's core
(:mod:`._ce`: the loss, its gradient, ``ignore_index`` and range checks).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import _reduction as R
from ._autograd import BinaryCrossEntropy, BinaryCrossEntropyWithLogits, apply, not_differentiable
from ._ce import CrossEntropy, class_loss, plain_call, plain_loss, prob_loss, with_targets

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "gaussian_nll_loss",
    "kl_div",
    "nll_loss",
    "poisson_nll_loss",
]

_INDEX_DTYPES = (torch.int64, torch.uint8)
#: inputs of more elements than this run cross entropy's backward through :class:`._ce.CrossEntropy`, which keeps
#: no ``(N, C, …)`` tensor; smaller ones compose the primitives (cheaper per call; they keep the log-softmax, as
#: torch does)
LARGE = 1 << 16
#: class weights or ignored targets on inputs of more elements than this also go through the Function: a
#: composition keeps ``w_y`` per position, or the mask and the masked classes, beyond torch's bytes; at most a
#: few KiB below it, where the composition costs half the Function's time per call
SMALL = 1 << 12


def _keeps_less(input: Tensor, masked: bool, weight: Tensor | None) -> bool:
    """Whether cross entropy goes through :class:`._ce.CrossEntropy`: autograd records a large input (more than
    :data:`LARGE` elements), or class weights or ignored targets with more than :data:`SMALL` (a composition
    would keep the ``(N, C, …)`` log-softmax, as torch does, and ``w_y`` per position, or the mask and the
    masked classes, beyond it)."""
    n = input.numel()
    return (n > LARGE or ((masked or weight is not None) and n > SMALL)) and input.requires_grad and \
        torch.is_grad_enabled() and not torch.compiler.is_compiling()


def _class_dim(input: Tensor) -> int:
    """Classes sit on dim 0 of an unbatched ``(C,)`` input, else on dim 1 of ``(N, C, d1, …)``."""
    return 0 if input.dim() == 1 else 1


def _check_weight(weight: Tensor | None, input: Tensor, n_classes: int, prefix: str = "") -> None:
    if weight is None:
        return
    if weight.dim() != 1 or weight.numel() != n_classes:
        raise RuntimeError(f"{prefix}weight tensor should be defined either for all {n_classes} classes or no "
                           f"classes but got weight tensor of shape: {list(weight.shape)}")


def _check_class_target(input: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    """torch's checks for class-index targets; returns the target shaped like ``input`` minus the class dim."""
    if input.dim() < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.dim()})")
    if input.dim() != 1 and (target.dim() == 0 or input.size(0) != target.size(0)):
        got = target.size(0) if target.dim() else "a 0-d target"
        raise ValueError(f"Expected input batch_size ({input.size(0)}) to match target batch_size ({got}).")
    if target.dtype not in _INDEX_DTYPES:
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {_dtype_word(target.dtype)}")
    if input.dim() <= 2:
        if target.dim() > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if input.dim() == 1:
            if target.numel() != 1:
                raise RuntimeError(f"size mismatch (got input: {list(input.shape)} , target: {list(target.shape)})")
            target = target.reshape(())
    else:
        expected = [input.size(0), *input.shape[2:]]
        if list(target.shape) != expected:
            raise RuntimeError(f"Expected target size {expected}, got {list(target.shape)}")
    _check_weight(weight, input, input.size(_class_dim(input)))
    if weight is not None and weight.dtype != input.dtype:
        raise RuntimeError(f"expected scalar type {_dtype_word(input.dtype)} but found {_dtype_word(weight.dtype)}")
    return target


def _dtype_word(dtype: torch.dtype) -> str:
    """torch's scalar-type names in messages (``Long``, ``Float``, ``Double``, …)."""
    return {torch.int64: "Long", torch.int32: "Int", torch.int16: "Short", torch.int8: "Char", torch.uint8: "Byte",
            torch.float32: "Float", torch.float64: "Double", torch.float16: "Half", torch.bfloat16: "BFloat16",
            torch.bool: "Bool"}.get(dtype, str(dtype).replace("torch.", ""))


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Negative log likelihood ``ℓ_i = -w[y_i]·x[i, y_i]``; ``mean`` divides by ``Σ_i w[y_i]`` over non-ignored
    targets (NaN when every target is ignored)."""
    if size_average is None and reduce is None and plain_call(input, target, weight, reduction):
        try:
            return plain_loss(input, target, reduction, weight, ignore_index)
        except (RuntimeError, IndexError):
            pass  # an out-of-range target: the checked path raises torch's error
    reduction = R.resolve(reduction, size_average, reduce)
    target = _check_class_target(input, target, weight)
    _weight_not_differentiable(input, weight)
    cdim = _class_dim(input)

    def run(valid: Tensor | None, classes: Tensor) -> Tensor:
        loss, wy = class_loss(input, classes, valid, weight, 0.0, cdim)
        return R.reduce_weighted(loss, reduction, wy)

    return with_targets(run, input, target, ignore_index, input.size(cdim))


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits ``x`` against class indices or class probabilities ``y``.

    Indices: ``ℓ_i = (1-ε)·(-w[y_i]·logp[i, y_i]) + ε/C·Σ_c -w_c·logp[i, c]`` (0 where ignored); ``mean`` divides
    by ``Σ_i w[y_i]`` over non-ignored targets (see :class:`._autograd.CrossEntropyIndex`).
    Probabilities: ``ℓ_i = -Σ_c w_c·ỹ_ic·logp[i, c]`` with
    ``ỹ = (1-ε)·y + ε/C``; ``mean`` divides by the number of samples ``numel / C``.
    """
    if label_smoothing == 0.0 and size_average is None and reduce is None and \
            plain_call(input, target, weight, reduction) and \
            not _keeps_less(input, 0 <= ignore_index < input.shape[1], weight):
        try:
            return plain_loss(torch.log_softmax(input, 1), target, reduction, weight, ignore_index)
        except (RuntimeError, IndexError):
            pass  # an out-of-range target: the checked path raises torch's error
    reduction = R.resolve(reduction, size_average, reduce)
    cdim = _class_dim(input) if input.dim() else 0
    if input.shape == target.shape:
        return _cross_entropy_probs(input, target, weight, reduction, ignore_index, label_smoothing, cdim)
    target = _check_class_target(input, target, weight)
    _weight_not_differentiable(input, weight)
    if label_smoothing > 0.0:
        _check_smoothing(label_smoothing)
    cdim, eps = _class_dim(input), max(label_smoothing, 0.0)

    def run(valid: Tensor | None, classes: Tensor) -> Tensor:
        if _keeps_less(input, valid is not None, weight):
            return CrossEntropy.apply(input, classes, valid, weight, eps, cdim, False, R.check(reduction))
        loss, wy = class_loss(torch.log_softmax(input, cdim), classes, valid, weight, eps, cdim)
        return R.reduce_weighted(loss, reduction, wy)

    return with_targets(run, input, target, ignore_index, input.size(cdim))


def _weight_not_differentiable(input: Tensor, weight: Tensor | None) -> None:
    """Class-index NLL has no derivative for ``weight`` in torch (its kernel is nll_loss2d for 4-D input)."""
    not_differentiable("nll_loss2d_forward" if input.dim() == 4 else "nll_loss_forward", weight=weight)


def _check_smoothing(label_smoothing: float) -> None:
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")


def _cross_entropy_probs(input: Tensor, target: Tensor, weight: Tensor | None, reduction: str, ignore_index: int,
                         eps: float, cdim: int) -> Tensor:
    if not target.is_floating_point():
        raise RuntimeError(f"Expected floating point type for target with class probabilities, got "
                           f"{_dtype_word(target.dtype)}")
    if ignore_index >= 0:
        raise RuntimeError("ignore_index is not supported for floating point target")
    n_classes = input.size(cdim) if input.dim() else 1
    _check_weight(weight, input, n_classes, "cross_entropy: ")
    if eps > 0.0:
        _check_smoothing(eps)
    if _keeps_less(input, False, weight) and not target.requires_grad:  # the Function has no gradient for the target
        loss = CrossEntropy.apply(input, target, None, weight, eps, cdim, True)
    else:
        loss = prob_loss(torch.log_softmax(input, cdim), target, weight, eps, cdim)
    if reduction == "none" or reduction == "sum":
        return R.reduce(loss, reduction)
    if input.numel() == 0:
        return loss.sum().fill_(math.nan)
    return loss.sum() / (input.numel() // n_classes)


def _reduce_by_count(loss: Tensor, reduction: str) -> Tensor:
    """``mean`` of more than :data:`LARGE` elements as ``Σ loss / n``: its backward is an expand (a view) where
    ``mean``'s materialises ``grad / n`` at the input's size, one full pass more for the custom-Function losses;
    smaller ones by ``mean`` (one autograd node, not two)."""
    return R.reduce(loss, reduction, loss.numel() if reduction == "mean" and loss.numel() > LARGE else None)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """``ℓ = -w·(y·max(log x, -100) + (1-y)·max(log(1-x), -100))``; the gradient is torch's
    ``w·(x - y) / max(x(1-x), 1e-12)`` (finite at x ∈ {0, 1}), and double backward works."""
    reduction = R.resolve(reduction, size_average, reduce)
    if target.size() != input.size():
        raise ValueError(f"Using a target size ({target.size()}) that is different to the input size "
                         f"({input.size()}) is deprecated. Please ensure they have the same size.")
    if target.dtype != input.dtype:
        raise RuntimeError(f"Found dtype {_dtype_word(target.dtype)} but expected {_dtype_word(input.dtype)}")
    if weight is not None:
        weight = weight.to(input.dtype).expand(torch.broadcast_shapes(target.size(), weight.size()))
        if weight.shape != input.shape:
            raise RuntimeError(f"weight of shape {list(weight.shape)} does not match the input's {list(input.shape)}")
    not_differentiable("binary_cross_entropy", weight=weight)
    # torch's range checks, data-dependent: eager CPU only (torch's kernels check on the device), NaN failing them
    # as in torch's kernel. The target's: one pass and two scalar reads; the input's shows as a NaN loss (the log
    # of an x outside [0, 1], or a NaN x), so a reduced loss is checked by reading it (a NaN weight also makes one:
    # then the input is checked and passes)
    check = R.host(input) and R.host(target) and input.numel()
    if check:
        _check_unit(target, "target")
        if reduction == "none":
            _check_unit(input, "input")
    if weight is None:
        loss = apply(BinaryCrossEntropy, input, target, reduction)
    else:
        loss = _reduce_by_count(apply(BinaryCrossEntropy, input, target, "none") * weight, reduction)
    if check and reduction != "none" and math.isnan(loss.item()):
        _check_unit(input, "input")
    return loss


def _check_unit(t: Tensor, name: str) -> None:
    """torch's RuntimeError unless every element of ``t`` lies in [0, 1] (NaN fails; reads ``t``: CPU only)."""
    lo, hi = (t.detach() if t.requires_grad else t).aminmax()
    if not (lo.item() >= 0 and hi.item() <= 1):
        raise RuntimeError(f"all elements of {name} should be between 0 and 1")


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """``ℓ = w·((1-y)·x - (1 + (p-1)·y)·log σ(x))`` with ``p = pos_weight`` broadcast over the last dims
    (stable for large ``|x|`` through ``log σ``)."""
    reduction = R.resolve(reduction, size_average, reduce)
    if target.size() != input.size():
        raise ValueError(f"Target size ({target.size()}) must be the same as input size ({input.size()})")
    if not target.is_floating_point():
        raise RuntimeError(f"result type {_dtype_word(input.dtype)} can't be cast to the desired output type "
                           f"{_dtype_word(target.dtype)}")
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        if t is not None and t.shape != input.shape and torch.broadcast_shapes(t.shape, input.shape) != input.shape:
            raise RuntimeError(f"{name} of shape {list(t.shape)} does not broadcast to the input's {list(input.shape)}")
    not_differentiable("binary_cross_entropy_with_logits", weight=weight, pos_weight=pos_weight)
    # torch multiplies the weights in place: the loss's dtype
    dtype = input.dtype if input.dtype == target.dtype else torch.promote_types(input.dtype, target.dtype)
    if pos_weight is not None:
        pos_weight = pos_weight.to(dtype)
    if weight is None:
        return apply(BinaryCrossEntropyWithLogits, input, target, pos_weight, reduction)
    loss = apply(BinaryCrossEntropyWithLogits, input, target, pos_weight, "none") * weight.to(dtype)
    return _reduce_by_count(loss, reduction)


def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Pointwise KL divergence with log-probabilities ``x``: ``ℓ = y·(log y - x)`` (``0·log 0 = 0``), or
    ``e^y·(y - x)`` when ``log_target``; ``batchmean`` divides the sum by the batch size."""
    if size_average is not None or reduce is not None:
        reduction = R.legacy_reduction(size_average, reduce)
    elif reduction == "mean":
        R.warn("reduction: 'mean' divides the total loss by both the batch size and the support size. "
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition. "
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
               stacklevel=2)
    if input.is_complex() or target.is_complex():
        raise RuntimeError("kl_div: Complex inputs not supported.")
    if not input.is_floating_point() or not target.is_floating_point():
        raise RuntimeError("kl_div: Integral inputs not supported.")
    loss = torch.exp(target) * (target - input) if log_target else torch.xlogy(target, target) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.size(0) if input.dim() else total
    return R.reduce(loss, reduction)


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                     size_average: bool | None = None, eps: float = 1e-8, reduce: bool | None = None,
                     reduction: str = "mean") -> Tensor:
    """Poisson NLL: ``ℓ = e^x - y·x`` (``log_input``) or ``x - y·log(x + eps)``; ``full`` adds Stirling's
    ``y·log y - y + ½·log(2πy)`` where ``y > 1``."""
    reduction = R.resolve(reduction, size_average, reduce)
    loss = torch.exp(input) - target * input if log_input else input - target * torch.log(input + eps)
    if full:
        stirling = target * torch.log(target) - target + 0.5 * torch.log(2 * math.pi * target)
        loss = loss + stirling.masked_fill(target <= 1, 0)
    return R.reduce(loss, reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var: Tensor | float, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """Gaussian NLL ``ℓ = ½·(log v + (x - y)² / v)`` (+ ``½·log 2π`` when ``full``), ``v = max(var, eps)`` with the
    clamp invisible to autograd (torch's convention). ``var`` is shaped like ``input``, one trailing dimension
    smaller, broadcastable along one dimension, or a float."""
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = torch.full_like(input, var)
    elif not isinstance(var, Tensor):
        raise TypeError(f"var must be a Tensor or a float, got {type(var).__name__}")
    elif R.host(var) and bool((var < 0).any()):  # data-dependent: eager CPU only
        raise ValueError("var has negative entry/entries")
    if var.size() != input.size():
        if input.size()[:-1] == var.size():
            var = var.unsqueeze(-1)
        elif not (input.dim() == var.dim()
                  and sum(v for i, v in zip(input.size(), var.size(), strict=True) if i != v) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in R.REDUCTIONS:
        raise ValueError(f"{reduction} is not valid")
    v = var.clone()
    with torch.no_grad():  # clamp in place, unseen by autograd: d/dvar flows as if unclamped
        v.clamp_(min=eps)
    loss = 0.5 * (torch.log(v) + (input - target) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return R.reduce(loss, reduction)
