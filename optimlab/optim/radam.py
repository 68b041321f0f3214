"""RAdam: Adam with a rectified adaptive learning rate (Liu et al.), as :class:`torch.optim.RAdam`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fused, _lowp
from ._many import each
from ._rule import fused_rule
from .optimizer import Optimizer, compiling, use_grad_for_differentiable, validate_common

__all__ = ["RAdam", "radam_rule"]


@fused_rule(slots=2)
def radam_rule(p: Any, g: Any, m: Any, v: Any, step: Any, *, lr: Any, beta1: float, beta2: float, eps: float,
               weight_decay: float, decoupled: bool, differentiable: bool) -> None:
    """m ← m + (1-β1)(g - m);  v ← β2·v + (1-β2)·g²;  ρ∞ = 2/(1-β2) - 1;  ρₜ = ρ∞ - 2tβ2ᵗ/(1-β2ᵗ);
    θ ← θ - γ·m/(1-β1ᵗ) · (rₜ·√(1-β2ᵗ)/(√v + ε) if ρₜ > 5 else 1),  rₜ = √((ρₜ-4)(ρₜ-2)ρ∞ / ((ρ∞-4)(ρ∞-2)ρₜ)).

    ``step`` is a number, or a tensor (list) when capturable or compiled (then the branch is a ``torch.where``).
    """
    if weight_decay != 0:
        if decoupled:
            p.mul_(1 - lr * weight_decay)
        else:
            g = g.add(p, alpha=weight_decay)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    corrected = m / bias_correction1
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2

    def rect() -> Any:
        return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5

    def adaptive_lr() -> Any:
        root = v.sqrt()
        root = root.add(eps) if differentiable else root.add_(eps)
        if differentiable or not isinstance(step, (int, float)):  # tensor / tensor is a true division
            return (bias_correction2**0.5) / root
        return root.reciprocal_().mul_(bias_correction2**0.5)  # number / t is t.reciprocal() * number in torch

    if isinstance(step, (int, float)):
        if rho_t > 5.0:
            if differentiable:
                p.add_(corrected * lr * adaptive_lr() * rect(), alpha=-1.0)
            else:  # the same products, in place on the fresh m/(1-β1ᵗ)
                p.add_(corrected.mul_(lr).mul_(adaptive_lr()).mul_(rect()), alpha=-1.0)
        else:
            p.add_(corrected * lr, alpha=-1.0)
        return
    update = each(lambda r, a: torch.where(r > 5.0, a, 1.0), rho_t, rect() * adaptive_lr())
    p.add_(corrected * lr * update, alpha=-1.0)


class RAdam(Optimizer):
    r"""RAdam, as :class:`torch.optim.RAdam`.

    .. math::
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t},\quad
        \theta_t = \theta_{t-1} - \gamma\,\hat m_t\cdot
        \begin{cases} r_t\,\sqrt{1-\beta_2^t}/(\sqrt{v_t}+\epsilon) & \rho_t > 5 \\ 1 & \text{else}\end{cases}

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 1e-3).
        betas (tuple[float, float]): β1, β2 (default: (0.9, 0.999)).
        eps (float): ε (default: 1e-8).
        weight_decay (float): λ (default: 0).
        decoupled_weight_decay (bool): decay θ directly, as AdamW (default: False).
        foreach, maximize, capturable, differentiable: as in torch (see :mod:`.optimizer`).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate_common(lr, eps, weight_decay, betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        _fused.check_init(self, fused, defaults.get("foreach"), differentiable)

    _lowp_state = {"exp_avg": True, "exp_avg_sq": False}
    _group_defaults = (
        ("foreach", None), ("maximize", False), ("differentiable", False), ("decoupled_weight_decay", False),
        ("capturable", False),
    )
    _scalar_state = ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"step": self._new_step(p, group), "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One RAdam step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, (m, v), steps = self._collect(group, self._init_state, ("exp_avg", "exp_avg_sq"))
            if not params:
                continue
            beta1, beta2 = group["betas"]
            tensor = group["capturable"] or compiling()
            self._apply(radam_rule, group, [params, grads, m, v, self._count(group, steps, tensor)],
                        lr=self._lr(group, tensor), beta1=beta1, beta2=beta2, eps=group["eps"],
                        weight_decay=group["weight_decay"], decoupled=group["decoupled_weight_decay"],
                        differentiable=group["differentiable"])
        return loss
