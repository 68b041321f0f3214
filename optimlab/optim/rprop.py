"""Rprop: resilient backpropagation (Riedmiller & Braun), as :class:`torch.optim.Rprop`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fused, _lowp
from ._many import each
from .optimizer import Optimizer, use_grad_for_differentiable, validate

__all__ = ["Rprop", "rprop_rule"]


def _factor(s: Tensor, etaminus: float, etaplus: float) -> Tensor:
    """η⁺ where s > 0, η⁻ where s < 0, 1 where s = 0 (NaN stays NaN): for a sign s ∈ {-1, ±0, 1, NaN}
    the innermost case is ``s + 1`` (exactly 1 for ±0, NaN for NaN), one select fewer than testing s = 0."""
    return torch.where(s.gt(0), etaplus, torch.where(s.lt(0), etaminus, s + 1))


def rprop_rule(p: Any, g: Any, prev: Any, step_size: Any, *, etaminus: float, etaplus: float, step_size_min: float,
               step_size_max: float, differentiable: bool) -> None:
    """f = η⁺ if g·g₋ > 0, η⁻ if < 0, else 1;  s ← clamp(s·f, s_min, s_max);  g ← 0 where f = η⁻;
    θ ← θ - s·sign(g);  g₋ ← g."""
    s = g.mul(prev.clone() if differentiable else prev).sign()
    factor = each(_factor, s, etaminus, etaplus)
    each(lambda x: x.clamp_(step_size_min, step_size_max), step_size.mul_(factor))
    g = each(lambda gg, ss: torch.where(ss.lt(0), 0, gg), g, s)  # where the factor is η⁻ (0 < η⁻ < 1 < η⁺)
    p.addcmul_(g.sign(), step_size, value=-1)
    prev.copy_(g)


class Rprop(Optimizer):
    r"""Rprop, as :class:`torch.optim.Rprop`.

    .. math::
        \eta_t = \begin{cases}\eta^+ & g_t g_{t-1} > 0\\ \eta^- & g_t g_{t-1} < 0\\ 1 & \text{else}\end{cases},\quad
        s_t = \mathrm{clamp}(\eta_t s_{t-1}, s_{min}, s_{max}),\quad \theta_t = \theta_{t-1} - s_t\,\mathrm{sign}(g_t)

    (with :math:`g_t \leftarrow 0` where :math:`\eta_t = \eta^-`).

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): initial step size s₀ (default: 1e-2).
        etas (tuple[float, float]): (η⁻, η⁺) with 0 < η⁻ < 1 < η⁺ (default: (0.5, 1.2)).
        step_sizes (tuple[float, float]): (s_min, s_max) (default: (1e-6, 50)).
        capturable, foreach, maximize, differentiable: as in torch (see :mod:`.optimizer`).

    State per parameter: ``step``, ``prev``, ``step_size``.
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False, differentiable: bool = False,
                 fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Invalid learning rate: {lr}")
        validate(0.0 < etas[0] < 1.0 < etas[1], f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        _fused.check_init(self, fused, defaults.get("foreach"), differentiable)

    _lowp_state = {"prev": True, "step_size": False}
    _group_defaults = (("foreach", None), ("maximize", False), ("differentiable", False), ("capturable", False))
    _scalar_state = ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        lr = group["lr"]
        lr = lr.squeeze() if isinstance(lr, Tensor) and lr.dim() else lr
        fill = complex(lr, lr) if p.dtype.is_complex else lr
        return {"step": self._new_step(p, group), "prev": torch.zeros_like(p, memory_format=torch.preserve_format),
                "step_size": torch.full_like(p.grad, fill)}  # type: ignore[arg-type]

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Rprop step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, (prev, sizes), steps = self._collect(group, self._init_state, ("prev", "step_size"))
            if not params:
                continue
            self._count(group, steps)
            (etaminus, etaplus), (lo, hi) = group["etas"], group["step_sizes"]
            self._apply(rprop_rule, group, [params, grads, prev, sizes], etaminus=etaminus, etaplus=etaplus,
                        step_size_min=lo, step_size_max=hi, differentiable=group["differentiable"])
        return loss
