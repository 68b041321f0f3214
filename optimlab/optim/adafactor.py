"""Adafactor: factored second moments (row and column means) with relative step sizes (torch's form)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _compat, _fused
from ._rule import fused_rule
from .optimizer import Optimizer, scalar_dtype, to_scalar, validate

__all__ = ["Adafactor", "adafactor_rule"]


def _scale(t: Tensor, s: Any, foreach: bool) -> Tensor:
    """t ← s·t in place; the multi-tensor kernel rounds a scalar differently for half-precision tensors."""
    if foreach:
        torch._foreach_mul_([t], s)
    else:
        t.mul_(s)
    return t


def _norm(t: Tensor) -> Tensor:
    """‖t‖₂, for a matrix from its row sums of squares: compiled, a reduction per row parallelises
    over the rows (a whole-tensor norm measured ~2x slower on 2 CPU cores)."""
    return t.square().sum(-1).sum().sqrt() if t.dim() > 1 else t.norm(2)


@fused_rule(slots=1, shaped=True)
def adafactor_rule(p: Tensor, g: Tensor, row_var: Tensor | None, col_var: Tensor | None, variance: Tensor | None,
                   step: float | Tensor, *, lr: Any, beta2_decay: float, eps1: float, eps2: float, d: float,
                   weight_decay: float, foreach: bool) -> None:
    """One parameter's Adafactor update at step t (β̂₂ = 1 - t^τ, ρ = min(γ, 1/√t)):

    α ← max(ε₂, RMS(θ))·ρ;  θ ← θ(1 - γλ);
    ≥2-D: R ← lerp(R, mean_last(g²), t^τ);  C ← lerp(C, mean_penult(g²), t^τ);  V̂ ← R·C / max(mean(R), ε₁)
    1-D:  V ← lerp(V, g², t^τ);  V̂ ← V
    u ← g / √max(V̂, ε₁²);  θ ← θ - α/max(1, RMS(u)/d) · u.

    ``foreach`` only picks torch's multi-tensor rounding (foreach scaling; u scaled, then added).
    ``step`` is a number, or the 0-d step tensor under ``torch.compile`` and ``fused=True``: then ρ, α
    and the clipping stay tensors (no ``.item()`` host syncs; torch's own compiled step graph-breaks there).
    """
    traced = isinstance(step, Tensor)
    if traced:
        one_minus_beta2 = (step**beta2_decay).to(p.dtype)
        rho = (1 / step.sqrt()).clamp(max=lr)
        alpha = (_norm(p) / (p.numel() ** 0.5)).clamp(min=eps2) * rho
    else:
        one_minus_beta2 = step**beta2_decay
        rho = min(lr, 1 / (step**0.5))
        alpha = max(eps2, p.norm(2).item() / (p.numel() ** 0.5)) * rho
    if weight_decay != 0:
        _scale(p, 1 - lr * weight_decay, foreach)
    if g.dim() > 1:
        assert row_var is not None and col_var is not None
        # mean of g² over a dimension, as a squared norm (no g²-sized temporary)
        row_var.lerp_(torch.linalg.vector_norm(g, dim=-1, keepdim=True).square_().div_(g.size(-1)), one_minus_beta2)
        col_var.lerp_(torch.linalg.vector_norm(g, dim=-2, keepdim=True).square_().div_(g.size(-2)), one_minus_beta2)
        mean = row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1)
        if traced:  # rsqrt(max(RᵢCⱼ/m, ε₁²)) = min(rsqrt(Rᵢ/m)·rsqrt(Cⱼ), 1/ε₁): no root per element
            u_scale = (row_var / mean).rsqrt() * col_var.rsqrt()
            update = g * (u_scale.clamp(max=1 / eps1) if eps1 > 0 else u_scale)
            p.add_(update.mul_(-alpha / (_norm(update) / ((update.numel() ** 0.5) * d)).clamp(min=1.0)))
            return
        var = row_var * col_var  # the outer product R·C (one product per element: as matmul's, bit for bit)
        var.div_(mean)
    else:
        assert variance is not None
        variance.lerp_(g * g, one_minus_beta2)
        var = variance.clone()
    update = var.clamp_(min=eps1 * eps1).rsqrt_().mul_(g)
    if traced:
        p.add_(update.mul_(-alpha / (_norm(update) / ((update.numel() ** 0.5) * d)).clamp(min=1.0)))
        return
    scale = -alpha / max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d))
    if foreach:  # torch's multi-tensor rounding: scale u, then add
        p.add_(_scale(update, scale, True))
    else:
        p.add_(update, alpha=scale)


class Adafactor(Optimizer):
    r"""Adafactor (Shazeer & Stern, 2018) as :class:`torch.optim.Adafactor`: the second moment of a
    ≥2-D parameter is kept as a row factor R and a column factor C (over the last two dimensions),
    of a vector in full; the step is relative to the parameter's RMS and clipped by ``d``.

    .. math::
        \hat V_t = \frac{R_t C_t}{\max(\mathbf 1^\top R_t, \epsilon_1)},\quad
        \theta_t = \theta_{t-1}(1-\gamma\lambda) - \frac{\max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\rho_t}
            {\max(1, \mathrm{RMS}(U_t)/d)} U_t,\quad U_t = \frac{G_t}{\max(\sqrt{\hat V_t}, \epsilon_1)},\quad
        \rho_t = \min(\gamma, t^{-1/2})

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): the cap on the relative step ρ and the weight-decay coefficient (default: 1e-2).
        beta2_decay (float): τ ≤ 0; the moments' averaging weight is t^τ (default: -0.8).
        eps (tuple[float | None, float]): ε₁ (None: the parameter dtype's machine epsilon) and ε₂
            (default: (None, 1e-3)).
        d (float): update clipping threshold ≥ 1 (default: 1.0).
        weight_decay (float): decoupled weight decay λ (default: 0.0).
        foreach (bool, optional): torch's multi-tensor rounding (default: None, i.e. the for-loop).
        maximize (bool): maximize the objective (default: False).
        fused (bool, optional): the compiled single-pass update (:mod:`._fused`; torch has none for
            Adafactor; default: None, i.e. unfused). Its step counter lives on the parameter's device.

    State per parameter: ``step`` (0-d float tensor), and ``row_var`` + ``col_var`` (≥2-D) or ``variance`` (1-D).
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0, *,
                 foreach: bool | None = None, maximize: bool = False, fused: bool | None = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Learning rate should be >= 0 but is: {lr}")
        validate(0.0 >= beta2_decay, f"beta2_decay should be <= 0 but is: {beta2_decay}")
        validate(eps[0] is None or 0.0 <= eps[0], f"epsilon1 should be >= 0 but is: {eps[0]}")
        validate(0.0 <= eps[1], f"epsilon2 should be >= 0 but is: {eps[1]}")
        validate(1.0 <= d, f"Clipping threshold d should be >= 1 but is: {d}")
        validate(0.0 <= weight_decay, f"weight_decay should be >= 0 but is: {weight_decay}")
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        super().__init__(params, defaults)
        _fused.check_init(self, fused, foreach, False)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            for p in group["params"]:
                st = self.state.get(p, {})
                if st and not torch.is_tensor(st["step"]):
                    st["step"] = torch.tensor(float(st["step"]), dtype=scalar_dtype())

    _multi_tensor = False  # per-parameter reductions: the rule runs per tensor (``foreach`` is a rounding choice)

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """Lazy state: a step counter (on the parameter's device when fused) and the factored (≥2-D)
        or full (1-D) second moment."""
        g = p.grad
        assert g is not None
        state: dict[str, Any] = {"step": torch.tensor(0.0, dtype=scalar_dtype(),
                                                      device=p.device if group.get("fused") else None)}
        if g.dim() > 1:
            state["row_var"] = g.new_zeros([*g.shape[:-1], 1])
            state["col_var"] = g.new_zeros([*g.shape[:-2], 1, g.shape[-1]])
        else:
            state["variance"] = torch.zeros_like(g, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adafactor step over every group; returns the closure's loss when a closure is given."""
        _compat.capture_health_check(self)
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:  # torch's checks, in its order
                if p.grad is not None:
                    validate(not torch.is_complex(p), "Adafactor does not support complex parameters", RuntimeError)
                    validate(not p.grad.is_sparse, "Adafactor does not support sparse gradients", RuntimeError)
            params, grads, moments, steps = self._collect(group, self._init_state, ("row_var", "col_var", "variance"))
            if not params:
                continue
            eps1, eps2 = group["eps"]
            if eps1 is None:  # torch takes the first parameter's dtype for the whole group
                eps1 = torch.finfo(params[0].dtype).eps
            # a tensor lr stays a tensor: torch's rounding; the compiled fused rule advances the counters itself
            self._apply(adafactor_rule, group, [params, grads, *moments, self._count(group, steps)],
                        lr=to_scalar(group["lr"]), beta2_decay=group["beta2_decay"], eps1=eps1, eps2=eps2,
                        d=group["d"], weight_decay=group["weight_decay"], foreach=bool(group["foreach"]))
        return loss
