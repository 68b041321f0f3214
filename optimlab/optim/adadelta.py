"""Adadelta (Zeiler), as :class:`torch.optim.Adadelta`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fused, _lowp
from ._many import Many
from .optimizer import Optimizer, use_grad_for_differentiable, validate

__all__ = ["Adadelta", "adadelta_rule"]


def adadelta_rule(p: Any, g: Any, sq: Any, acc: Any, *, lr: Any, rho: float, eps: float, weight_decay: float,
                  differentiable: bool) -> None:
    """g ← g + λθ;  v ← ρv + (1-ρ)g²;  Δ = √(u + ε)/√(v + ε) · g;  u ← ρu + (1-ρ)Δ²;  θ ← θ - γΔ."""
    if weight_decay != 0:
        g = g.add(p, alpha=weight_decay)
    sq.mul_(rho).addcmul_(g, g, value=1 - rho)
    std = sq.add(eps).sqrt_()
    delta = acc.add(eps).sqrt_()
    if differentiable:
        delta = delta.clone()
    delta.div_(std).mul_(g)
    acc.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    if isinstance(lr, Tensor) and isinstance(p, Many):  # torch's capturable foreach path takes a tensor lr
        p.addcmul_(delta, lr, value=-1)
    else:
        p.add_(delta, alpha=-lr)


class Adadelta(Optimizer):
    r"""Adadelta, as :class:`torch.optim.Adadelta`.

    .. math::
        v_t = \rho v_{t-1} + (1-\rho) g_t^2,\quad
        \Delta_t = \frac{\sqrt{u_{t-1}+\epsilon}}{\sqrt{v_t+\epsilon}} g_t,\quad
        u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2,\quad \theta_t = \theta_{t-1} - \gamma\Delta_t

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): coefficient γ scaling Δ (default: 1.0).
        rho (float): ρ, the running-average coefficient (default: 0.9).
        eps (float): ε (default: 1e-6).
        weight_decay (float): L2 penalty λ (default: 0).
        foreach, capturable, maximize, differentiable: as in torch (see :mod:`.optimizer`).

    State per parameter: ``step``, ``square_avg``, ``acc_delta``.
    """

    def __init__(self, params: Any, lr: float | Tensor = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach: bool | None = None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Invalid learning rate: {lr}")
        validate(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
        validate(0.0 <= eps, f"Invalid epsilon value: {eps}")
        validate(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize, capturable=capturable,
                        foreach=foreach, differentiable=differentiable)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        _fused.check_init(self, fused, defaults.get("foreach"), differentiable)

    _lowp_state = {"square_avg": False, "acc_delta": False}
    _group_defaults = (("foreach", None), ("maximize", False), ("differentiable", False), ("capturable", False))
    _scalar_state = ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        return {"step": self._new_step(p, group),
                "square_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "acc_delta": torch.zeros_like(p, memory_format=torch.preserve_format)}

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adadelta step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, (sq, acc), steps = self._collect(group, self._init_state, ("square_avg", "acc_delta"))
            if not params:
                continue
            self._count(group, steps)
            self._apply(adadelta_rule, group, [params, grads, sq, acc], lr=self._lr(group, group["capturable"]),
                        rho=group["rho"], eps=group["eps"], weight_decay=group["weight_decay"],
                        differentiable=group["differentiable"])
        return loss
