"""NAdam: Adam with Nesterov momentum and momentum decay (Dozat), as :class:`torch.optim.NAdam`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fused, _lowp
from ._many import value
from ._rule import fused_rule
from .optimizer import Optimizer, compiling, scalar_dtype, use_grad_for_differentiable, validate, validate_common

__all__ = ["NAdam", "nadam_rule"]


@fused_rule(slots=2, overrides={"tensor_math": True})
def nadam_rule(p: Any, g: Any, m: Any, v: Any, mu_product: Any, step: Any, *, lr: Any, beta1: float, beta2: float,
               eps: float, weight_decay: float, momentum_decay: float, decoupled: bool, tensor_math: bool) -> None:
    """μₜ = β1(1 - ½·0.96^(tψ));  Πₜ = Πₜ₋₁μₜ;  m ← m + (1-β1)(g - m);  v ← β2·v + (1-β2)·g²;
    d = √(v/(1-β2ᵗ)) + ε;  θ ← θ - γ(1-μₜ)/(1-Πₜ) · g/d - γμₜ₊₁/(1-Πₜμₜ₊₁) · m/d.

    ``mu_product`` is the 0-d state Πₜ₋₁ (updated in place). ``tensor_math`` (capturable or
    differentiable, or compiled) keeps Π a tensor in the coefficients, as torch does; ``step`` is then
    a tensor when capturable or compiled.
    """
    bias_correction2 = 1 - beta2**step
    if weight_decay != 0:
        if decoupled:
            p.mul_(1 - lr * weight_decay)
        else:
            g = g.add(p, alpha=weight_decay)
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    mu_product.mul_(mu)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = v.div(bias_correction2).sqrt_()
    if tensor_math:
        denom = denom.add(eps)
        mu_product_next = mu_product * mu_next
        p.addcdiv_(g * (-lr * (1.0 - mu) / (1.0 - mu_product)), denom)
        p.addcdiv_(m * (-lr * mu_next / (1.0 - mu_product_next)), denom)
    else:
        prod = value(mu_product)
        denom.add_(eps)
        p.addcdiv_(g, denom, value=(-lr * (1.0 - mu) / (1.0 - prod)))
        p.addcdiv_(m, denom, value=(-lr * mu_next) / (1.0 - prod * mu_next))


class NAdam(Optimizer):
    r"""NAdam, as :class:`torch.optim.NAdam`.

    .. math::
        \mu_t = \beta_1\big(1 - \tfrac12 0.96^{t\psi}\big),\quad
        \theta_t = \theta_{t-1} - \gamma\Big(\frac{1-\mu_t}{1-\prod_{i\le t}\mu_i} g_t
        + \frac{\mu_{t+1}}{1-\prod_{i\le t+1}\mu_i} m_t\Big) \Big/ \big(\sqrt{v_t/(1-\beta_2^t)} + \epsilon\big)

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 2e-3).
        betas (tuple[float, float]): β1, β2 (default: (0.9, 0.999)).
        eps (float): ε (default: 1e-8).
        weight_decay (float): λ (default: 0).
        momentum_decay (float): ψ (default: 4e-3).
        decoupled_weight_decay (bool): decay θ directly, as AdamW (default: False).
        foreach, maximize, capturable, differentiable: as in torch (see :mod:`.optimizer`).

    State per parameter: ``step``, ``mu_product``, ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(self, params: Any, lr: float | Tensor = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False, fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate_common(lr, eps, weight_decay, betas)
        validate(0.0 <= momentum_decay, f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        _fused.check_init(self, fused, defaults.get("foreach"), differentiable)

    _lowp_state = {"exp_avg": True, "exp_avg_sq": False}
    _group_defaults = (
        ("maximize", False), ("foreach", None), ("capturable", False), ("differentiable", False),
        ("decoupled_weight_decay", False),
    )
    _scalar_state = ("mu_product",)

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        dev = p.device if group["capturable"] else None
        return {"step": self._new_step(p, group), "mu_product": torch.ones((), dtype=scalar_dtype(), device=dev),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One NAdam step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, (m, v, prods), steps = self._collect(group, self._init_state,
                                                                ("exp_avg", "exp_avg_sq", "mu_product"))
            if not params:
                continue
            beta1, beta2 = group["betas"]
            tensor_math = group["capturable"] or group["differentiable"] or compiling()
            step = self._count(group, steps, group["capturable"])
            self._apply(nadam_rule, group, [params, grads, m, v, prods, step],
                        bucket_by=None if tensor_math or _fused.active(group, params) else [t.item() for t in prods],
                        lr=self._lr(group, tensor_math), beta1=beta1, beta2=beta2, eps=group["eps"],
                        weight_decay=group["weight_decay"], momentum_decay=group["momentum_decay"],
                        decoupled=group["decoupled_weight_decay"], tensor_math=tensor_math)
        return loss
