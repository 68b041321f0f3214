"""Regression losses (functional forms, torch.nn.functional's signatures); reduction via
:mod:`optimlab.nn._reduction`.

Every loss here is elementwise on the broadcast ``(input, target)`` pair, so unbatched and
K-dimensional inputs need nothing special."""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch import Tensor

from .. import _reduction as R
from ._autograd import element_grad, reduced

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


# elements per piece: a piece's four buffers (x, y and two work pieces) stay in a 2 MiB L2. Issue 11, 4096×1000
# Huber fwd+bwd against torch's, one thread, paired: 2^16 1.05–1.13×, 2^15 1.16–1.29×, 2^17 1.13–1.31×, 2^19
# 1.41–1.84× (every pass after the first spilled to L3); below 2^15 per-op overhead dominates
_CHUNK = 1 << 16


def _pieces(*tensors: Tensor) -> list[tuple[Tensor, ...]]:
    """The same-shaped ``tensors`` cut into matching pieces of about :data:`_CHUNK` elements: flat slices when all
    are contiguous, else slices along dim 0 (which keep broadcast strides, so nothing is copied)."""
    if all(t.is_contiguous() for t in tensors):
        tensors = tuple(t.view(-1) for t in tensors)
    first = tensors[0]
    row = first[0].numel() if first.size(0) else 1
    return list(zip(*(t.split(max(1, _CHUNK // max(1, row))) for t in tensors), strict=True))


#: inputs of at most this many elements compose the primitives when autograd records (cheaper per call; they
#: keep the difference for backward), larger ones go through :class:`_ClampedQuadratic`, which keeps nothing
_SMALL = 1 << 16

_SCRATCH = threading.local()


def _scratch(numel: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A flat work buffer of at least ``numel`` elements, kept per thread, dtype and device between calls (CPU):
    a fresh multi-MB buffer per call goes back to the OS when freed and page-faults in again on the next call,
    which cost more than the piecewise pass itself (CUDA's caching allocator needs no help)."""
    if device.type != "cpu":
        return torch.empty(numel, dtype=dtype, device=device)
    cache = _SCRATCH.__dict__.setdefault("buffers", {})
    buf = cache.get(dtype)
    if buf is None or buf.numel() < numel:
        with torch.inference_mode(False):  # a normal tensor: writable inside and outside inference mode
            buf = cache[dtype] = torch.empty(numel, dtype=dtype)
    return buf[:numel]


def _slope(x: Tensor, y: Tensor, a: float, k: float | None) -> Tensor:
    """``∂ℓ/∂x = a·c`` of :class:`_ClampedQuadratic`'s loss in differentiable ops (double backward): ``c = d`` where
    ``|d| < k`` strictly, ``±k`` beyond, and ``d`` detached at NaN (derivative 0), as torch's double backward."""
    c = d = x - y
    if k is not None:
        c = torch.where(d.abs() < k, d, torch.where(d.isnan(), d.detach(), d.sign() * k))
    return c * a


def _unscaled_(d: Tensor, k: float | None, c: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """:class:`_ClampedQuadratic`'s loss over its factor (``a`` with k, ``a/2`` without), in place of ``d``:
    ``c·(d - ½c)`` with ``c = clamp(d, -k, k)`` (into ``c`` when given; returned), ``d²`` without k (c: None).
    The eager passes' one statement of it; :func:`quadratic` is its differentiable composition."""
    if k is None:
        return d.mul_(d), None
    c = torch.clamp(d, -k, k) if c is None else torch.clamp(d, -k, k, out=c)
    return d.sub_(c, alpha=0.5).mul_(c), c


class _ClampedQuadratic(torch.autograd.Function):
    """``ℓ = a·c·(d - ½c)`` with ``d = x - y`` and ``c = clamp(d, -k, k)`` (``k = None``: ``c = d``, ``ℓ = (a/2)·d²``),
    reduced by :func:`optimlab.nn._reduction.reduce`; ``∂ℓ/∂x = a·c`` times the reduction's scale.

    One formula for three losses: MSE (``a = 2``, no clamp), Huber (``a = 1``, ``k = δ``) and smooth L1
    (``a = 1/β``, ``k = β``). A Function because autograd through ``clamp``/``where`` and the reduction ran
    several times slower than torch's fused kernels. Both passes run piece by piece (:func:`_pieces`) through
    small reused buffers, so forward allocates no input-sized tensor (except the result for ``none``; ``sum``
    and ``mean`` add per-piece sums in at least float32) and backward only the gradient, which it recomputes
    from the inputs as torch's kernels do: nothing input-sized is held for backward, and no large buffer churns
    through the allocator each step. With ``create_graph`` the gradient is recomputed with differentiable ops
    (``|d| < k`` strictly, NaN with derivative 0, as torch's double backward)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, a: float, k: float | None, reduction: str,
                dtype: torch.dtype) -> Tensor:
        ctx.save_for_backward(x, y)
        ctx.a, ctx.k, ctx.scale = a, k, R.grad_scale(reduction, x.numel())
        return _quadratic_pieces(x, y, a, k, reduction, dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, y = ctx.saved_tensors
        a, k = ctx.a, ctx.k
        if torch.is_grad_enabled():  # double backward: differentiable ops
            gx = grad * _slope(x, y, a * ctx.scale, k)
        else:
            gx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
            scale = grad * (a * ctx.scale) if grad.dim() == 0 else None
            for xp, yp, gp, *g in _pieces(x, y, gx) if scale is not None else _pieces(x, y, gx, grad):
                c = torch.sub(xp, yp, out=gp)
                if k is not None:
                    c.clamp_(-k, k)
                if scale is not None:
                    c.mul_(scale)
                else:
                    c.mul_(g[0])
                    if a != 1:
                        c.mul_(a)
        gy = -gx if ctx.needs_input_grad[1] else None
        return (gx if ctx.needs_input_grad[0] else None), gy, None, None, None, None


class _SmallQuadratic(torch.autograd.Function):
    """:class:`_ClampedQuadratic` for a small recorded Huber / smooth L1 input (at most :data:`_SMALL` elements; one
    shape and dtype, no weights): one autograd node whose forward also makes the gradient's slope ``a·c`` and keeps
    it (one input-sized tensor, where the composition of primitives kept three in five nodes), so backward is one
    multiplication (docs/losses.md has the timings; MSE's 3-node composition is cheaper than this Function). Under
    ``create_graph`` the gradient is recomputed from the inputs with differentiable ops, as
    :class:`_ClampedQuadratic`'s."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, a: float, k: float, reduction: str) -> Tensor:
        loss, c = _unscaled_(torch.sub(x, y), k)
        assert c is not None
        if a != 1:
            loss, c = loss.mul_(a), c.mul_(a)
        ctx.save_for_backward(x, y, c)  # the slope a·c
        ctx.a, ctx.k, ctx.reduction = a, k, reduction
        return reduced(loss, reduction)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, y, slope = ctx.saved_tensors
        grad = element_grad(grad, x, ctx.reduction)
        if torch.is_grad_enabled():  # create_graph: differentiable ops
            gx = grad * _slope(x, y, ctx.a, ctx.k)
        else:
            gx = slope * grad
        gy = -gx if ctx.needs_input_grad[1] else None
        return (gx if ctx.needs_input_grad[0] else None), gy, None, None, None


def _quadratic_pieces(x: Tensor, y: Tensor, a: float, k: float | None, reduction: str, dtype: torch.dtype) -> Tensor:
    """:class:`_ClampedQuadratic`'s forward piece by piece through the per-thread scratch buffer (eager)."""
    factor = a / 2 if k is None else a
    out = torch.empty(x.shape, dtype=dtype, device=x.device) if reduction == "none" else None
    pieces = _pieces(x, y) if out is None else _pieces(x, y, out)
    acc = torch.promote_types(dtype, torch.float32)
    sums = torch.empty(len(pieces), dtype=acc, device=x.device)
    work = _scratch(pieces[0][0].numel() * (1 if k is None else 2), x.dtype, x.device)
    buf = work[: pieces[0][0].numel()].view(pieces[0][0].shape)
    cbuf = None if k is None else work[pieces[0][0].numel():].view(pieces[0][0].shape)
    for i, (xp, yp, *rest) in enumerate(pieces):
        loss, _ = _unscaled_(torch.sub(xp, yp, out=buf[: xp.size(0)]), k, None if cbuf is None else cbuf[: xp.size(0)])
        if out is None:
            torch.sum(loss.to(dtype), list(range(loss.dim())), dtype=acc, out=sums[i])
        else:
            rest[0].copy_(loss.mul_(factor) if factor != 1 else loss)
    if out is not None:
        return out
    total = sums.sum()
    total = (total / x.numel() if reduction == "mean" else total).to(dtype)
    return total * factor if factor != 1 else total


def quadratic(d: Tensor, a: float, k: float | None) -> Tensor:
    """The elementwise loss of :class:`_ClampedQuadratic`, composed of differentiable primitives (small inputs, no
    gradient, or traced by ``torch.compile``): ``a·c·(d - ½c)``, ``c = clamp(d, -k, k)``; ``(a/2)·d²`` without k."""
    if k is None:
        loss = d * d
        return loss if a == 2 else loss * (a / 2)
    if not d.requires_grad:
        c = d.clamp(-k, k)
        loss = torch.sub(d, c, alpha=0.5).mul_(c)
    else:  # hardtanh's c' = [|d| < k] strictly (0 at NaN): torch's second derivative (clamp's is 1 at |d| = k)
        c = torch.nn.functional.hardtanh(d, -k, k)
        loss = torch.sub(d, c, alpha=0.5) * c
    return loss if a == 1 else loss * a


def _clamped_quadratic(name: str, input: Tensor, target: Tensor, a: float, k: float | None, reduction: str,
                       weight: Tensor | None, keep_input_dtype: bool, mean_by_weight: bool = True) -> Tensor:
    """Run :class:`_ClampedQuadratic` with torch's dtype rules: computed in the promoted dtype, returned in it
    (mse, smooth L1) or in ``input``'s dtype (huber); integer results raise ``NotImplementedError`` (no kernel),
    a floating result that cannot be cast to an integer input's dtype ``RuntimeError``."""
    if input.dtype == target.dtype and input.is_floating_point():  # the common case: nothing to promote
        x, y, out = input, target, input.dtype
    else:
        common = R.result_type(input, target)
        out = input.dtype if keep_input_dtype else common
        if not R.can_cast(common, out):
            raise RuntimeError(f"{name}: result type {common} can't be cast to the desired output type {out}")
        if not out.is_floating_point:
            raise NotImplementedError(f"{name} is not implemented for {out} inputs")
        x, y = input.to(common), target.to(common)
    recorded = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    if recorded and k is not None and weight is None and x.shape == y.shape and x.dtype == out and \
            x.numel() <= _SMALL and not torch.compiler.is_compiling():  # (MSE's 3-node composition is cheaper)
        return _SmallQuadratic.apply(x, y, a, k, reduction)
    if not (recorded and x.numel() > _SMALL) or torch.compiler.is_compiling():
        loss = quadratic(x - y, a, k)
        return _weighted(loss if loss.dtype == out else loss.to(out), input, weight, reduction, mean_by_weight)
    x, y = R.broadcast(x, y)
    if weight is None:
        return _ClampedQuadratic.apply(x, y, a, k, reduction, out)
    loss = _ClampedQuadratic.apply(x, y, a, k, "none", out)
    return _weighted(loss, input, weight, reduction, mean_by_weight)


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Mean squared error: ``ℓ_i = w_i (x_i - y_i)²``; ``mean`` divides by ``Σ w`` when weighted,
    else by the element count."""
    R.same_size_or_warn(input, target)
    reduction = R.resolve(reduction, size_average, reduce, strict=weight is not None)
    return _clamped_quadratic("mse_loss", input, target, 2.0, None, reduction, weight, keep_input_dtype=False)


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Mean absolute error: ``ℓ_i = w_i |x_i - y_i|``; ``mean`` divides by ``Σ w`` when weighted,
    else by the element count. The gradient at ``x = y`` is 0 (``sign(0)``), as in torch."""
    d = _diff(input, target)
    reduction = R.resolve(reduction, size_average, reduce, strict=weight is not None)
    return _weighted(d.abs(), input, weight, reduction, mean_by_weight=True)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """Huber loss: ``ℓ_i = w_i · (½ d_i²  if |d_i| < δ  else  δ(|d_i| - ½ δ))`` with ``d = x - y``.
    ``mean`` divides by the element count even when weighted (torch's rule for huber)."""
    R.same_size_or_warn(input, target)
    R.broadcast(input, target)  # shape errors first, as torch
    reduction = R.check(reduction, strict=weight is not None)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    return _clamped_quadratic("huber_loss", input, target, 1.0, delta, reduction, weight, keep_input_dtype=True,
                              mean_by_weight=False)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Smooth L1: ``ℓ_i = ½ d_i² / β  if |d_i| < β  else  |d_i| - ½ β``; ``β = 0`` is the L1 loss.
    Equals the Huber loss divided by ``β``."""
    R.same_size_or_warn(input, target)
    x, y = R.broadcast(input, target)
    reduction = R.resolve(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        return R.reduce((x - y).abs(), reduction)
    return _clamped_quadratic("smooth_l1_loss", input, target, 1.0 / beta, beta, reduction, None,
                              keep_input_dtype=False)
