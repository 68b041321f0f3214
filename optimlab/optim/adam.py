"""Adam (Kingma & Ba) with AMSGrad and decoupled weight decay, as :class:`torch.optim.Adam`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _compat, _lowp
from ._many import Many, maximum_
from .optimizer import Optimizer, compiling, use_grad_for_differentiable, validate, validate_common

__all__ = ["Adam", "adam_rule"]


def _div(fresh: Any, d: Any, differentiable: bool) -> Any:
    """fresh / d, in place (saving a temporary) unless autograd needs ``fresh`` (√'s backward does)."""
    return fresh / d if differentiable else fresh.div_(d)


def adam_rule(p: Any, g: Any, m: Any, v: Any, vmax: Any, step: Any, *, lr: Any, beta1: Any, beta2: Any,
              eps: float, weight_decay: Any, amsgrad: bool, decoupled: bool, differentiable: bool) -> None:
    """g ← g + λθ (or θ ← θ(1 - γλ) if decoupled);  m ← m + (1-β1)(g - m);  v ← β2·v + (1-β2)·g²;
    v̂ ← max(v̂, v) (amsgrad);  θ ← θ - γ/(1-β1ᵗ) · m / (√v / √(1-β2ᵗ) + ε).

    Tensors or :class:`~optimlab.optim._many.Many` lists; ``step`` is a Python number, or a tensor
    (list) in capturable/differentiable mode and under ``torch.compile``, where the bias corrections
    stay tensors (torch's order). Tensor β/λ/γ that require grad are differentiated through.
    """
    if weight_decay != 0:
        if decoupled:
            p.mul_(1 - lr * weight_decay)
        elif isinstance(weight_decay, Tensor) and weight_decay.requires_grad:
            g = g.addcmul(p.clone(), weight_decay)
        else:
            g = g.add(p, alpha=weight_decay)
    if isinstance(beta1, Tensor):  # tensor betas: torch lerps with β1 cast to the parameter's dtype
        ref = p[0] if isinstance(p, Many) else p
        m.lerp_(g, 1 - beta1.to(device=ref.device, dtype=ref.dtype))
    else:
        m.lerp_(g, 1 - beta1)
    if isinstance(beta2, Tensor) and beta2.requires_grad:  # addcmul_'s value must be a number:
        v.lerp_(g.square(), 1 - beta2)  # β2·v + (1-β2)·g² as a lerp, torch's differentiable form
    else:
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    if amsgrad:
        maximum_(vmax, v, differentiable)
        v = vmax
    if isinstance(step, Tensor) and any(isinstance(b, Tensor) and b.requires_grad for b in (beta1, beta2)):
        step = step.clone()  # βᵗ's backward needs t, which the next step increments in place
    if isinstance(step, (int, float)):
        step_size = lr / (1 - beta1**step)
        denom = _div(v.sqrt(), (1 - beta2**step) ** 0.5, differentiable).add_(eps)
        p.addcdiv_(m, denom, value=-step_size)
        return
    neg_step_size = -(lr / (1 - beta1**step))
    denom = _div(v.sqrt(), (1 - beta2**step).sqrt() * neg_step_size, differentiable).add_(eps / neg_step_size)
    p.addcdiv_(m.clone() if differentiable else m, denom)


class Adam(Optimizer):
    r"""Adam, as :class:`torch.optim.Adam` (same signature, defaults, state and checkpoints).

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_t = \theta_{t-1} - \gamma\,\frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}

    with :math:`g_t = \pm\nabla f + \lambda\theta` (L2) or :math:`\theta \leftarrow \theta(1-\gamma\lambda)`
    (``decoupled_weight_decay``), and :math:`v_t \leftarrow \max(v_{t-1}^{max}, v_t)` with ``amsgrad``.

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 1e-3).
        betas (tuple[float, float] | tuple[Tensor, Tensor]): β1, β2 (default: (0.9, 0.999)).
        eps (float): ε added to the denominator (default: 1e-8).
        weight_decay (float): λ (default: 0).
        amsgrad (bool): use the running maximum of v (default: False).
        foreach, maximize, capturable, differentiable, fused: as in torch (see :mod:`.optimizer`).
        decoupled_weight_decay (bool): AdamW's decay (default: False).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` (amsgrad).
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-3,
                 betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False,
                 state_dtype: Any = None,
                 param_rounding: str | None = None) -> None:
        if isinstance(lr, Tensor):
            validate(not (foreach and not capturable),
                     "lr as a Tensor is not supported for capturable=False and foreach=True")
        validate_common(lr, eps, None, betas)
        validate(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        validate((isinstance(betas[0], float) and isinstance(betas[1], float))
                 or (isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)),
                 "betas must be either both floats or both Tensors")
        for i, b in enumerate(betas):
            if isinstance(b, Tensor):
                validate(not (not capturable and foreach),
                         f"betas[{i}] as a Tensor is not supported for capturable=False and foreach=True")
                validate(b.numel() == 1, f"Tensor betas[{i}] must be 1-element")
        betas = tuple(b.squeeze() if isinstance(b, Tensor) and b.dim() else b for b in betas)  # type: ignore[assignment]
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        defaults.update(_lowp.options(state_dtype, param_rounding, defaults))
        super().__init__(params, defaults)
        if fused:
            validate(not differentiable, "`fused` does not support `differentiable`", RuntimeError)
            self._step_supports_amp_scaling = True
            validate(not foreach, "`fused` and `foreach` cannot be `True` together.", RuntimeError)

    _lowp_state = {"exp_avg": True, "exp_avg_sq": False, "max_exp_avg_sq": False}
    _group_defaults = (
        ("amsgrad", False), ("maximize", False), ("foreach", None), ("capturable", False), ("differentiable", False),
        ("decoupled_weight_decay", False), ("fused", None),
    )
    _scalar_state = ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        state = {"step": self._new_step(p, group), "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                 "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adam step over every group; returns the closure's loss when a closure is given."""
        _compat.capture_health_check(self)
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, (m, v, vmax), steps = self._collect(
                group, self._init_state, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
                sparse_error=f"{type(self).__name__} does not support sparse gradients, please consider SparseAdam "
                             "instead")
            if not params:
                continue
            tensor = group["capturable"] or group["differentiable"] or compiling()
            beta1, beta2 = group["betas"]
            self._apply(adam_rule, group, [params, grads, m, v, vmax, self._count(group, steps, tensor)],
                        lr=self._lr(group, tensor), beta1=beta1, beta2=beta2, eps=group["eps"],
                        weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                        decoupled=group["decoupled_weight_decay"], differentiable=group["differentiable"])
        return loss
