"""Adamax: Adam with an infinity-norm second moment (Kingma & Ba, §7.1), as :class:`torch.optim.Adamax`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fused, _lowp
from ._many import maximum_
from .optimizer import Optimizer, compiling, use_grad_for_differentiable, validate_common

__all__ = ["Adamax", "adamax_rule"]


def adamax_rule(p: Any, g: Any, m: Any, u: Any, step: Any, *, lr: Any, beta1: float, beta2: float, eps: float,
                weight_decay: float, differentiable: bool) -> None:
    """g ← g + λθ;  m ← m + (1-β1)(g - m);  u ← max(β2·u, |g| + ε);  θ ← θ - γ/(1-β1ᵗ) · m / u.

    ``step`` is a number, or a tensor (list) when capturable or compiled.
    """
    if weight_decay != 0:
        g = g.add(p, alpha=weight_decay)
    m.lerp_(g, 1 - beta1)
    if differentiable:  # torch's autograd-friendly maximum: amax over a stacked pair
        u.copy_(torch.amax(torch.cat([u.mul_(beta2).unsqueeze(0), g.abs().add_(eps).unsqueeze_(0)], 0), 0))
    else:
        maximum_(u.mul_(beta2), g.abs().add_(eps))
    if isinstance(step, (int, float)):
        p.addcdiv_(m, u, value=-(lr / (1 - beta1**step)))
    else:
        p.addcdiv_(m, u * (beta1**step - 1).div_(lr))


class Adamax(Optimizer):
    r"""Adamax, as :class:`torch.optim.Adamax`.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon),\quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,\frac{m_t}{u_t}

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 2e-3).
        betas (tuple[float, float]): β1, β2 (default: (0.9, 0.999)).
        eps (float): ε (default: 1e-8).
        weight_decay (float): L2 penalty λ (default: 0).
        foreach, maximize, differentiable, capturable: as in torch (see :mod:`.optimizer`).

    State per parameter: ``step``, ``exp_avg``, ``exp_inf``.
    """

    def __init__(self, params: Any, lr: float | Tensor = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False, fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate_common(lr, eps, weight_decay, betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        _fused.check_init(self, fused, defaults.get("foreach"), differentiable)

    _lowp_state = {"exp_avg": True, "exp_inf": False}
    _group_defaults = (("foreach", None), ("maximize", False), ("differentiable", False), ("capturable", False))
    _scalar_state = ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"step": self._new_step(p, group), "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_inf": torch.zeros_like(p, memory_format=torch.preserve_format)}

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adamax step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, (m, u), steps = self._collect(group, self._init_state, ("exp_avg", "exp_inf"))
            if not params:
                continue
            beta1, beta2 = group["betas"]
            tensor = group["capturable"] or compiling()
            self._apply(adamax_rule, group, [params, grads, m, u, self._count(group, steps, tensor)],
                        lr=self._lr(group, tensor), beta1=beta1, beta2=beta2, eps=group["eps"],
                        weight_decay=group["weight_decay"], differentiable=group["differentiable"])
        return loss
