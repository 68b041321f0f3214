"""Adagrad (Duchi et al.) with lr decay and an initial accumulator, as :class:`torch.optim.Adagrad`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _lowp
from ._many import Many
from .optimizer import Optimizer, scalar_dtype, use_grad_for_differentiable, validate

__all__ = ["Adagrad", "adagrad_rule"]


def _sparse_like(grad: Tensor, indices: Tensor, values: Tensor) -> Tensor:
    """A sparse tensor shaped like ``grad`` holding ``values`` at ``indices`` (empty when there are none)."""
    if indices.dim() == 0 or values.dim() == 0:
        return torch.empty_like(grad)
    return torch.sparse_coo_tensor(indices, values, grad.size())


def adagrad_rule(p: Any, g: Any, s: Any, step: float, *, lr: Any, lr_decay: float, weight_decay: float, eps: float,
                 differentiable: bool) -> None:
    """g ← g + λθ;  γₜ = γ / (1 + (t-1)η);  s ← s + g²;  θ ← θ - γₜ · g / (√s + ε).

    A sparse ``g`` (from ``nn.Embedding(sparse=True)``) touches only its rows, as torch does.
    """
    is_sparse = isinstance(g, Tensor) and g.is_sparse
    if weight_decay != 0:
        if is_sparse:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        g = g.add(p, alpha=weight_decay)
    clr = lr / (1 + (step - 1) * lr_decay)
    if is_sparse:
        g = g.coalesce()  # the update is non-linear, so indices must be unique
        idx, vals = g._indices(), g._values()
        s.add_(_sparse_like(g, idx, vals.pow(2)))
        std_vals = s.sparse_mask(g)._values().sqrt_().add_(eps)
        p.add_(_sparse_like(g, idx, vals / std_vals), alpha=-clr)
        return
    s.addcmul_(g, g, value=1)
    std = s.sqrt() + eps if differentiable else s.sqrt().add_(eps)
    if isinstance(p, Many):  # torch's foreach path forms g·(-γₜ) first: same bits in float32/64,
        p.addcdiv_(g.mul(-clr), std)  # but it rounds to bf16/fp16 there, so follow it
    else:
        p.addcdiv_(g, std, value=-clr)


class Adagrad(Optimizer):
    r"""Adagrad, as :class:`torch.optim.Adagrad` (its state is created at construction, like torch's).

    .. math::
        \tilde\gamma_t = \frac{\gamma}{1+(t-1)\eta},\quad s_t = s_{t-1} + g_t^2,\quad
        \theta_t = \theta_{t-1} - \tilde\gamma_t\,\frac{g_t}{\sqrt{s_t}+\epsilon}

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 1e-2).
        lr_decay (float): η (default: 0).
        weight_decay (float): L2 penalty λ (default: 0).
        initial_accumulator_value (float): s₀ (default: 0).
        eps (float): ε (default: 1e-10).
        foreach, maximize, differentiable, fused: as in torch (see :mod:`.optimizer`).

    State per parameter: ``step``, ``sum``. Sparse gradients are supported (per-tensor path).
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Invalid learning rate: {lr}")
        validate(0.0 <= lr_decay, f"Invalid lr_decay value: {lr_decay}")
        validate(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        validate(0.0 <= initial_accumulator_value,
                 f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        validate(0.0 <= eps, f"Invalid epsilon value: {eps}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        if fused:
            validate(not differentiable, "`fused` does not support `differentiable`", RuntimeError)
            validate(not foreach, "`fused` and `foreach` cannot be `True` together.", RuntimeError)
            self._need_device_dtype_check_for_fused = True
            self._step_supports_amp_scaling = True
        for group in self.param_groups:  # torch fills every group's sums with the constructor's value
            init = {**group, "initial_accumulator_value": initial_accumulator_value}
            for p in group["params"]:
                self.state[p].update(self._init_state(p, init))
                self._compact(p, group)

    _lowp_state = {"sum": False}
    _group_defaults = (("foreach", None), ("maximize", False), ("differentiable", False), ("fused", None))
    _scalar_state = ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        init = group["initial_accumulator_value"]
        fill = complex(init, init) if torch.is_complex(p) else init
        step = (torch.zeros((), dtype=scalar_dtype(True), device=p.device) if group["fused"]
                else torch.tensor(0.0, dtype=scalar_dtype()))
        return {"step": step, "sum": torch.full_like(p, fill, memory_format=torch.preserve_format)}

    def share_memory(self) -> None:
        """Move the accumulators to shared memory (as torch's Adagrad offers)."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"].share_memory_()

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adagrad step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            if group["fused"] and getattr(self, "_need_device_dtype_check_for_fused", False):
                for p in group["params"]:
                    self._check_fused(p)
                self._need_device_dtype_check_for_fused = False
            params, grads, (sums,), steps = self._collect(group, self._init_state, ("sum",), sparse_ok=True)
            if not params:
                continue
            if group["fused"]:
                validate(not any(g.is_sparse for g in grads), "`fused` does not support sparse grad or complex param",
                         RuntimeError)
            self._apply(adagrad_rule, group, [params, grads, sums, self._count(group, steps)],
                        lr=self._lr(group, False), lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
                        eps=group["eps"], differentiable=group["differentiable"])
        return loss
