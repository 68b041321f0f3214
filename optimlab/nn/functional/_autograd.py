"""Custom autograd Functions for the likelihood losses whose closed-form gradient is cheaper (cross entropy:
memory) or must follow torch's convention (BCE: finite at 0 and 1). Both backwards are written with
differentiable tensor ops, so double backward works through them."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_BCE_EPS = 1e-12  # torch's floor on x(1-x) in BCE's second derivatives
_BCE_EPS_F32 = float(torch.tensor(1e-12, dtype=torch.float32))  # the kernel's float constant, ≈ 9.99999996e-13


class CrossEntropyIndex(torch.autograd.Function):
    """Cross entropy of logits against class indices, with label smoothing ``ε``, per sample:
    ``ℓ_i = (1-ε)·w[y_i]·(-logp_{i y_i}) + ε/C·Σ_c w_c·(-logp_ic)`` (0 where ``valid`` is False, ``w ≡ 1`` without
    weights), plus the per-sample weights ``w[y_i]·valid_i`` that ``mean`` divides by. Classes on dim 1 (dim 0 for
    an unbatched ``(C,)`` input).

    As ``ℓ_i = Σ_c a_ic·(-logp_ic)``, backward is ``∂ℓ_i/∂x_ic = softmax(x)_ic·Σ_c a_ic - a_ic``, computed from the
    caller's logits: autograd keeps only per-sample vectors, where ``log_softmax`` + gather would keep a full
    ``(N, C)`` copy. The backward is written with differentiable ops, so double backward works."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, safe: Tensor, valid: Tensor, weight: Tensor | None,
                eps: float) -> tuple[Tensor, Tensor]:
        cdim = 0 if x.dim() == 1 else 1
        logp = torch.log_softmax(x, cdim)
        picked = logp.gather(cdim, safe.unsqueeze(cdim)).squeeze(cdim)
        w = valid.to(x.dtype) if weight is None else weight[safe] * valid
        loss = -picked if weight is None else -picked * w
        if eps > 0.0:
            smooth = -(logp if weight is None else logp * class_view(weight, x, cdim)).sum(cdim)
            loss = (1 - eps) * loss + (eps / x.size(cdim)) * smooth
        loss = torch.where(valid, loss, 0.0)
        ctx.save_for_backward(x, safe, valid, w, weight, picked)
        ctx.eps = eps
        ctx.mark_non_differentiable(w)
        return loss, w

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _grad_w: Tensor | None) -> tuple[Tensor | None, None, None, None, None]:
        x, safe, valid, w, weight, picked = ctx.saved_tensors
        eps, cdim = ctx.eps, (0 if x.dim() == 1 else 1)
        n_classes = x.size(cdim)
        g = torch.where(valid, grad, 0.0)  # ignored samples get 0 even if grad is inf/nan (all-ignored mean)
        hard = ((1 - eps) * g * w).unsqueeze(cdim)  # the coefficient a_ic of the target class
        total = hard
        if eps > 0.0:  # Σ_c a_ic adds ε/C·Σ_c w_c
            spread = eps / n_classes * (n_classes if weight is None else weight.sum())
            total = hard + (g * spread).unsqueeze(cdim)
        graph = torch.is_grad_enabled()  # create_graph: out of place, so autograd sees softmax's dependence on x
        index = safe.unsqueeze(cdim)
        anchor = x.gather(cdim, index)
        if graph or not bool(torch.isfinite(anchor).all()):
            gx = torch.softmax(x, cdim)
        else:  # softmax = exp((x - x_y) + logp_y): elementwise, fast along any class dimension
            gx = torch.sub(x, anchor).add_(picked.unsqueeze(cdim)).exp_()
        gx = gx.mul(total) if graph else gx.mul_(total)
        if eps > 0.0:
            uniform = g.unsqueeze(cdim) * (eps / n_classes)
            if weight is not None:
                uniform = uniform * class_view(weight, x, cdim)
            gx = gx - uniform if graph else gx.sub_(uniform)
        gx = gx.scatter_add(cdim, index, -hard) if graph else gx.scatter_add_(cdim, index, -hard)
        return gx, None, None, None, None


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
        return (y - 1) * torch.log1p(-x).clamp_min(-100) - y * torch.log(x).clamp_min(-100)

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
        return grad * (x - y) / (x * (1 - x)).clamp_min(_BCE_EPS_F32)

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
