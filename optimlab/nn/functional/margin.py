"""Margin, ranking and embedding losses (functional forms, torch.nn.functional's signatures).

Hinges: the losses torch writes as composite ops (ranking, hinge embedding, cosine, triplet) use
``clamp_min(z, 0)``, whose gradient passes at ``z = 0`` and which propagates NaN; the two torch computes
in dedicated kernels (multi-margin, multilabel-margin) count a term only when ``z > 0`` — no gradient at
``z = 0`` and NaN terms skipped (``where(z > 0, z, 0)``). We follow each. Soft margin, multi-margin and
multilabel margin are custom autograd Functions that keep no more for backward than torch's kernels do.
Reduction via :mod:`optimlab.nn._reduction`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import logsigmoid

from .. import _reduction as R
from ._autograd import _Untracked, apply, not_differentiable, reduced

__all__ = [
    "cosine_embedding_loss", "hinge_embedding_loss", "margin_ranking_loss", "multi_margin_loss",
    "multilabel_margin_loss", "multilabel_soft_margin_loss", "pairwise_distance", "soft_margin_loss",
    "triplet_margin_loss", "triplet_margin_with_distance_loss",
]

_REDUCTIONS = frozenset(R.REDUCTIONS)
_COS_EPS = 1e-12  # added to each squared norm in the cosine similarity, as torch does


def logistic_loss(x: Tensor, y: Tensor) -> Tensor:
    """Binary cross entropy on logits, ``-(y·log σ(x) + (1 - y)·log σ(-x))`` (stable for large |x|)."""
    return -(y * logsigmoid(x) + (1 - y) * logsigmoid(-x))


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0,
                        size_average: bool | None = None, reduce: bool | None = None,
                        reduction: str = "mean") -> Tensor:
    """``ℓ_i = max(0, -y_i (x1_i - x2_i) + margin)`` with ``y ∈ {1, -1}`` (broadcast)."""
    reduction = R.resolve(reduction, size_average, reduce)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError(
            "margin_ranking_loss: all input tensors should have the same number of dimensions, got "
            f"input1: {input1.size()}, input2: {input2.size()}, target: {target.size()}")
    return R.reduce((-target * (input1 - input2) + float(margin)).clamp_min(0), reduction)


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average: bool | None = None,
                         reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """``ℓ_i = x_i`` if ``y_i = 1``; ``max(0, margin - x_i)`` if ``y_i = -1`` (other labels get both terms)."""
    reduction = R.resolve(reduction, size_average, reduce)
    zero = torch.zeros_like(input)
    loss = torch.where(target != 1, (float(margin) - input).clamp_min(0), zero) + torch.where(target != -1, input, zero)
    if not input.is_floating_point():  # torch keeps an integer input's dtype (and then cannot take its mean)
        loss = loss.to(input.dtype)
    return R.reduce(loss, reduction)


def soft_margin_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                     reduction: str = "mean") -> Tensor:
    """Two-class logistic loss ``ℓ_i = log(1 + exp(-y_i x_i))``, written as torch does (so ``-y x`` above
    ~709 in float64 gives ``inf``, as torch's does)."""
    reduction = R.resolve(reduction, size_average, reduce)
    shape = input.shape if target.shape == input.shape else torch.broadcast_shapes(input.shape, target.shape)
    if shape != input.shape:
        raise RuntimeError(f"soft_margin_loss: the output has the input's shape {list(input.shape)}, which does not "
                           f"match the broadcast shape {list(shape)}")
    common = input.dtype if input.dtype == target.dtype else R.result_type(input, target)
    if not input.is_floating_point() or (common != input.dtype and not R.can_cast(common, input.dtype)):
        raise RuntimeError(f"soft_margin_loss: expected a floating-point input that can hold the result type "
                           f"{common}, got {input.dtype}")
    return apply(_SoftMargin, input, target, reduction)


def _soft_slope(y: Tensor, z: Tensor, scale: float, own_z: bool) -> Tensor:
    """``-scale·y·z / (1 + z)`` (eager, torch's op order); ``own_z``: ``z`` may be overwritten (no copy of it)."""
    return torch.mul(y, z).mul_(-scale).div_(z.add_(1) if own_z else z.add(1))


class _SoftMargin(torch.autograd.Function):
    """``reduce(log(1 + z))`` with ``z = exp(-y·x)``; ``∂/∂x = -y·z / (1 + z)`` times the reduction's scale, in torch's
    op order (so an overflowing ``z`` gives its NaN gradient). Only the inputs are kept for backward, as torch's
    kernel does (autograd through ``log1p(exp(·))`` would keep two input-sized intermediates). The backward is
    written with differentiable ops, so double backward follows (torch's: ``y²·z / (1 + z)²``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, reduction: str) -> Tensor:
        ctx.scale = R.grad_scale(reduction, x.numel())
        z = torch.mul(x, y).neg_().exp_()
        slope = None
        if ctx.needs_input_grad[0] and x.numel() <= _FMAX_MAX and x.shape == y.shape:  # small: the slope now,
            slope = _soft_slope(y, z, ctx.scale, own_z=False)  # (backward is then one op, not 7)
        ctx.save_for_backward(x, y, slope)
        loss = z.log1p_()
        return R.reduce(loss if loss.dtype == x.dtype else loss.to(x.dtype), reduction)  # a no-op .to costs µs

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        x, y, slope = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            raise RuntimeError("the derivative for 'target' is not implemented.")
        graph = torch.is_grad_enabled() or torch.compiler.is_compiling()
        if slope is not None and not graph:
            g = slope.mul(grad)
            return (g if g.dtype == x.dtype else g.to(x.dtype)), None, None
        if graph:  # create_graph, or traced: out of place
            z = torch.exp(-(x * y))
            return (y * z * -ctx.scale / (z + 1) * grad).to(x.dtype), None, None
        g = _soft_slope(y, torch.mul(x, y).neg_().exp_(), ctx.scale, own_z=True).mul_(grad)
        return (g if g.dtype == x.dtype else g.to(x.dtype)), None, None


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                size_average: bool | None = None, reduce: bool | None = None,
                                reduction: str = "mean") -> Tensor:
    """Per-sample mean over classes of the (weighted) logistic loss:
    ``ℓ_n = (1/C) Σ_c w_c · -(y_nc log σ(x_nc) + (1 - y_nc) log σ(-x_nc))``; classes on the last dim."""
    reduction = R.resolve(reduction, size_average, reduce, strict=True)
    loss = logistic_loss(input, target)
    if weight is not None:
        loss = loss * weight
    class_dim = input.dim() - 1
    return R.reduce(loss.sum(dim=class_dim) / input.size(class_dim), reduction)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0,
                          size_average: bool | None = None, reduce: bool | None = None,
                          reduction: str = "mean") -> Tensor:
    """``ℓ_i = 1 - cos(x1_i, x2_i)`` if ``y_i = 1``; ``max(0, cos(x1_i, x2_i) - margin)`` if ``y_i = -1``;
    ``cos = Σ x1·x2 / √((Σ x1² + ε)(Σ x2² + ε))``, ``ε = 1e-12``. Inputs ``(N, D)`` with ``y`` ``(N,)``,
    or ``(D,)`` with a 0-d ``y``."""
    reduction = R.resolve(reduction, size_average, reduce)
    tdim = target.dim()
    if tdim > 1:
        raise RuntimeError(f"cosine_embedding_loss: expected a 0-D or 1-D target, got {tdim}-D (multi-target "
                           "is not supported)")
    want = 2 if tdim == 1 else 1
    if input1.dim() != want or input2.dim() != want:
        raise RuntimeError(f"cosine_embedding_loss: a {tdim}-D target expects {want}-D inputs, got inputs of sizes "
                           f"{list(input1.shape)} and {list(input2.shape)}")
    dot = (input1 * input2).sum(tdim)
    sq1 = (input1 * input1).sum(tdim) + _COS_EPS
    sq2 = (input2 * input2).sum(tdim) + _COS_EPS
    cos = dot / (sq1 * sq2).sqrt()
    zero = torch.zeros_like(cos)
    loss = torch.where(target == 1, 1 - cos, zero) + torch.where(target == -1, (cos - float(margin)).clamp_min(0), zero)
    return R.reduce(loss, reduction)


def _check_class_input(input: Tensor) -> tuple[int, int]:
    """``(nframe, C)`` of a margin-kernel input: ``(C)``, ``(N, C)`` with ``C > 0``, or a 0-d scalar."""
    nd = input.dim()
    if not input.is_floating_point():
        raise NotImplementedError(f"margin losses are not implemented for {input.dtype} inputs")
    if not ((nd == 2 and input.size(1) != 0) or (nd == 1 and input.size(0) != 0) or nd == 0):
        raise RuntimeError("Expected non-empty vector or matrix with optional 0-dim batch size, but got: "
                           f"{list(input.shape)}")
    if nd <= 1:
        return 1, 1 if nd == 0 else input.size(0)
    return input.size(0), input.size(1)


def _check_long(target: Tensor) -> None:
    if target.dtype != torch.long:
        raise RuntimeError(f"expected a target of scalar type Long (class indices) but found {target.dtype}")


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0, weight: Tensor | None = None,
                      size_average: bool | None = None, reduce: bool | None = None,
                      reduction: str = "mean") -> Tensor:
    """Multi-class hinge: ``ℓ_n = (1/C) Σ_{j≠y_n} w_{y_n} · max(0, margin - x_{n,y_n} + x_{n,j})^p``, p ∈ {1, 2}.
    Input ``(N, C)`` with target ``(N,)``, or ``(C,)`` with a 0-d (or 1-element) target."""
    if weight is None and size_average is None and reduce is None and (p == 1 or p == 2) and \
            reduction in _REDUCTIONS and input.dim() == 2 and target.dim() == 1 and target.dtype is torch.int64 and \
            input.is_floating_point() and input.size(1) and target.size(0) == input.size(0):
        t = target.view(-1, 1)  # the common call, checked in attribute reads (a quarter of its time in a small
        try:  # evaluation loop went to the general checks and apply's)
            if (torch.is_grad_enabled() and input.requires_grad) or torch.compiler.is_compiling():
                return _MultiMargin.apply(input, t, None, p, float(margin), reduction)
            return _MultiMargin.forward(_Untracked(6), input, t, None, p, float(margin), reduction)
        except RuntimeError:
            pass  # an out-of-range class: the general path raises torch's error
    reduction = R.resolve(reduction, size_average, reduce)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    nframe, C = _check_class_input(input)
    _check_long(target)
    if target.dim() > 1 or target.numel() != nframe:
        raise RuntimeError(f"multi_margin_loss: expected a target of {nframe} class indices (1-D, one per sample), "
                           f"got size {list(target.shape)} for input of size {list(input.shape)}")
    if weight is not None:
        if weight.numel() != C:
            raise RuntimeError(f"inconsistent weight size, expected {C} but got {list(weight.shape)}")
        if weight.dtype != input.dtype:
            raise RuntimeError(f"expected weight of scalar type {input.dtype} but found {weight.dtype}")
    not_differentiable("multi_margin_loss", weight=weight)
    t = target.reshape(nframe, 1)
    try:  # the gather checks the range (a device-side assert off the CPU), as torch's kernel
        loss = apply(_MultiMargin, input if input.dim() == 2 else input.reshape(nframe, C), t, weight, p,
                     float(margin), reduction)
    except RuntimeError:
        if R.host(t) and bool(((t < 0) | (t >= C)).any()):  # torch's message, read only after a failure
            raise RuntimeError(f"target out of range: class indices must lie in [0, {C})") from None
        raise
    return loss if input.dim() == 2 or reduction != "none" else loss.reshape(target.shape)


def _hinge(x: Tensor, t: Tensor, margin: float) -> Tensor:
    """``h_nj = max(0, z_nj)`` with ``z_nj = (margin - x_{n,y_n}) + x_nj`` (the kernel's op order, so ties at 0 fall
    alike), 0 in the target's own column and where ``z`` is NaN (the kernel counts only ``z > 0``): ``fmax``
    against 0 drops a NaN in the same pass, with no host read (small blocks, see :data:`_FMAX_MAX`)."""
    h = torch.add(x, torch.rsub(x.gather(1, t), R.constant(margin, x))).scatter_(1, t, 0.0)
    if h.requires_grad:  # a double backward: relu's derivative (0 at z = 0), out of place
        h = h.relu()
        return h.masked_fill(h.isnan(), 0.0)
    if h.numel() <= _FMAX_MAX:
        zero = R.constant(0.0, h)
        return torch.fmax(h, zero if isinstance(zero, Tensor) else h.new_zeros(()), out=h)
    h = h.relu_()
    if not R.host(h) or bool(h.sum().isnan()):  # a NaN term: cleared (eager CPU: only when the total shows one)
        h = h.masked_fill_(h.isnan(), 0.0)
    return h


def _nansum(h: Tensor, dim: int | tuple[int, ...] | None) -> Tensor:
    """``h.nansum(dim)``: a NaN hinge term adds nothing (the kernels count only ``z > 0``). A block of more than
    :data:`_FMAX_MAX` elements on eager CPU sums and reads whether the sum shows a NaN first (``sum`` runs ~30%
    faster per element than ``nansum``: 0.85 vs 1.15 ms at 4096x1000, one thread)."""
    if h.numel() <= _FMAX_MAX or not R.host(h):
        return h.nansum(dim)
    total = h.sum(dim)
    return h.nansum(dim) if bool(total.isnan().any()) else total


#: hinge blocks of at most this many elements drop NaN terms with ``fmax(z, 0)`` (one op, no host read, the
#: fewest per call); larger ones with ``relu_`` and, on eager CPU, a NaN test of the total: ``fmax``'s kernel
#: against a 0-d tensor runs ~5x slower per element than ``relu_`` (4096x1000, one thread: 12 ms vs 2.4 ms)
_FMAX_MAX = 1 << 12


class _MultiMargin(torch.autograd.Function):
    """Per-sample ``ℓ_n = (1/C) Σ_{j≠y} w_y·h_nj^p`` (:func:`_hinge`), reduced inside (one autograd node; without
    weights ``sum``/``mean`` sum the block at once, ``/C`` or ``/(N·C)``);
    ``∂ℓ_n/∂x_nj = w_y·[h > 0]·(1 or 2h)/C`` for ``j ≠ y`` and minus their sum at ``j = y``. A small input (at most
    :data:`_FMAX_MAX` elements) gets that gradient's shape in forward (``unit``, four ops, where the backward
    would recompute ``h`` in eleven); a larger one keeps nothing but the inputs, as torch's kernel (autograd
    through the hinge would keep ``(N, C)`` intermediates), and backward recomputes ``h``, as does a double
    backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor, weight: Tensor | None, p: int, margin: float,
                reduction: str) -> Tensor:
        ctx.p, ctx.margin, ctx.reduction = p, margin, reduction
        h = torch.add(x, torch.rsub(x.gather(1, t), R.constant(margin, x))).scatter_(1, t, 0.0)
        wy = None if weight is None else weight[t.view(-1)]
        unit = None
        if ctx.needs_input_grad[0] and h.numel() <= _FMAX_MAX:
            zero = R.constant(0.0, h)  # fmax: max(z, 0), 0 for a NaN term (skipped, as in the kernel)
            h = torch.fmax(h, zero if isinstance(zero, Tensor) else h.new_zeros(()), out=h)
            unit = h.sign() if p == 1 else h * 2
            unit = unit.scatter_(1, t, unit.sum(1, keepdim=True).neg_())
            if wy is not None:
                unit = unit.mul_(wy.unsqueeze(1))
            if p == 2:
                h = h * h
        else:  # the value only: relu_ then nansum (a NaN term adds nothing; cheaper than fmax)
            h = h.relu_()
            if p == 2:
                h = h.mul_(h)
        ctx.save_for_backward(x, t, weight, unit)
        if weight is None and reduction != "none":
            return _nansum(h, None).div(R.constant(x.numel() if reduction == "mean" else x.size(1), x))
        loss = _nansum(h, 1)
        if wy is not None:  # w_y is constant along the row: weight the sum, not each term (one pass less)
            loss = loss * wy
        return reduced(loss.div(R.constant(x.size(1), loss)), reduction)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:
        x, t, weight, unit = ctx.saved_tensors
        n = x.size(1) * (x.size(0) if ctx.reduction == "mean" else 1)
        scale = grad.div(R.constant(n, grad))
        scale = scale.unsqueeze(1) if scale.dim() else scale
        graph = torch.is_grad_enabled()  # create_graph: recomputed, so that p = 2 has its second derivative
        if unit is not None and not graph:
            return unit * scale, None, None, None, None, None
        h = _hinge(x, t, ctx.margin)
        if weight is not None:
            scale = scale * weight[t.view(-1)].unsqueeze(1)
        if ctx.p == 2:  # out of place under create_graph: relu_'s derivative needs h
            g = h * (scale * 2) if graph else h.mul_(scale * 2)
        else:  # [h > 0]·scale in one fused pass (relu's derivative kernel)
            g = torch.ops.aten.threshold_backward(scale.expand_as(h), h, 0)
        return g.scatter_(1, t, -g.sum(1, keepdim=True)), None, None, None, None, None


def multilabel_margin_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
                           reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Multi-label hinge: ``ℓ_n = (1/C) Σ_{j ∈ T_n} Σ_{i ∉ T_n} max(0, 1 - x_{n,j} + x_{n,i})``, where ``T_n`` are
    the class indices in ``target[n]`` before its first ``-1``. Input and target ``(N, C)`` or ``(C,)``."""
    reduction = R.resolve(reduction, size_average, reduce)
    nframe, C = _check_class_input(input)
    _check_long(target)
    if input.dim() <= 1:
        ok = target.dim() <= 1 and target.numel() == C
    else:
        ok = target.dim() == 2 and target.shape == input.shape
    if not ok:
        raise RuntimeError(f"inconsistent target size: {list(target.shape)} for input of size {list(input.shape)}")
    t = target if target.dim() == 2 else target.reshape(nframe, C)
    valid = t.cummin(1)[0] >= 0  # entries before the first -1 (a running minimum: one op, not lt/cumsum/eq)
    index = torch.where(valid, t, _index_constant(C, t))  # class C: the padding column, for entries after the -1
    if R.host(t) and nframe:  # host-side checks (and trimming): data-dependent, eager CPU only
        if C <= _TRIM_MIN:  # two scalar reads
            lo, hi = (v.item() for v in t.aminmax())
        else:  # one read; k: the most targets of a sample, the (N, K, C) block's K
            lo, hi, k = torch.stack((*t.aminmax(), valid.sum(1).max())).tolist()
        if lo < -1 or hi >= C:  # torch checks every entry, also those after the first -1
            raise RuntimeError(f"multilabel_margin_loss: target out of range: labels must lie in [0, {C}) or be -1")
        if C > _TRIM_MIN:
            index = index[:, :k]
    loss = apply(_MultiLabelMargin, input if input.dim() == 2 else input.reshape(nframe, C), index, reduction)
    return loss if input.dim() == 2 or reduction != "none" else loss.reshape(())


_INDEX_CONSTANTS: dict[int, Tensor] = {}


def _index_constant(value: int, like: Tensor) -> Tensor | int:
    """``value`` as a 0-d int64 CPU tensor made once and kept (at most 256; :func:`R.constant` for class indices:
    ``where`` with a Python number wraps it in a fresh tensor per call); ``value`` itself elsewhere."""
    if like.dtype is not torch.int64 or type(like) is not Tensor or not like.is_cpu or torch.compiler.is_compiling():
        return value
    t = _INDEX_CONSTANTS.get(value)
    if t is None:
        if len(_INDEX_CONSTANTS) >= 256:
            _INDEX_CONSTANTS.clear()
        with torch.inference_mode(False):
            t = _INDEX_CONSTANTS[value] = torch.tensor(value)
    return t


#: classes up to which multilabel margin keeps every target column (a K = C block of at most N·64² elements): the
#: trimming to the most targets of a sample costs more ops per call than it saves
_TRIM_MIN = 64


class _MultiLabelMargin(torch.autograd.Function):
    """Per-sample ``ℓ_n = (1/C) Σ_k Σ_{i ∉ T_n} [z > 0]·z`` with ``z = (1 - x_{n,t_nk}) + x_ni`` over the targets
    ``t_nk`` (duplicates count each time, as in the kernel), built as one ``(N, K, C + 1)`` block from ``x`` padded
    with a NaN column ``C``, the class of the entries after the first ``-1``: their ``z`` are NaN, and so are those
    of a NaN input; the targets as the "other" class get ``-inf``. ``relu_`` then ``nansum``: ``z ≤ 0`` and NaN
    terms add nothing, as the kernel counts only ``z > 0`` (``fmax(z, 0)`` took 5x ``relu_``'s time).

    Forward also counts the terms each entry takes part in, which is the whole gradient:
    ``∂ℓ_n/∂x_ni = (#{k: z_nki > 0} - #{(k, i'): t_nk = i, z_nki' > 0}) / C``. Only those counts ``(N, C)`` are kept
    for backward, the bytes torch keeps (its ``is_target``), where autograd through the block would keep the
    ``(N, K, C)`` hinge."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, index: Tensor, reduction: str) -> Tensor:
        n, c = x.shape
        ctx.scale = c * (n if reduction == "mean" else 1)  # the reduction inside: one autograd node
        padded = torch.nn.functional.pad(x, (0, 1), value=math.nan)
        x_i = padded.scatter(1, index, -math.inf)  # a target (or the padding) as the other class: z = -inf or NaN
        one_minus_x_j = torch.rsub(padded.gather(1, index), R.constant(1.0, x))  # (N, K); NaN for padding
        h = torch.add(one_minus_x_j.unsqueeze(2), x_i.unsqueeze(1)).relu_()  # (N, K, C + 1)
        loss = _nansum(h, (1, 2) if reduction == "none" else None).div(R.constant(ctx.scale, x))
        if ctx.needs_input_grad[0]:  # the counts are the gradient: only when one is wanted
            on = h.sign_()  # 1 where z > 0, 0 where not, NaN for the skipped terms (nansum: float sums of a bool
            # mask with a dtype took twice as long)
            counts = on.nansum(1).scatter_add_(1, index, on.nansum(2).neg_())
            ctx.save_for_backward(counts.narrow_copy(1, 0, c))  # (N, C), without the padding column
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (counts,) = ctx.saved_tensors
        scale = grad.div(R.constant(ctx.scale, grad))
        return counts * (scale.unsqueeze(1) if scale.dim() else scale), None, None


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """``‖x1 - x2 + ε‖_p`` over the last dimension (torch's ``pairwise_distance``)."""
    dim = max(x1.dim(), x2.dim()) - 1
    return torch.linalg.vector_norm(x1 - x2 + eps, ord=p, dim=dim, keepdim=keepdim)


def _check_triplet(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float) -> None:
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    a, p, n = anchor.dim(), positive.dim(), negative.dim()
    if not a == p == n:
        raise RuntimeError("The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {a}D, positive {p}D, and negative {n}D inputs")


def _triplet(anchor: Tensor, positive: Tensor, negative: Tensor, dist: Callable[[Tensor, Tensor], Tensor],
             margin: float, swap: bool) -> Tensor:
    """``max(0, margin + d(a, p) - d(a, n))``; with ``swap``, ``d(a, n)`` becomes ``min(d(a, n), d(p, n))``."""
    d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    if swap:
        d_neg = torch.minimum(d_neg, dist(positive, negative))
    return (margin + d_pos - d_neg).clamp_min(0)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average: bool | None = None,
                        reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Triplet loss with ``d(u, v) = ‖u - v + ε‖_p`` over the last dimension (see :func:`_triplet`)."""
    reduction = R.resolve(reduction, size_average, reduce)
    _check_triplet(anchor, positive, negative, margin)
    loss = _triplet(anchor, positive, negative, lambda u, v: pairwise_distance(u, v, p, eps), margin, swap)
    return R.reduce(loss, reduction)


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *,
                                      distance_function: Callable[[Tensor, Tensor], Tensor] | None = None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> Tensor:
    """Triplet loss with any distance (default: :func:`pairwise_distance`, p = 2, ε = 1e-6)."""
    if reduction not in R.REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    _check_triplet(anchor, positive, negative, margin)
    loss = _triplet(anchor, positive, negative, distance_function or pairwise_distance, margin, swap)
    return R.reduce(loss, reduction)
