"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (torch's form)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from itertools import repeat
from typing import Any

import torch
from torch import Tensor

from . import _lowp
from ._many import Many
from ._rule import fused_rule
from .optimizer import Optimizer, compiling, use_grad_for_differentiable, validate

__all__ = ["SGD", "sgd_rule"]


@fused_rule(once={"first": True})
def sgd_rule(p: Any, g: Any, buf: Any, *, lr: Any, momentum: float, dampening: float, weight_decay: Any,
             nesterov: bool, first: bool) -> None:
    """g ← g + λθ;  b ← g (first step) else μb + (1-τ)g;  g ← g + μb (Nesterov) or b;  θ ← θ - γg.

    ``p, g, buf`` are tensors or :class:`~optimlab.optim._many.Many` lists; ``first`` means the
    momentum buffers are new (torch seeds them with the gradient, undamped).
    """
    if weight_decay != 0:
        if isinstance(weight_decay, Tensor) and weight_decay.requires_grad and not isinstance(p, Many):
            g = g.addcmul(p.clone(), weight_decay)  # add's alpha must be a number
        else:
            g = g.add(p, alpha=weight_decay)
    if momentum != 0:
        if first:  # torch seeds the buffer with a detached copy: no gradient through the first g
            buf.copy_(g.detach())
        else:
            buf.mul_(momentum).add_(g, alpha=1 - dampening)
        g = g.add(buf, alpha=momentum) if nesterov else buf
    if isinstance(lr, Tensor) and compiling():  # a tensor lr stays a tensor (no host read), torch's form
        p.add_(g * -lr)
    elif isinstance(lr, Tensor) and lr.requires_grad:
        p.addcmul_(g, lr, value=-1)
    else:
        p.add_(g, alpha=-lr)


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as :class:`torch.optim.SGD`.

    .. math::
        g_t = \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1},\quad
        b_t = \mu b_{t-1} + (1-\tau) g_t\ (b_1 = g_1),\quad
        \theta_t = \theta_{t-1} - \gamma\,(g_t + \mu b_t \text{ if nesterov else } b_t)

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 1e-3).
        momentum (float): momentum factor μ (default: 0).
        dampening (float): dampening τ for momentum (default: 0).
        weight_decay (float | Tensor): L2 penalty λ (default: 0).
        nesterov (bool): Nesterov momentum; needs momentum > 0 and zero dampening (default: False).
        maximize (bool): maximize the objective (default: False).
        foreach (bool, optional): the multi-tensor path (default: on for accelerator tensors).
        differentiable (bool): let autograd see through ``step()`` (default: False).
        fused (bool, optional): accepted like torch's; runs the same rule (default: None).

    State per parameter: ``momentum_buffer`` (only when momentum ≠ 0).
    """

    _foreach_differentiable = True  # torch's multi-tensor SGD runs under autograd too

    def __init__(self, params: Any, lr: float | Tensor = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float | Tensor = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(lr >= 0.0, f"Invalid learning rate: {lr}")
        validate(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        validate(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        validate(not (nesterov and (momentum <= 0 or dampening != 0)),
                 "Nesterov momentum requires a momentum and zero dampening")
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        if fused:
            self._step_supports_amp_scaling = True
            validate(not differentiable, "`fused` does not support `differentiable`", RuntimeError)
            validate(not foreach, "`fused` and `foreach` cannot be `True` together.", RuntimeError)

    _lowp_state = {"momentum_buffer": True}
    _group_defaults = (
        ("nesterov", False), ("maximize", False), ("foreach", None), ("differentiable", False), ("fused", False),
    )

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SGD step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["fused"] and getattr(self, "_need_device_dtype_check_for_fused", True):
                for p in params:  # once per optimizer, under torch's flag (torch checks the first parameter)
                    self._check_fused(p)
                self._need_device_dtype_check_for_fused = not params
            if not self._amp_gate(group, params):  # GradScaler found inf/NaN: nothing to update
                continue
            grads = self._grads(params, group["maximize"])
            hyper = dict(lr=self._scalar(group["lr"]), momentum=group["momentum"], dampening=group["dampening"],
                         weight_decay=group["weight_decay"], nesterov=group["nesterov"])
            if group["momentum"] == 0:
                self._apply(sgd_rule, group, [params, grads, [None] * len(params)], first=False, **hyper)
                continue
            states = [self.state[p] for p in params]
            bufs = [st.get("momentum_buffer") for st in states]
            if all(map(operator.is_not, bufs, repeat(None))):  # each step after the first: one call
                self._apply(sgd_rule, group, [params, grads, bufs], first=False, **hyper)
                continue
            new = {i for i, b in enumerate(bufs) if b is None}
            for i in new:
                states[i]["momentum_buffer"] = torch.zeros_like(params[i], memory_format=torch.preserve_format)
                self._compact(params[i], group)
                bufs[i] = states[i]["momentum_buffer"]
            for first in (True, False):
                sel = [i for i in range(len(params)) if (i in new) == first]
                if sel:
                    self._apply(sgd_rule, group, [[params[i] for i in sel], [grads[i] for i in sel],
                                                  [bufs[i] for i in sel]], first=first, **hyper)
        return loss
