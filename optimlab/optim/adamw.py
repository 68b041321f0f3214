"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), as :class:`torch.optim.AdamW`."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    r"""AdamW, as :class:`torch.optim.AdamW`: :class:`~optimlab.optim.Adam` with
    ``decoupled_weight_decay=True`` (θ ← θ(1 - γλ) before the Adam update) and ``weight_decay=1e-2``.

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` (amsgrad).
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-3,
                 betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, state_dtype: Any = None, param_rounding: str | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, state_dtype=state_dtype, param_rounding=param_rounding)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
