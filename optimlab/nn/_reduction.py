"""Reduction of elementwise losses, and torch's legacy ``size_average``/``reduce`` arguments: the one
place every loss reduces."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

REDUCTIONS = ("none", "mean", "sum")


def warn(message: str, stacklevel: int = 2) -> None:
    """``warnings.warn(message, UserWarning)`` in eager mode; nothing while Dynamo traces (it cannot trace
    ``warnings.warn``: a graph break, or an error under ``fullgraph=True``; torch's compiled losses warn once
    at trace time at most)."""
    if not torch.compiler.is_compiling():
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)


def host(t: Tensor) -> bool:
    """Whether a loss may read ``t``'s data on the host for torch's eager-mode checks: only on the CPU, where it
    costs no device synchronisation, and not while Dynamo traces (a data-dependent branch). Elsewhere the checks
    happen on the device, or where torch does them."""
    return not torch.compiler.is_compiling() and t.is_cpu  # is_cpu: a sixth of device.type's cost per call


def legacy_reduction(size_average: bool | None, reduce: bool | None, emit_warning: bool = True) -> str:
    """Map the deprecated ``size_average``/``reduce`` pair to a reduction string (warning like torch):
    ``reduce=False`` → ``'none'``; else ``size_average=False`` → ``'sum'``; else ``'mean'``."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if (size_average and reduce) else ("sum" if reduce else "none")
    if emit_warning:
        warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.", stacklevel=3)
    return ret


def resolve(reduction: str, size_average: bool | None = None, reduce: bool | None = None,
            strict: bool = False) -> str:
    """The effective reduction: the legacy pair wins when either is given (torch's rule)."""
    if size_average is not None or reduce is not None:
        return legacy_reduction(size_average, reduce)
    return check(reduction, strict)


def check(reduction: str, strict: bool = False) -> str:
    """Validate a reduction string; ``'elementwise_mean'`` is torch's deprecated alias of ``'mean'``, except
    where torch's Python code checks the string itself (``strict``: weighted l1/mse/huber, multilabel soft
    margin), which rejects it."""
    if reduction == "elementwise_mean" and not strict:
        warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.", stacklevel=3)
        return "mean"
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def reduce(loss: Tensor, reduction: str, denominator: Tensor | float | None = None) -> Tensor:
    """``none``: loss; ``sum``: Σ loss; ``mean``: Σ loss / denominator (default: the element count)."""
    reduction = check(reduction)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if denominator is None:
        return loss.mean()
    return loss.sum().div(constant(denominator, loss) if isinstance(denominator, int) else denominator)


_CONSTANTS: dict[tuple[float, torch.dtype], Tensor] = {}


def constant(value: float, like: Tensor) -> Tensor | float:
    """The number ``value`` (a count to divide by, a margin) as a 0-d tensor of a float32/64 CPU ``like``'s dtype,
    made once per (value, dtype) and kept (at most 256): an op with it costs half of one with a Python number,
    which ATen wraps in a fresh tensor per call. ``value`` itself for other dtypes (a half-type count would
    round), other devices, tensor subclasses (a fake or functional tensor's mode makes its own constants) and
    under ``torch.compile``. A normal tensor even when first made in inference mode, where autograd could not
    save it later."""
    dtype = like.dtype
    if not (dtype is torch.float32 or dtype is torch.float64) or type(like) is not Tensor or not like.is_cpu or \
            torch.compiler.is_compiling():
        return value
    t = _CONSTANTS.get((value, dtype))
    if t is None:
        if len(_CONSTANTS) >= 256:
            _CONSTANTS.clear()
        with torch.inference_mode(False):
            t = _CONSTANTS[value, dtype] = torch.tensor(value, dtype=dtype)
    return t


def reduce_weighted(loss: Tensor, reduction: str, weights: Tensor | int | None) -> Tensor:
    """Like :func:`reduce`, with ``mean`` = Σ loss / Σ weights (``weights`` None: the element count; an int: a
    count of unit weights)."""
    reduction = check(reduction)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weights is None:
        return loss.mean()
    return loss.sum() / weight_total(weights)


def weight_total(weights: Tensor | int) -> Tensor | int:
    """``Σ weights`` as :func:`reduce_weighted`'s ``mean`` divides by it: ``∂ mean / ∂ loss_i = 1 / weight_total``,
    for losses whose backward applies the reduction itself."""
    return weights.sum() if isinstance(weights, Tensor) else weights


def grad_scale(reduction: str, numel: int) -> float:
    """∂ reduce(loss) / ∂ loss_i for an unweighted reduction: 1 for ``sum`` (and ``none``), ``1/numel`` for
    ``mean``. For losses whose custom backward multiplies the elementwise gradient by this scalar."""
    return 1.0 / numel if check(reduction) == "mean" and numel else 1.0


def same_size_or_warn(input: Tensor, target: Tensor) -> None:
    """torch's warning for an elementwise loss whose target broadcasts against the input."""
    if target.size() != input.size():
        warn(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )


def broadcast(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Broadcast input and target (raising torch's RuntimeError when they cannot); same shapes are returned as
    they are (``broadcast_tensors`` costs several µs of Python per call)."""
    if input.shape == target.shape:
        return input, target
    return torch.broadcast_tensors(input, target)


def _category(dtype: torch.dtype) -> int:
    """torch's type-promotion categories: bool < integer < floating < complex."""
    if dtype == torch.bool:
        return 0
    if dtype.is_complex:
        return 3
    return 2 if dtype.is_floating_point else 1


def result_type(a: Tensor, b: Tensor) -> torch.dtype:
    """``torch.result_type(a, b)`` for two tensors, written so that Dynamo traces it (it cannot trace
    ``torch.result_type``): same dimensionality → ``promote_types``; a 0-d tensor against a dimensioned one
    follows c10's ``combine_categories`` (the 0-d one counts only for a higher category; a complex one keeps a
    floating tensor's precision)."""
    if not torch.compiler.is_compiling():
        return torch.result_type(a, b)
    if (a.dim() == 0) == (b.dim() == 0):
        return torch.promote_types(a.dtype, b.dtype)
    dim, zero = (a.dtype, b.dtype) if b.dim() == 0 else (b.dtype, a.dtype)
    if dim.is_complex:
        return dim
    if zero.is_complex:
        return torch.promote_types(dim, torch.complex32) if dim.is_floating_point else zero
    if dim.is_floating_point:
        return dim
    if dim == torch.bool or zero.is_floating_point:
        return torch.promote_types(dim, zero)
    return dim


def can_cast(source: torch.dtype, target: torch.dtype) -> bool:
    """``torch.can_cast`` (same-kind casting: never to a lower category), traceable by Dynamo."""
    if not torch.compiler.is_compiling():
        return torch.can_cast(source, target)
    return _category(source) <= _category(target)
