"""ASGD: averaged stochastic gradient descent (Polyak & Juditsky), as :class:`torch.optim.ASGD`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fused, _lowp
from ._many import Many, each
from ._rule import fused_rule
from .optimizer import Optimizer, compiling, scalar_dtype, use_grad_for_differentiable, validate

__all__ = ["ASGD", "asgd_rule"]


@fused_rule(none_args=("eta", "mu"), promote=True)
def asgd_rule(p: Any, g: Any, ax: Any, eta_t: Any, mu_t: Any, eta: Any, mu: Any, step: Any, *, lr: Any, lambd: float,
              alpha: float, t0: float, weight_decay: float) -> None:
    """g ← g + λ'θ;  θ ← θ(1 - λη) - ηg;  ā ← ā + μ(θ - ā) (ā ← θ while μ = 1);
    η ← γ / (1 + λγt)^α;  μ ← 1 / max(1, t - t₀).

    ``eta_t``/``mu_t`` are the 0-d state tensors (rewritten in place); ``eta``/``mu`` their values as
    numbers, or None when capturable or compiled (then ``step`` is a tensor and everything stays on device).
    """
    if weight_decay != 0:
        g = g.add(p, alpha=weight_decay)
    if eta is None:  # capturable
        p.mul_(1 - lambd * eta_t)
        p.addcmul_(g, eta_t, value=-1)
        ax.add_(p.sub(ax).mul_(mu_t))
        eta_t.copy_(lr / ((1 + lambd * lr * step) ** alpha))
        mu_t.copy_(each(lambda s: 1 / torch.maximum(s - t0, torch.ones_like(s)), step))
        return
    p.mul_(1 - lambd * eta)
    p.add_(g, alpha=-eta)
    if mu != 1:
        ax.add_(p.sub(ax).mul_(mu))
    else:
        ax.copy_(p)
    if isinstance(eta_t, Many):  # torch's foreach path evaluates η with the step as a 0-d tensor (its dtype)
        step_t = torch.tensor(step, dtype=scalar_dtype(), device=eta_t[0].device)
        eta_t.copy_(Many([lr / ((1 + lambd * lr * step_t) ** alpha)] * len(eta_t)))
    else:  # through a default-dtype tensor, as torch (this rounds when the state was loaded as float64)
        eta_t.copy_(torch.as_tensor(lr / ((1 + lambd * lr * step) ** alpha)))
    each(lambda t: t.copy_(torch.as_tensor(1 / max(1, step - t0))), mu_t)


class ASGD(Optimizer):
    r"""ASGD, as :class:`torch.optim.ASGD`.

    .. math::
        \theta_t = \theta_{t-1}(1-\lambda\eta_{t-1}) - \eta_{t-1} g_t,\quad
        \bar a_t = \bar a_{t-1} + \mu_{t-1}(\theta_t - \bar a_{t-1}),\quad
        \eta_t = \frac{\gamma}{(1+\lambda\gamma t)^\alpha},\quad \mu_t = \frac{1}{\max(1, t-t_0)}

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 1e-2).
        lambd (float): decay term λ (default: 1e-4).
        alpha (float): power α for the η update (default: 0.75).
        t0 (float): step at which averaging starts (default: 1e6).
        weight_decay (float): L2 penalty (default: 0).
        foreach, maximize, differentiable, capturable: as in torch (see :mod:`.optimizer`).

    State per parameter: ``step``, ``eta``, ``mu``, ``ax`` (the average).
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                 t0: float = 1e6, weight_decay: float = 0, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False, *, fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Invalid learning rate: {lr}")
        validate(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        _fused.check_init(self, fused, defaults.get("foreach"), differentiable)

    _lowp_state = {"ax": True}
    _group_defaults = (("foreach", None), ("maximize", False), ("differentiable", False), ("capturable", False))
    _scalar_state = ("eta", "mu")

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        lr = group["lr"]
        lr = lr.squeeze() if isinstance(lr, Tensor) and lr.dim() else lr
        dt = scalar_dtype()
        return {"step": torch.zeros((), device=p.device, dtype=dt),
                "eta": torch.as_tensor(lr, device=p.device, dtype=dt).clone().detach(),
                "mu": torch.ones((), device=p.device, dtype=dt),
                "ax": torch.zeros_like(p, memory_format=torch.preserve_format)}

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One ASGD step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, (ax, etas, mus), steps = self._collect(group, self._init_state, ("ax", "eta", "mu"))
            if not params:
                continue
            # compiled (outer or fused): no host reads of η, μ, t (a device sync each on a GPU)
            cap = group["capturable"] or compiling() or _fused.active(group, params)
            step = self._count(group, steps, cap)
            eta = [None] * len(params) if cap else [t.item() for t in etas]
            mu = [None] * len(params) if cap else [t.item() for t in mus]
            self._apply(asgd_rule, group, [params, grads, ax, etas, mus, eta, mu, step], lr=self._lr(group, cap),
                        lambd=group["lambd"], alpha=group["alpha"], t0=group["t0"],
                        weight_decay=group["weight_decay"])
        return loss
