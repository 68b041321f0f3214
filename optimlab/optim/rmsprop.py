"""RMSprop (Hinton) with centering and momentum, as :class:`torch.optim.RMSprop`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fused, _lowp
from ._many import Many
from .optimizer import Optimizer, use_grad_for_differentiable, validate

__all__ = ["RMSprop", "rmsprop_rule"]


def rmsprop_rule(p: Any, g: Any, sq: Any, gavg: Any, buf: Any, *, lr: Any, alpha: float, eps: float,
                 weight_decay: float, momentum: float, centered: bool, differentiable: bool) -> None:
    """g ← g + λθ;  v ← αv + (1-α)g²;  ḡ ← ḡ + (1-α)(g - ḡ) (centered);  d = √(v - ḡ²) (or √v) + ε;
    b ← μb + g/d, θ ← θ - γb (momentum) or θ ← θ - γ·g/d."""
    if weight_decay != 0:
        g = g.add(p, alpha=weight_decay)
    sq.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    if centered:
        gavg.lerp_(g, 1 - alpha)
        avg = sq.addcmul(gavg, gavg, value=-1).sqrt_()
    else:
        avg = sq.sqrt()
    avg = avg.add(eps) if differentiable else avg.add_(eps)
    if momentum > 0:
        buf.mul_(momentum).addcdiv_(g, avg)
        if isinstance(lr, Tensor) and isinstance(p, Many):  # torch's capturable foreach path takes a tensor lr
            p.addcmul_(buf, lr, value=-1)
        else:
            p.add_(buf, alpha=-lr)
    elif isinstance(lr, Tensor) and isinstance(p, Many):
        p.addcdiv_(g * -lr, avg)
    else:
        p.addcdiv_(g, avg, value=-lr)


class RMSprop(Optimizer):
    r"""RMSprop, as :class:`torch.optim.RMSprop`.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\quad
        \tilde v_t = v_t - \bar g_t^2 \text{ (centered)},\quad
        \theta_t = \theta_{t-1} - \gamma\, b_t,\ b_t = \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon)

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 1e-2).
        alpha (float): smoothing constant α (default: 0.99).
        eps (float): ε (default: 1e-8).
        weight_decay (float): L2 penalty λ (default: 0).
        momentum (float): μ (default: 0).
        centered (bool): normalise by the gradient's estimated variance (default: False).
        capturable, foreach, maximize, differentiable: as in torch (see :mod:`.optimizer`).

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False, differentiable: bool = False, *,
                 fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Invalid learning rate: {lr}")
        validate(0.0 <= eps, f"Invalid epsilon value: {eps}")
        validate(0.0 <= momentum, f"Invalid momentum value: {momentum}")
        validate(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        validate(0.0 <= alpha, f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered, weight_decay=weight_decay,
                        capturable=capturable, foreach=foreach, maximize=maximize, differentiable=differentiable)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        _fused.check_init(self, fused, defaults.get("foreach"), differentiable)

    _lowp_state = {"square_avg": False, "momentum_buffer": True, "grad_avg": True}
    _group_defaults = (
        ("momentum", 0), ("centered", False), ("foreach", None), ("maximize", False), ("differentiable", False),
        ("capturable", False),
    )
    _scalar_state = ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        state = {"step": self._new_step(p, group),
                 "square_avg": torch.zeros_like(p, memory_format=torch.preserve_format)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One RMSprop step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, (sq, gavg, buf), steps = self._collect(
                group, self._init_state, ("square_avg", "grad_avg", "momentum_buffer"))
            if not params:
                continue
            self._count(group, steps)
            self._apply(rmsprop_rule, group, [params, grads, sq, gavg, buf], lr=self._lr(group, group["capturable"]),
                        alpha=group["alpha"], eps=group["eps"], weight_decay=group["weight_decay"],
                        momentum=group["momentum"], centered=group["centered"],
                        differentiable=group["differentiable"])
        return loss
