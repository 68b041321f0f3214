"""Cross entropy, stated once: the per-position loss from log-probabilities, its gradient from probabilities, and
the class-index targets (``ignore_index`` and range checks). Used by ``cross_entropy`` and ``nll_loss``, the chunks
of ``linear_cross_entropy`` and ``softmax_focal_loss``; classes on any dimension ``cdim``.

Class indices: ``ℓ = Σ_c a_c·(-logp_c)`` with ``a = h·e_y + v·ε/C·w``, ``h = (1-ε)·w_y·v`` (``w`` the class
weights, 1 without; ``v`` 0 where the target is ignored), so ``∂(g·ℓ)/∂x = g·(A·p - a)``, ``A = Σ_c a_c``,
``p = softmax(x)``. Probabilities: ``a = w·((1-ε)·t + ε/C)``, the same gradient."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from .. import _reduction as R

T = TypeVar("T")


def pick(t: Tensor, index: Tensor, cdim: int) -> Tensor:
    """``t`` at class ``index`` along ``cdim`` (shaped like ``index``)."""
    return t.gather(cdim, index.unsqueeze(cdim)).squeeze(cdim)


def class_view(weight: Tensor, ndim: int, cdim: int) -> Tensor:
    """Per-class ``weight`` shaped to broadcast along dimension ``cdim`` of an ``ndim``-dimensional tensor."""
    shape = [1] * ndim
    shape[cdim] = weight.numel()
    return weight.view(shape)


def target_weights(target: Tensor, valid: Tensor | None, weight: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Per-position ``w_y·v`` (what ``mean`` divides by); None when all are 1."""
    if weight is None:
        return None if valid is None else valid.to(dtype)
    wy = weight.take(target)
    return wy if valid is None else wy * valid


def class_loss(logp: Tensor, target: Tensor, valid: Tensor | None, weight: Tensor | None, eps: float,
               cdim: int) -> tuple[Tensor, Tensor | None]:
    """Per-position ``ℓ = h·(-logp_y) + v·ε/C·Σ_c w_c·(-logp_c)`` (0 where ignored, even for a NaN input), and
    ``w_y·v`` (None when all 1). ``target`` holds classes in range (ignored ones replaced by any valid class)."""
    picked = pick(logp, target, cdim)
    wy = target_weights(target, valid, weight, logp.dtype)
    loss = picked.neg() if wy is None else picked * wy.neg()
    if eps > 0.0:
        smooth = (logp if weight is None else logp * class_view(weight, logp.dim(), cdim)).sum(cdim)
        loss = (1 - eps) * loss - (eps / logp.size(cdim)) * smooth
    return (loss if valid is None else torch.where(valid, loss, 0.0)), wy


def plain_loss(logp: Tensor, target: Tensor, reduction: str, weight: Tensor | None = None,
               ignore_index: int = -100) -> Tensor:
    """:func:`class_loss` without smoothing, reduced, in the fewest ops (the common call, :func:`plain_call`): an
    ``ignore_index`` that is a class gathers like any class and is then set to 0 (``where``: 0 even where ``logp``
    is inf or NaN); ``mean`` is ``Σ/(-Σ w_y·v)``, without weights or ignored classes ``Σ/(-n)`` in float32/64
    (bitwise CPU's mean negated, its backward a 0-d division and an expand where ``mean``'s divides at the
    input's size; half types, which CPU's mean sums in float32, keep ``mean``)."""
    index = target.unsqueeze(1)
    picked = logp.gather(1, index)
    ignored = 0 <= ignore_index < logp.shape[1]
    if ignored and weight is not None and reduction != "none" and type(logp) is Tensor:  # (a subclass: no read)
        w = masked_weight(weight, ignore_index)
        if w is not None:  # -w_y·v in one take: Σ/(-Σ -w_y·v), or Σ (the negation off the graph); a NaN from 0·inf
            wy = w.take(index)  # at an ignored target (the value read once) goes the masking way below, as does a
            loss = (picked * wy).sum()  # NaN the inputs make
            if reduction == "mean":
                loss = loss.div(wy.sum().neg())
            value = loss.item()
            if value == value:
                return loss
    wy = None if weight is None else weight.take(index)  # after the gather, which checked the classes' range
    if wy is not None:
        picked = picked * wy
    valid = index != ignore_index if ignored else None
    zero = None if valid is None else R.constant(0.0, picked)
    if reduction != "mean":  # none, sum: the terms negated before the mask, so an ignored one is +0 as in torch
        loss = (picked.squeeze(1) if reduction == "none" else picked).neg()
        if valid is not None:
            loss = torch.where(valid.squeeze(1) if reduction == "none" else valid, loss, zero)
        return loss if reduction == "none" else loss.sum()
    if valid is not None:
        picked = torch.where(valid, picked, zero)
    if wy is not None:
        return picked.sum().div((wy if valid is None else torch.where(valid, wy, zero)).sum().neg())
    if valid is not None:
        return picked.sum().div(valid.sum().neg())
    dtype = picked.dtype
    if dtype is torch.float32 or dtype is torch.float64:
        return picked.sum().div(R.constant(-picked.numel(), logp))
    return picked.mean().neg()


_MASKED: dict[tuple[int, int, int], tuple[weakref.ref, Tensor]] = {}


def masked_weight(weight: Tensor, ignore_index: int) -> Tensor | None:
    """Negated class weights with 0 at class ``ignore_index`` (``-w_y·v`` in one ``take``), made once per (weight,
    its version, ``ignore_index``) and kept (at most 64); None for a tensor subclass or an inference tensor (no
    version counter). A normal tensor even when first made under inference mode."""
    if type(weight) is not Tensor or weight.is_inference():
        return None
    key = (id(weight), weight._version, ignore_index)
    hit = _MASKED.get(key)
    if hit is not None and hit[0]() is weight:
        return hit[1]
    if len(_MASKED) >= 64:
        _MASKED.clear()
    with torch.inference_mode(False), torch.no_grad():
        w = weight.detach().neg()
        w[ignore_index] = 0
    _MASKED[key] = (weakref.ref(weight), w)
    return w


def plain_call(input: Tensor, target: Tensor, weight: Tensor | None, reduction: str) -> bool:
    """Whether :func:`plain_loss` serves a call: eager CPU (a failed gather, an out-of-range target or an
    ``ignore_index`` outside ``[0, C)`` that a target equals, then retries the checked path, which raises torch's
    error or ignores), ``(N, C, …)`` input and ``(N, …)`` int64 target, class weights of the input's dtype and
    size, not requiring a gradient, and a plain reduction string (attribute reads: the cheapest checks)."""
    shape = input.shape
    return (target.dtype is torch.int64 and reduction in PLAIN_REDUCTIONS and len(shape) >= 2 and input.is_cpu
            and not torch.compiler.is_compiling()
            and ((target.ndim == 1 and target.shape[0] == shape[0]) if len(shape) == 2
                 else target.shape == shape[:1] + shape[2:])
            and (weight is None or (weight.dtype is input.dtype and weight.shape == shape[1:2]
                                    and not weight.requires_grad)))


PLAIN_REDUCTIONS = frozenset(("mean", "sum", "none"))


def prob_loss(logp: Tensor, target: Tensor, weight: Tensor | None, eps: float, cdim: int) -> Tensor:
    """Per-position ``ℓ = -Σ_c w_c·((1-ε)·t_c + ε/C)·logp_c`` (torch's order and dtype promotion)."""
    if eps > 0.0:
        target = target * (1 - eps) + eps / logp.size(cdim)
    terms = logp * target
    return -(terms if weight is None else terms * class_view(weight, terms.dim(), cdim)).sum(cdim)


def class_grad(p: Tensor, g: Tensor, target: Tensor, valid: Tensor | None, weight: Tensor | None, eps: float,
               cdim: int, inplace: bool) -> Tensor:
    """``g·(A·p - a)`` for class indices (``inplace``: on ``p``'s buffer, when no graph is recorded)."""
    if valid is not None:  # an ignored target gets 0, even where the incoming gradient is inf/NaN
        g = torch.where(valid, g, 0.0)
    hard = g if weight is None else g * weight.take(target)
    total = hard if eps == 0.0 else (1 - eps) * hard + g * (eps * (1.0 if weight is None else
                                                                     weight.sum() / p.size(cdim)))
    scale = total.unsqueeze(cdim)
    dp = p.mul_(scale) if inplace else p * scale
    if eps > 0.0:
        uniform = (eps / p.size(cdim)) * g.unsqueeze(cdim)
        if weight is not None:
            uniform = uniform * class_view(weight, p.dim(), cdim)
        dp = dp.sub_(uniform) if inplace else dp - uniform
        hard = (1 - eps) * hard
    src, index = hard.neg().unsqueeze(cdim), target.unsqueeze(cdim)
    return dp.scatter_add_(cdim, index, src) if inplace else dp.scatter_add(cdim, index, src)


def prob_grad(p: Tensor, g: Tensor, target: Tensor, weight: Tensor | None, eps: float, cdim: int,
              inplace: bool) -> Tensor:
    """``g·(A·p - a)`` for class probabilities."""
    if eps > 0.0:
        target = target * (1 - eps) + eps / p.size(cdim)
    a = (target if weight is None else target * class_view(weight, p.dim(), cdim)) * g.unsqueeze(cdim)
    total = a.sum(cdim, keepdim=True)
    return p.mul_(total).sub_(a) if inplace else p * total - a


def checked_targets(target: Tensor, ignore_index: int, n_classes: int) -> tuple[Tensor, Tensor]:
    """``valid = target != ignore_index`` and the int64 classes with ignored entries set to 0; raises torch's
    IndexError for a non-ignored class outside ``[0, C)`` (reads the data: eager CPU only)."""
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= n_classes))
    if bool(bad.any()):
        raise IndexError(f"Target {int(target[bad][0])} is out of bounds.")
    return valid, target.masked_fill(~valid, 0).long()


def with_targets(fn: Callable[[Tensor | None, Tensor], T], x: Tensor, target: Tensor, ignore_index: int,
                 n_classes: int) -> T:
    """``fn(valid, classes)`` with ``valid`` None when no target can be ignored.

    Eager CPU reads nothing from the targets in the common case: the targets are used as they are (an
    ``ignore_index`` inside ``[0, C)`` is a class any gather can read), and a failed gather (an ignored or
    out-of-range target) retries through :func:`checked_targets`, which raises torch's IndexError or masks.
    Elsewhere (another device, or under ``torch.compile``) nothing is read on the host: the ignored entries are
    masked on the device, and the gather checks the range there, as torch's kernels do."""
    if not torch.compiler.is_compiling() and x.is_cpu:
        try:
            classes = target if target.dtype is torch.int64 else target.long()  # a no-op .long() costs µs
            if not 0 <= ignore_index < n_classes:
                return fn(None, classes)
            return fn(target != ignore_index, classes)  # an ignored target is a class: nothing to mask
        except (RuntimeError, IndexError):
            return fn(*checked_targets(target, ignore_index, n_classes))
    return fn(*masked_targets(target, ignore_index))


def masked_targets(target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """``valid = target != ignore_index`` and the int64 classes with ignored entries set to 0, on the device and
    without a range check (the gather checks it there, as torch's kernels do)."""
    valid = target != ignore_index
    return valid, (target * valid).long()


class CrossEntropy(torch.autograd.Function):
    """Per-position cross entropy of logits ``x`` (:func:`class_loss`, or :func:`prob_loss` for probabilities
    ``target``) whose backward recomputes ``softmax(x)``: autograd keeps ``x`` and per-position vectors, not the
    ``(N, C, …)`` log-softmax a composition keeps (the large-input path; small inputs compose the primitives).
    The backward is written with differentiable ops, so double backward works."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, target: Tensor, valid: Tensor | None, weight: Tensor | None, eps: float,
                cdim: int, probs: bool, reduction: str = "none") -> Tensor:
        ctx.save_for_backward(x, target, valid, weight)
        ctx.eps, ctx.cdim, ctx.probs, ctx.reduction = eps, cdim, probs, reduction
        logp = torch.log_softmax(x, cdim)
        if probs:
            return prob_loss(logp, target, weight, eps, cdim)
        loss, wy = class_loss(logp, target, valid, weight, eps, cdim)
        if reduction != "mean":  # class indices reduce inside (one autograd node): Σ/Σ w_y·v, as reduce_weighted
            return loss if reduction == "none" else loss.sum()
        ctx.total = R.constant(loss.numel(), loss) if wy is None else wy.sum()
        return loss.sum().div(ctx.total)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, target, valid, weight = ctx.saved_tensors
        graph = torch.is_grad_enabled()  # create_graph: out of place, so autograd sees softmax's dependence on x
        p = torch.softmax(x, ctx.cdim)
        if ctx.probs:
            gx = prob_grad(p, grad, target, weight, ctx.eps, ctx.cdim, not graph)
            return gx, None, None, None, None, None, None, None
        if ctx.reduction != "none":  # each position's share of the reduced loss's gradient
            grad = (grad.div(ctx.total) if ctx.reduction == "mean" else grad).expand(target.shape)
        gx = class_grad(p, grad, target, valid, weight, ctx.eps, ctx.cdim, not graph)
        return gx, None, None, None, None, None, None, None
