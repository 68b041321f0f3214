"""Custom autograd Functions for the binary likelihood losses whose closed-form gradient must follow torch's
convention (BCE: finite at 0 and 1). The backwards are written with differentiable tensor ops, so double
backward works through them (cross entropy's Function is in :mod:`._ce`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _reduction as R

_BCE_EPS = 1e-12  # torch's floor on x(1-x) in BCE's second derivatives
_BCE_EPS_F32 = float(torch.tensor(1e-12, dtype=torch.float32))  # the kernel's float constant, ≈ 9.99999996e-13


class _Untracked:
    """A stand-in ``ctx`` for a Function's forward run outside autograd (see :func:`apply`)."""

    def __init__(self, n_inputs: int) -> None:
        self.needs_input_grad = (False,) * n_inputs

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        pass


def apply(fn: type[torch.autograd.Function], *args: Any) -> Any:
    """``fn.apply(*args)``, or, when autograd records nothing (no gradient mode, or no input requiring one), just
    ``fn.forward``: the same values without the Function's bookkeeping (several µs a call, most of a small
    loss's cost in evaluation loops)."""
    if torch.compiler.is_compiling() or (torch.is_grad_enabled() and any(
            isinstance(a, Tensor) and a.requires_grad for a in args)):
        return fn.apply(*args)
    return fn.forward(_Untracked(len(args)), *args)


def reduced(loss: Tensor, reduction: str) -> Tensor:
    """An elementwise loss reduced inside its Function (``none``, ``sum`` or ``mean``): one autograd node for the
    loss and its reduction, whose backward scales the incoming 0-d gradient (:func:`element_grad`). ``mean`` as
    ``Σ/n`` in float32/64 (bitwise CPU's mean, in less time: 1.0 vs 1.4 ms at 2^22 elements, 3.5 vs 4.3 µs at
    320)."""
    if reduction == "none":
        return loss
    if reduction == "mean" and not (loss.dtype == torch.float32 or loss.dtype == torch.float64):
        return loss.mean()  # half types: CPU's mean divides before rounding the sum to the half type
    total = loss.sum()
    return total if reduction == "sum" else total.div(R.constant(loss.numel(), total))


def element_grad(grad: Tensor, x: Tensor, reduction: str) -> Tensor:
    """The gradient reaching each element of a loss :func:`reduced` in its Function: ``grad / n`` for ``mean``
    (0-d; it broadcasts, and autograd sums a full-shaped gradient of it back under ``create_graph``)."""
    return grad.div(R.constant(x.numel(), grad)) if reduction == "mean" else grad


def not_differentiable(function: str, **args: Tensor | None) -> None:
    """torch's RuntimeError for an argument its kernel has no derivative for (a class ``weight``, ``pos_weight``)
    passed with ``requires_grad`` while autograd is recording."""
    if not torch.is_grad_enabled():
        return
    for name, t in args.items():
        if t is not None and t.requires_grad:
            raise RuntimeError(f"The function '{function}' is not differentiable with respect to argument '{name}'. "
                               "This input cannot have requires_grad True.")


class BinaryCrossEntropy(torch.autograd.Function):
    """Elementwise ``ℓ = (y - 1)·max(log(1-x), -100) - y·max(log x, -100)``.

    ``∂ℓ/∂x = (x - y) / max(x(1-x), ε)`` and ``∂ℓ/∂y = -logit(x)``, torch's formulas (autograd through the
    clamped logs would give 0 at the clamp instead)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, reduction: str = "none") -> Tensor:
        ctx.save_for_backward(x, y)
        ctx.reduction = reduction
        # in place after the first op of each term: three input-sized allocations (each a fresh multi-MB buffer
        # that page-faults in); ℓ = -lerp(log(1-x), log x, y), seven kernels
        log_not = torch.neg(x).log1p_().clamp_min_(-100)
        minus = torch.lerp(log_not, torch.log(x).clamp_min_(-100), y)  # -ℓ: negated after the reduction, or
        if reduction == "mean" and (x.dtype is torch.float32 or x.dtype is torch.float64):  # with it (Σ/(-n))
            return minus.sum().div(R.constant(-x.numel(), x))  # bitwise -(Σ ℓ)/n, one full pass less
        return reduced(minus, reduction).neg_() if reduction != "none" else minus.neg_()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, y = ctx.saved_tensors
        grad = element_grad(grad, x, ctx.reduction)
        graph = torch.is_grad_enabled()  # create_graph: the slope as a Function with torch's second derivatives
        gx = (BinaryCrossEntropySlope.apply if graph else bce_slope)(grad, x, y) if ctx.needs_input_grad[0] else None
        gy = -grad * torch.logit(x) if ctx.needs_input_grad[1] else None
        return gx, gy, None


def bce_slope(grad: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """``g·(x - y) / max(x(1-x), ε)`` in four kernels (:class:`BinaryCrossEntropySlope`'s value)."""
    denom = torch.rsub(x, 1).mul_(x).clamp_min_(_BCE_EPS_F32)  # (1 - x)·x, as x·(1 - x) (commutative)
    return torch.sub(x, y).mul_(grad).div_(denom)  # (x - y)·g / denom: grad·(x - y) / denom


class BinaryCrossEntropySlope(torch.autograd.Function):
    """``g·(x - y) / max(x(1-x), ε)`` (ε: the float32 value of 1e-12, as torch's kernel uses), with torch's
    second derivatives: ``∂/∂x = g·(x² - 2xy + y) / ((x+δ)²(1-x+δ)²)``, ``∂/∂y = -g / max(x(1-x), δ)``,
    ``δ = 1e-12``."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, x: Tensor, y: Tensor) -> Tensor:
        ctx.save_for_backward(grad, x, y)
        return bce_slope(grad, x, y)

    @staticmethod
    def backward(ctx: Any, g2: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        grad, x, y = ctx.saved_tensors
        denom = ((1 - x) * x).clamp_min(_BCE_EPS)
        g_grad = g2 * (x - y) / denom if ctx.needs_input_grad[0] else None
        g_x = g_y = None
        if ctx.needs_input_grad[1]:
            g_x = (x * x - 2 * x * y + y) / ((x + _BCE_EPS).pow(2) * (1 - x + _BCE_EPS).pow(2)) * (g2 * grad)
        if ctx.needs_input_grad[2]:
            g_y = -g2 * grad / denom
        return g_grad, g_x, g_y


class BinaryCrossEntropyWithLogits(torch.autograd.Function):
    """Elementwise ``ℓ = (1-y)·x - (1 + (p-1)·y)·log σ(x)`` (``p = pos_weight``, 1 when absent) with torch's
    closed-form gradients ``∂ℓ/∂x = (1 + (p-1)·y)·σ(x) - p·y`` and ``∂ℓ/∂y = log σ(-x) - p·log σ(x)``; both are
    written with differentiable ops, so double backward follows."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, pos_weight: Tensor | None, reduction: str = "none") -> Tensor:
        ctx.save_for_backward(x, y, pos_weight)
        ctx.reduction = reduction
        log_sig = torch.nn.functional.logsigmoid(x)
        if pos_weight is not None:
            log_sig.mul_((pos_weight - 1).mul(y).add_(1))
        # (1 - y)·x - (1 + (p-1)·y)·log σ(x)
        return reduced(torch.addcmul(x, y, x, value=-1).sub_(log_sig), reduction)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        x, y, pw = ctx.saved_tensors
        grad = element_grad(grad, x, ctx.reduction)
        gx = gy = None
        if torch.is_grad_enabled():  # create_graph: out of place, so autograd can differentiate this backward
            if ctx.needs_input_grad[0]:
                t = None if pw is None else pw * y
                gx = (torch.sigmoid(x) - y if t is None else (t + 1 - y) * torch.sigmoid(x) - t) * grad
            if ctx.needs_input_grad[1]:
                logsig = torch.nn.functional.logsigmoid
                gy = (-x if pw is None else logsig(-x) - logsig(x) * pw) * grad
            return gx, gy, None, None
        if ctx.needs_input_grad[0]:
            if pw is None:
                gx = torch.sigmoid(x).sub_(y).mul_(grad)
            else:
                t = pw * y
                gx = torch.sigmoid(x).mul_(t.add(1).sub_(y)).sub_(t).mul_(grad)
        if ctx.needs_input_grad[1]:
            logsig = torch.nn.functional.logsigmoid
            gy = (x.neg() if pw is None else logsig(-x).sub_(logsig(x).mul_(pw))).mul_(grad)
        return gx, gy, None, None
