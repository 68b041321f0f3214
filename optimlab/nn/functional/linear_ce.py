"""Linear projection fused with cross entropy (torch 2.13's ``linear_cross_entropy``), computed in row chunks.

``ℓ = cross_entropy(x @ Wᵀ + b, y)`` without the ``(N, C)`` logits: the batch is walked in chunks of rows, a chunk's
logits living only while it is processed. For a scalar reduction with a gradient needed, forward also computes
∂x, ∂W, ∂b from each chunk's logits (3 matmuls in all, as the materialised path; autograd holds N×D and C×D);
otherwise (``'none'``, or a ``create_graph`` backward) forward keeps only the losses and backward recomputes each
chunk's logits from the saved inputs (4 matmuls; nothing of size N·C held either way).

Under ``torch.autocast`` it follows torch's composition ``cross_entropy(linear(x, W, b), y)``: ``linear`` casts
``x``, ``W``, ``b`` (floating, not float64) to the autocast dtype and projects there; ``cross_entropy`` (on
autocast's float32 list) casts the bfloat16/float16 logits, probabilities and class weights to float32 and
computes the loss there (promoted to float64 by a float64 weight or target with probabilities). Each chunk's
logits are cast up as they are made; gradients flow back to every input in its own dtype."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from typing import Any

import torch
from torch import Tensor

from .. import _reduction as R
from ._autocast import autocast_enabled
from ._ce import checked_targets, class_grad, class_loss, masked_targets, prob_grad, prob_loss

__all__ = ["linear_cross_entropy"]

_POLICIES = ("auto", "accurate", "balanced", "compact")
_MIN_CHUNK = 1 << 24  # logits per chunk at least (64 MiB in float32) without options: GEMMs of ≥ 512 rows at C = 32000


@dataclasses.dataclass(frozen=True)
class LinearCrossEntropyOptions:
    """Chunking options, with the fields and validation of ``torch.nn.LinearCrossEntropyOptions`` (an instance of
    torch's class is accepted as well). ``batch_chunk_size``: rows per chunk; ``chunking_method``
    ``"aspect_ratio[:k]"``: rows such that a chunk's logits are as large as the input ``(N, D)``, divided by ``k``
    (``"auto"``: ``"aspect_ratio:2"``). ``acc_policy``/``acc_dtype`` are accepted for compatibility; we
    accumulate in the input's dtype. ``allow_retain_graph`` is accepted; backward recomputes from the saved inputs,
    so a second backward always works."""

    allow_retain_graph: bool = False
    batch_chunk_size: int | None = None
    chunking_method: str | None = "auto"
    acc_policy: str = "auto"
    acc_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.acc_policy not in _POLICIES:
            raise ValueError(f"invalid acc_policy: {self.acc_policy!r}")
        if self.chunking_method is not None and self.chunking_method != "auto":
            name, sep, factor = self.chunking_method.partition(":")
            if not (name == "aspect_ratio" and (not sep or (factor.isdigit() and int(factor) > 0))):
                raise ValueError(f"invalid chunking_method: {self.chunking_method!r}")
        if not (self.batch_chunk_size is None or (isinstance(self.batch_chunk_size, int)
                                                  and self.batch_chunk_size > 0)):
            raise ValueError(f"batch_chunk_size must be positive int or None, got {self.batch_chunk_size!r}")
        if self.acc_dtype is not None and self.acc_dtype not in (torch.float16, torch.bfloat16, torch.float32,
                                                                 torch.float64):
            raise ValueError(f"acc_dtype must be one of {{None, torch.float16, torch.bfloat16, torch.float32, "
                             f"torch.float64}}, got {self.acc_dtype!r}")


def _aspect_rows(n: int, d: int, classes: int, factor: int) -> int:
    """``next_pow2(⌈n / ⌈classes / d⌉⌉) / factor`` rows (at most ``n``, at least 1): a chunk's logits about the
    size of the ``(n, d)`` input, divided by ``factor`` (torch's ``aspect_ratio`` rule)."""
    target = -(-n // max(1, -(-classes // max(d, 1))))
    return max(1, min((1 << max(target - 1, 0).bit_length()) // factor, n))


def _chunk_rows(options: Any, n: int, d: int, classes: int, chunkable: bool) -> int:
    """Rows per chunk: torch's rule for an ``options`` object on a configuration torch chunks, else (``options``
    None, or a configuration torch would not chunk) a chunk's logits as large as the input, or ``_MIN_CHUNK``
    logits if that is more (small chunks are dominated by per-op overhead)."""
    if options is None or not chunkable:  # and at least _MIN_CHUNK logits, so that per-op overhead stays small
        return max(_aspect_rows(n, d, classes, 1), min(n, -(-_MIN_CHUNK // max(classes, 1))))
    size, method = options.batch_chunk_size, options.chunking_method
    if method == "auto":
        method = None if size is not None else "aspect_ratio:2"
    if method is None:
        return max(1, min(size, n)) if size is not None else max(n, 1)
    _, sep, factor = method.partition(":")
    rows = _aspect_rows(n, d, classes, int(factor) if sep else 1)
    if size is not None and size != rows:
        raise ValueError(f"batch_chunk_size (={size}) and chunking_method ('{method}') give different chunk sizes "
                         f"({size} vs {rows}); pass only one.")
    return rows


def _logits(x: Tensor, w: Tensor, b: Tensor | None, classes: int) -> Tensor:
    """A chunk's logits ``x Wᵀ + b`` as ``(n, M, C)``, classes last (``M`` = positions per sample, 1 without
    out_features: then a view of the contiguous ``(n, C)`` matmul result, so softmax runs on its last dim)."""
    z = x @ w.t() if b is None else torch.addmm(b, x, w.t())
    return z.view(x.size(0), classes, -1).transpose(1, 2)


def _chunks(x: Tensor, w: Tensor, b: Tensor | None, target: Tensor, valid: Tensor | None, weight: Tensor | None,
            classes: int, eps: float, probs: bool, rows: int, ce: torch.dtype, g: Tensor | None,
            need: tuple[bool, bool, bool], losses: bool, graph: bool) -> tuple[list[Tensor], list[Tensor],
                                                                               Tensor | None, Tensor | None]:
    """One walk over the row chunks: each chunk's logits ``z`` (cast to ``ce``) once, then its per-position losses
    (``losses``: from ``log_softmax(z)``, whose ``exp`` is then the softmax) and, with ``g`` (the per-position
    gradient of the loss), the gradients ``∂x = ∂z·W``, ``∂W = Σ ∂zᵀ·x``, ``∂b = Σ ∂z`` for the inputs in ``need``
    (``graph``: out of place, so autograd records them). Under autocast ``∂z`` goes back in the projection's dtype
    for ``∂x``, ``∂W``/``∂b`` are summed in ``ce``. Returns the loss parts, the ``∂x`` parts, ``∂W``, ``∂b``."""
    cast = ce != x.dtype
    parts: list[Tensor] = []
    gx_parts: list[Tensor] = []
    gw = gb = None
    for s in range(0, x.size(0), rows):
        e = min(s + rows, x.size(0))
        xc = x[s:e]
        tc, vc = target[s:e], None if valid is None else valid[s:e]
        z = _logits(xc, w, b, classes).to(ce)
        if losses:
            logp = torch.log_softmax(z, -1)
            parts.append(prob_loss(logp, tc, weight, eps, -1) if probs else
                         class_loss(logp, tc, vc, weight, eps, -1)[0])
            p = None if g is None else logp.exp_()  # torch's softmax in its log_softmax backward
        else:
            p = torch.softmax(z, -1)
        del z
        if g is None:
            continue
        dz = prob_grad(p, g[s:e], tc, weight, eps, -1, not graph) if probs else \
            class_grad(p, g[s:e], tc, vc, weight, eps, -1, not graph)
        dz = dz.transpose(1, 2).reshape(e - s, -1)  # back to the (n, C·M) layout of x Wᵀ (a view when M = 1)
        if cast:
            dz = dz.to(x.dtype)
        if need[0]:
            gx_parts.append(dz @ w)
        if cast:
            dz, xc = dz.to(ce), xc.to(ce)
        if need[1]:
            gw = dz.t() @ xc if gw is None else (gw.addmm(dz.t(), xc) if graph else gw.addmm_(dz.t(), xc))
        if need[2]:
            gb = dz.sum(0) if gb is None else (gb + dz.sum(0) if graph else gb.add_(dz.sum(0)))
    return parts, gx_parts, gw, gb


class _LinearCrossEntropy(torch.autograd.Function):
    """``cross_entropy(x Wᵀ + b, y)`` chunked over rows: the per-position losses ``(N, M)`` (``reduction`` 'none')
    or their reduction (``R.reduce_weighted`` with ``denom``).

    * Scalar reduction with a gradient needed (``need``): forward computes ``∂x``, ``∂W``, ``∂b`` for a unit
      ``grad_output`` from each chunk's logits while it has them (3 matmuls per chunk in all, as the
      materialised path) and keeps them (N×D, C×D, C: nothing of size N·C); backward scales them by
      ``grad_output``.
    * Otherwise (``'none'``, or a backward under ``create_graph=True``): backward recomputes each chunk's logits
      from the saved inputs (one matmul more) with differentiable ops, so double backward works."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor | None, target: Tensor, valid: Tensor | None,
                weight: Tensor | None, denom: Tensor | int, classes: int, eps: float, probs: bool, rows: int,
                ce: torch.dtype, reduction: str, need: tuple[bool, bool, bool]) -> Tensor:
        """``ce``: the dtype the logits are cast to for the loss (``x``'s, or float32 under autocast)."""
        ctx.classes, ctx.eps, ctx.probs, ctx.rows, ctx.ce, ctx.reduction = classes, eps, probs, rows, ce, reduction
        n, m = x.size(0), w.size(0) // classes
        g = None
        if reduction != "none" and any(need):
            g = _position_grad(x.new_ones((), dtype=ce), reduction, denom, ce).expand(n, m)
        with torch.autocast(x.device.type, enabled=False) if ce != x.dtype else contextlib.nullcontext():
            parts, gx_parts, gw, gb = _chunks(x, w, b, target, valid, weight, classes, eps, probs, rows, ce, g,
                                              need, True, False)
        done = None if g is None else _finish(x, w, b, gx_parts, gw, gb, need)
        ctx.precomputed = g is not None
        ctx.save_for_backward(x, w, b, target, valid, weight, denom if isinstance(denom, Tensor) else None,
                              *(done or (None, None, None)))
        ctx.denom = None if isinstance(denom, Tensor) else denom
        if parts:
            loss = torch.cat(parts) if len(parts) > 1 else parts[0]
        else:
            dtype = ce if not probs else torch.promote_types(torch.promote_types(ce, target.dtype),
                                                             ce if weight is None else weight.dtype)
            loss = x.new_zeros((0, m), dtype=dtype)
        return loss if reduction == "none" else R.reduce_weighted(loss, reduction, denom)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w, b, target, valid, weight, denom, *done = ctx.saved_tensors
        graph = torch.is_grad_enabled()  # create_graph: recompute with differentiable ops (double backward)
        need = tuple(ctx.needs_input_grad[:3])
        if ctx.precomputed and not graph:
            grads = tuple(None if t is None or not k else t * grad.to(t.dtype) for t, k in zip(done, need,
                                                                                               strict=True))
        else:
            g = grad
            if ctx.reduction != "none":
                g = _position_grad(grad, ctx.reduction, ctx.denom if denom is None else denom, ctx.ce)
                g = g.expand(x.size(0), w.size(0) // ctx.classes)
            _, gx_parts, gw, gb = _chunks(x, w, b, target, valid, weight, ctx.classes, ctx.eps, ctx.probs, ctx.rows,
                                          ctx.ce, g, need, False, graph)
            grads = _finish(x, w, b, gx_parts, gw, gb, need)
        return *grads, None, None, None, None, None, None, None, None, None, None, None


def _position_grad(grad: Tensor, reduction: str, denom: Tensor | int, ce: torch.dtype) -> Tensor:
    """``∂ reduce_weighted(loss)/∂ loss_i`` times ``grad`` (0-d): ``grad`` for 'sum', ``grad / Σ denom`` for
    'mean' (divided in the reduction's accumulation dtype, as autograd through ``reduce_weighted`` would)."""
    if reduction == "sum":
        return grad.to(ce)
    return (grad / R.weight_total(denom)).to(ce)


def _finish(x: Tensor, w: Tensor, b: Tensor | None, gx_parts: list[Tensor], gw: Tensor | None, gb: Tensor | None,
            need: tuple[bool, ...]) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The chunk walk's gradients as full tensors in their inputs' dtypes (zeros for an empty batch)."""
    gx = None
    if need[0]:
        gx = torch.zeros_like(x) if not gx_parts else torch.cat(gx_parts) if len(gx_parts) > 1 else gx_parts[0]
    if need[1]:
        gw = torch.zeros_like(w) if gw is None else gw.to(w.dtype)
    if need[2]:
        gb = torch.zeros_like(b) if gb is None else gb.to(b.dtype)
    return gx, gw if need[1] else None, gb if need[2] else None


def _autocast_cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """``t`` cast as autocast casts an op's floating argument (float64 and other dtypes kept)."""
    if t is None or not t.is_floating_point() or t.dtype == torch.float64:
        return t
    return t.to(dtype)


def _check_class_target(target: Tensor, batch: tuple[int, ...], out_features: tuple[int, ...]) -> None:
    """torch's cross_entropy checks of class-index targets against logits ``(*batch, C, *out_features)``."""
    if batch and (target.dim() == 0 or target.size(0) != batch[0]):
        got = target.size(0) if target.dim() else "a 0-d target"
        raise ValueError(f"Expected input batch_size ({batch[0]}) to match target batch_size ({got}).")
    if target.dtype not in (torch.int64, torch.uint8):
        raise RuntimeError(f"expected scalar type Long but found {target.dtype}")
    if not out_features:
        if target.dim() > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if not batch and target.numel() != 1:
            raise RuntimeError(f"size mismatch (got target: {list(target.shape)})")
    elif list(target.shape) != [*batch, *out_features]:
        raise RuntimeError(f"Expected target size {[*batch, *out_features]}, got {list(target.shape)}")


def _check_weight(weight: Tensor | None, classes: int, dtype: torch.dtype | None) -> None:
    """torch's class-weight checks: ``(C,)``, and (``dtype`` given: class indices) the input's dtype."""
    if weight is None:
        return
    if weight.dim() != 1 or weight.numel() != classes:
        raise RuntimeError(f"weight tensor should be defined either for all {classes} classes or no classes but got "
                           f"weight tensor of shape: {list(weight.shape)}")
    if dtype is not None and weight.dtype != dtype:
        raise RuntimeError(f"expected scalar type {dtype} but found {weight.dtype}")


def linear_cross_entropy(input: Tensor, linear_weight: Tensor, target: Tensor, *, linear_bias: Tensor | None = None,
                         weight: Tensor | None = None, reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, options: Any = None) -> Tensor:
    """``cross_entropy(input @ linear_weightᵀ + linear_bias, target, weight, …)`` in row chunks (see the module
    docstring): class indices ``ℓ = (1-ε)·w_y·(lse - z_y) + ε/C·Σ_c w_c·(lse - z_c)``, ``mean`` dividing by
    ``Σ w_y`` over non-ignored targets; probabilities ``ℓ = Σ_c w_c·((1-ε)t_c + ε/C)·(lse - z_c)``, ``mean``
    dividing by the number of positions. ``linear_weight`` ``(C, D)`` or ``(C, d1, …, dK, D)`` (K-dimensional loss,
    logits ``(N, C, d1, …, dK)``). ``options`` (ours or torch's ``LinearCrossEntropyOptions``) sets the chunk
    size; without it a chunk's logits are about the size of ``input``."""
    if input.dim() < 1 or input.dim() > 2:
        raise RuntimeError(f"expected input with dimensionality 1 or 2, got {input.dim()}")
    if linear_weight.dim() < 2:
        raise RuntimeError(f"expected linear_weight with dimensionality at least 2, got {linear_weight.dim()}")
    batch, d = tuple(input.shape[:-1]), input.size(-1)
    if d != linear_weight.size(-1):
        raise RuntimeError("expected equal input and linear_weight last dimensions (in_features), "
                           f"got {d} and {linear_weight.size(-1)}, respectively")
    classes, out_features = linear_weight.size(0), tuple(linear_weight.shape[1:-1])
    if linear_bias is not None and tuple(linear_bias.shape) != (classes, *out_features):
        raise RuntimeError(f"expected linear_bias shape {(classes, *out_features)}, got {tuple(linear_bias.shape)}")
    if out_features and not batch:
        raise RuntimeError(f"K-dimensional loss defined by linear_weight shape {tuple(linear_weight.shape)} requires"
                           f" batched input, (N, {d}), got unbatched input with shape {tuple(input.shape)}")
    probs = tuple(target.shape) == (*batch, classes, *out_features)
    if probs and ignore_index is not None:
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    ignore_index = -100 if ignore_index is None else ignore_index
    chunkable = reduction in R.REDUCTIONS and label_smoothing == 0.0 and target.dtype == torch.int64 \
        and not out_features
    if options is not None and not chunkable and not torch.compiler.is_compiling():
        # torch warns that it will not chunk here (we chunk regardless); a warning cannot be traced
        warnings.warn("linear_cross_entropy: ``options`` ignored by torch here (its chunked path needs reduction in "
                      "{'mean','sum','none'}, label_smoothing == 0, target.dtype == int64, out_features == ()); "
                      f"optimlab chunks anyway. Got reduction={reduction!r}, label_smoothing={label_smoothing}, "
                      f"target.dtype={target.dtype}, out_features={out_features}.", UserWarning, stacklevel=2)
    reduction = R.check(reduction)
    dev = input.device.type
    autocast = autocast_enabled(dev)
    ce = input.dtype  # the loss's dtype: under autocast, float32 for half-precision logits (see module docstring)
    if autocast:
        low = torch.get_autocast_dtype(dev)
        input, linear_weight, linear_bias = (_autocast_cast(t, low) for t in (input, linear_weight, linear_bias))
        ce = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
        weight = _autocast_cast(weight, torch.float32)
        if probs:
            target = _autocast_cast(target, torch.float32)
    _check_weight(weight, classes, None if probs else ce)
    eps = label_smoothing if label_smoothing > 0.0 else 0.0
    if eps > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    m = math.prod(out_features)
    x = input.reshape(-1, d)
    w = linear_weight.reshape(classes * m, d)
    b = None if linear_bias is None else linear_bias.reshape(-1)
    rows = _chunk_rows(options, x.size(0), d, classes * m, chunkable)
    if probs:
        if not target.is_floating_point():
            raise RuntimeError(f"Expected floating point type for target with class probabilities, got "
                               f"{str(target.dtype).replace('torch.', '').capitalize()}")
        if not autocast:  # torch would promote; we keep input's dtype (under autocast: promoted, as torch)
            target, weight = target.to(ce), None if weight is None else weight.to(ce)
        t = target.reshape(x.size(0), classes, m).transpose(1, 2)  # (N, M, C), classes last
        loss = _LinearCrossEntropy.apply(x, w, b, t, None, weight, t.size(0) * t.size(1), classes, eps, True, rows,
                                         ce, reduction, _needs_grad(x, w, b))
    else:
        _check_class_target(target, batch, out_features)
        valid, safe = (checked_targets(target, ignore_index, classes) if R.host(target) else
                       masked_targets(target, ignore_index))
        safe = safe.reshape(x.size(0), m)
        valid = None if valid is None else valid.reshape(x.size(0), m)
        if weight is not None and torch.is_grad_enabled() and weight.requires_grad:
            raise RuntimeError("The function 'nll_loss_forward' is not differentiable with respect to argument "
                               "'weight'. This input cannot have requires_grad True.")
        if weight is not None:
            wy = weight[safe]
            denom: Tensor | int = wy if valid is None else wy * valid
        else:
            denom = safe.numel() if valid is None else valid.to(ce)
        loss = _LinearCrossEntropy.apply(x, w, b, safe, valid, weight, denom, classes, eps, False, rows, ce,
                                         reduction, _needs_grad(x, w, b))
    return loss.reshape((*batch, *out_features)) if reduction == "none" else loss


def _needs_grad(x: Tensor, w: Tensor, b: Tensor | None) -> tuple[bool, bool, bool]:
    """Which of ``x``, ``w``, ``b`` autograd will ask a gradient for (forward precomputes those)."""
    if not torch.is_grad_enabled():
        return False, False, False
    return x.requires_grad, w.requires_grad, b is not None and b.requires_grad
