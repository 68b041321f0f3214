"""Custom autograd Functions for the likelihood losses whose closed-form gradient is cheaper (cross entropy:
memory) or must follow torch's convention (BCE: finite at 0 and 1). Both backwards are written with
differentiable tensor ops, so double backward works through them."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_BCE_EPS = 1e-12  # torch's floor on x(1-x) in BCE's second derivatives
_BCE_EPS_F32 = float(torch.tensor(1e-12, dtype=torch.float32))  # the kernel's float constant, ≈ 9.99999996e-13


def not_differentiable(function: str, **args: Tensor | None) -> None:
    """torch's RuntimeError for an argument its kernel has no derivative for (a class ``weight``, ``pos_weight``)
    passed with ``requires_grad`` while autograd is recording."""
    if not torch.is_grad_enabled():
        return
    for name, t in args.items():
        if t is not None and t.requires_grad:
            raise RuntimeError(f"The function '{function}' is not differentiable with respect to argument '{name}'. "
                               "This input cannot have requires_grad True.")


#: float32 cross entropy inputs of at most this many elements run in float64 and are rounded once (see
#: :func:`working_dtype`)
EXACT_NUMEL = 1 << 12


def working_dtype(x: Tensor) -> torch.dtype:
    """The dtype of cross entropy's ``(N, C, …)`` passes: float64 for a float32 ``x`` of at most ``EXACT_NUMEL``
    elements, else ``x``'s own. In float32 the softmax, its exp-sum and the loss each round at their own
    magnitude, so the result is within about one ulp of exact, as torch's is, and which of the two is closer on a
    given small input is a coin flip (issue 11: 9 of torch's 105 module_db samples had ours further from float64
    by a fraction of an ulp). In float64 the result is the exact value rounded once, never further from it than
    torch's; at 4096 elements that costs 5-13 µs (under 10% of the call). Larger inputs keep float32 passes
    (float64 doubles them: 2x at 64K elements), where the max error over many entries is torch's or lower
    (docs/losses.md)."""
    return torch.float64 if x.dtype == torch.float32 and x.numel() <= EXACT_NUMEL else x.dtype


class CrossEntropyIndex(torch.autograd.Function):
    """Cross entropy of logits against class indices, with label smoothing ``ε``, per sample (in float64, for the
    caller to reduce and round once):
    ``ℓ_i = (1-ε)·w_i·(-logp_{i y_i}) + ε/C·Σ_c weight_c·(-logp_ic)``, 0 where ``valid`` is False (``valid`` None:
    every target counts); ``w_i = weight[y_i]·valid_i`` (None: all 1). Classes on dim 1 (dim 0 for an unbatched
    ``(C,)`` input).

    As ``ℓ_i = Σ_c a_ic·(-logp_ic)``, backward is ``∂ℓ_i/∂x_ic = softmax(x)_ic·Σ_c a_ic - a_ic``, with the softmax
    recomputed from the caller's logits: autograd keeps only per-sample vectors, where ``log_softmax`` + gather
    would keep a full ``(N, C)`` copy; the target's entry is ``(p_y - 1)·Σa + (Σa - a_y)``, exact in its first
    difference. The softmax is ``softmax(x)`` itself (``exp(x - max) / Σ exp(x - max)``, rounded at the magnitude
    of each probability; for a middle class dimension ``exp(x - m)/s`` from forward's per-position max ``m``,
    exp-sum ``s`` and target logit ``x_y - m``), not ``exp(x - lse)``, whose error grows with ``|lse|``
    (7-30x torch's float32 error on torch's module_db samples). The backward is written with differentiable ops,
    so double backward works, and has no data-dependent branch, so it traces under ``torch.compile``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, safe: Tensor, valid: Tensor | None, w: Tensor | None, weight: Tensor | None,
                eps: float) -> Tensor:
        x_in, x = x, x.to(working_dtype(x))  # backward keeps the caller's x, never a float64 working copy
        cdim = 0 if x.dim() == 1 else 1
        acc = torch.promote_types(x.dtype, torch.float64)  # the per-sample arithmetic, rounded once by the caller
        m = s = d = None
        if cdim == x.dim() - 1:
            logp = torch.log_softmax(x, cdim)
            loss = -pick(logp, safe, cdim).to(acc)
            if eps > 0.0:
                smooth = -(logp if weight is None else logp * class_view(weight, x, cdim)).sum(cdim).to(acc)
        else:  # classes on a middle dimension, where log_softmax costs ~2x amax + exp + sum: logp = (x - m) - log s
            m = x.amax(cdim, keepdim=True)
            s = torch.sub(x, m).exp_().sum(cdim, keepdim=True)
            x_y, m_, s_ = pick(x, safe, cdim), m.squeeze(cdim), s.squeeze(cdim)
            d = x_y - m_  # x_y - m: the target's probability exp(d)/s in backward
            log_s = s_.to(acc).log()
            loss = log_s - (x_y.to(acc) - m_.to(acc))  # -logp_y = log s - (x_y - m), the difference exact
            if eps > 0.0:  # Σ_c w_c·(-logp_c) = lse·Σ_c w_c - Σ_c w_c·x_c
                total_w = x.size(cdim) if weight is None else weight.sum(dtype=acc)
                smooth = (m_.to(acc) + log_s) * total_w - (x if weight is None else
                                                           x * class_view(weight, x, cdim)).sum(cdim).to(acc)
        if w is not None:
            loss = loss * w.to(acc)
        if eps > 0.0:
            loss = (1 - eps) * loss + (eps / x.size(cdim)) * smooth
        if valid is not None:
            loss = torch.where(valid, loss, 0.0)
        # per-sample vectors only (for a middle class dimension also m, s and x_y - m: three (N, d1, …) vectors)
        if x.dtype != x_in.dtype:  # a small input: backward's softmax is recomputed, no float64 vectors kept
            m = s = d = None
        ctx.save_for_backward(x_in, safe, valid, w, weight, m, s, d)
        ctx.eps = eps
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:
        x_in, index, valid, w, weight, m, s, d = ctx.saved_tensors
        x = x_in.to(working_dtype(x_in))
        eps, cdim = ctx.eps, (0 if x.dim() == 1 else 1)
        n_classes = x.size(cdim)
        g = grad if valid is None else torch.where(valid, grad, 0.0)  # ignored: 0 even if grad is inf/nan
        # the per-sample coefficients Σa = (1-ε)·w_y·g + ε/C·Σ_c w_c·g and the target's entry (p_y - 1)·Σa + …
        # are formed in float64 (vectors of N·d1·… entries, rounded once where they meet the (N, C, …) softmax);
        # in float32, p_y - 1 and its product with g would round twice (0.75 ulp at N=4096, C=1000)
        acc = torch.promote_types(x.dtype, torch.float64)
        g64, g = g.to(acc), g.to(x.dtype)  # grad arrives in forward's float64
        hard = g64 if w is None else g64 * w.to(acc)  # the coefficient a_ic of the target class
        total = hard  # Σ_c a_ic
        if eps > 0.0:  # smoothing scales the target's share and adds ε/C·Σ_c w_c
            hard = (1 - eps) * hard
            total = hard + g64 * (eps / n_classes * (n_classes if weight is None else weight.sum(dtype=acc)))
        graph = torch.is_grad_enabled()  # create_graph: out of place, so autograd sees softmax's dependence on x
        # the target's entry p_y·Σa - a_y, written as (p_y - 1)·Σa + (Σa - a_y): p_y - 1 is exact, so it is rounded
        # at its own (small, when p_y ≈ 1) magnitude, not at Σa's
        if m is None or graph:
            gx = torch.softmax(x, cdim)
            at_target = (pick(gx, index, cdim).to(acc) - 1) * total + (total - hard)
            scale = total.to(x.dtype).unsqueeze(cdim)
            gx = gx.mul(scale) if graph else gx.mul_(scale)
        else:  # softmax = exp(x - m) / s from forward's max and exp-sum (softmax over a middle dimension is slower)
            gx = torch.sub(x, m).exp_()
            s64 = s.squeeze(cdim).to(acc)
            at_target = (d.to(acc).exp() / s64 - 1) * total + (total - hard)
            gx.mul_((total / s64).to(x.dtype).unsqueeze(cdim))
        if eps > 0.0:
            share = g * (eps / n_classes)
            uniform = share.unsqueeze(cdim)
            share = g64 * (eps / n_classes)
            if weight is not None:
                uniform = uniform * class_view(weight, x, cdim)
                share = share * w.to(acc)  # weight[y] (times valid: g is 0 where ignored anyway)
            at_target = at_target - share
            gx = gx - uniform if graph else gx.sub_(uniform)
        at_target = at_target.to(x.dtype)
        src, index = at_target.unsqueeze(cdim), index.unsqueeze(cdim)
        gx = gx.scatter(cdim, index, src) if graph else gx.scatter_(cdim, index, src)
        return gx.to(x_in.dtype), None, None, None, None, None


class NegativePick(torch.autograd.Function):
    """NLL per sample: ``ℓ_i = -w_i·x[i, y_i]``, 0 where ``y_i == ignore_index`` (``masked``; unmasked: no target is
    ignored), ``w_i = weight[y_i]`` (1 without a weight). Backward scatters ``-g_i·w_i`` into zeros.

    Only the caller's ``target`` and ``weight`` are kept for backward (the mask and the int64 classes are
    recomputed: per-sample work), as torch's kernel keeps nothing else."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                masked: bool) -> Tensor:
        cdim = 0 if x.dim() == 1 else 1
        valid, safe = masked_targets(target, ignore_index, masked)
        w = target_weights(valid, safe, weight, x.dtype)
        picked = pick(x, safe, cdim)
        loss = -picked if w is None else -picked * w
        ctx.save_for_backward(target, weight)
        ctx.ignore_index, ctx.masked = ignore_index, masked
        ctx.shape, ctx.dtype = x.shape, x.dtype
        return loss if valid is None else torch.where(valid, loss, 0.0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        target, weight = ctx.saved_tensors
        valid, safe = masked_targets(target, ctx.ignore_index, ctx.masked)
        w = target_weights(valid, safe, weight, ctx.dtype)
        values = -grad if w is None else -grad * w
        if valid is not None:
            values = torch.where(valid, values, 0.0)  # ignored: 0 even if grad is inf/nan
        gx = grad.new_zeros(ctx.shape, dtype=ctx.dtype)
        cdim = 0 if gx.dim() == 1 else 1
        src, index = values.unsqueeze(cdim).to(ctx.dtype), safe.unsqueeze(cdim)
        graph = torch.is_grad_enabled()  # create_graph: out of place (the gradient is linear in grad)
        return (gx.scatter(cdim, index, src) if graph else gx.scatter_(cdim, index, src)), None, None, None, None


def masked_targets(target: Tensor, ignore_index: int, masked: bool) -> tuple[Tensor | None, Tensor]:
    """``valid = target != ignore_index`` (None when not ``masked``) and the int64 classes with ignored entries
    set to 0 (no range check: see ``probabilistic._valid_and_safe``)."""
    if not masked:
        return None, target.long()
    valid = target != ignore_index
    return valid, target.masked_fill(~valid, 0).long()


def target_weights(valid: Tensor | None, safe: Tensor, weight: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Per-sample weights ``weight[y_i]·[y_i not ignored]`` that ``mean`` divides by; None when all are 1."""
    if weight is None:
        return None if valid is None else valid.to(dtype)
    return weight[safe] if valid is None else weight[safe] * valid


def pick(t: Tensor, safe: Tensor, cdim: int) -> Tensor:
    """``t`` at class ``safe`` along ``cdim`` (shaped like ``safe``). ``gather`` along a middle class dimension
    costs about what ``index_select`` on the flat storage does once the flat positions are made (measured, one
    thread, (16, 21, 64, 64): 210 µs against 190 + 80 µs), and Inductor bounds-checks its index."""
    return t.gather(cdim, safe.unsqueeze(cdim)).squeeze(cdim)


def class_view(weight: Tensor, x: Tensor, cdim: int) -> Tensor:
    """Per-class ``weight`` shaped to broadcast along the class dimension of ``x``."""
    shape = [1] * x.dim()
    shape[cdim] = weight.numel()
    return weight.view(shape)


class BinaryCrossEntropy(torch.autograd.Function):
    """Elementwise ``ℓ = (y - 1)·max(log(1-x), -100) - y·max(log x, -100)``.

    ``∂ℓ/∂x = (x - y) / max(x(1-x), ε)`` and ``∂ℓ/∂y = -logit(x)``, torch's formulas (autograd through the
    clamped logs would give 0 at the clamp instead)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor) -> Tensor:
        ctx.save_for_backward(x, y)
        # in place after the first op of each term: three input-sized allocations instead of nine (each a fresh
        # multi-MB buffer that page-faults in)
        log_not = torch.neg(x).log1p_().clamp_min_(-100)
        log_x = torch.log(x).clamp_min_(-100)
        return torch.sub(y, 1).mul_(log_not).sub_(log_x.mul_(y))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, y = ctx.saved_tensors
        gx = BinaryCrossEntropySlope.apply(grad, x, y) if ctx.needs_input_grad[0] else None
        gy = -grad * torch.logit(x) if ctx.needs_input_grad[1] else None
        return gx, gy


class BinaryCrossEntropySlope(torch.autograd.Function):
    """``g·(x - y) / max(x(1-x), ε)`` (ε: the float32 value of 1e-12, as torch's kernel uses), with torch's
    second derivatives: ``∂/∂x = g·(x² - 2xy + y) / ((x+δ)²(1-x+δ)²)``, ``∂/∂y = -g / max(x(1-x), δ)``,
    ``δ = 1e-12``."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, x: Tensor, y: Tensor) -> Tensor:
        ctx.save_for_backward(grad, x, y)
        denom = torch.rsub(x, 1).mul_(x).clamp_min_(_BCE_EPS_F32)  # (1 - x)·x, as x·(1 - x) (commutative)
        return torch.sub(x, y).mul_(grad).div_(denom)  # (x - y)·g / denom: grad·(x - y) / denom

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
    def forward(ctx: Any, x: Tensor, y: Tensor, pos_weight: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, y, pos_weight)
        log_sig = torch.nn.functional.logsigmoid(x)
        if pos_weight is not None:
            log_sig.mul_((pos_weight - 1).mul(y).add_(1))
        return torch.addcmul(x, y, x, value=-1).sub_(log_sig)  # (1 - y)·x - (1 + (p-1)·y)·log σ(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, y, pw = ctx.saved_tensors
        gx = gy = None
        if torch.is_grad_enabled():  # create_graph: out of place, so autograd can differentiate this backward
            if ctx.needs_input_grad[0]:
                t = None if pw is None else pw * y
                gx = (torch.sigmoid(x) - y if t is None else (t + 1 - y) * torch.sigmoid(x) - t) * grad
            if ctx.needs_input_grad[1]:
                logsig = torch.nn.functional.logsigmoid
                gy = (-x if pw is None else logsig(-x) - logsig(x) * pw) * grad
            return gx, gy, None
        if ctx.needs_input_grad[0]:
            if pw is None:
                gx = torch.sigmoid(x).sub_(y).mul_(grad)
            else:
                t = pw * y
                gx = torch.sigmoid(x).mul_(t.add(1).sub_(y)).sub_(t).mul_(grad)
        if ctx.needs_input_grad[1]:
            logsig = torch.nn.functional.logsigmoid
            gy = (x.neg() if pw is None else logsig(-x).sub_(logsig(x).mul_(pw))).mul_(grad)
        return gx, gy, None
