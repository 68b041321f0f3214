"""Muon: momentum whose update is orthogonalised by a Newton–Schulz iteration (torch's form)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import _to_scalar

from .optimizer import Optimizer, validate

__all__ = ["Muon", "muon_rule", "newton_schulz"]

# Keller Jordan's quintic Newton–Schulz coefficients, step count and norm floor (torch's defaults).
NS_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
EPS = 1e-7


def newton_schulz(g: Tensor, coefficients: tuple[float, float, float], steps: int, eps: float) -> Tensor:
    """An approximate orthogonalisation U·S'·Vᵀ of the 2-D ``g`` (S' ≈ 1), in bfloat16 like torch:

    X ← g / max(‖g‖_F, ε) (transposed so that rows ≤ columns);  k times: A ← XXᵀ;  X ← aX + (bA + cA²)X.
    """
    validate(steps < 100, "Number of steps must be less than 100 for computational efficiency")
    validate(g.dim() == 2, "Input tensor gradient must be a 2D matrix")
    validate(len(coefficients) == 3, "Coefficients must be a tuple of exactly 3 values")
    a, b, c = coefficients
    tall = g.size(0) > g.size(1)
    x = g.bfloat16()
    if tall:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # bA + cA²
        x = torch.addmm(x, poly, x, beta=a)
    return x.T if tall else x


def adjusted_lr(lr: Any, adjust_lr_fn: str | None, shape: torch.Size) -> Any:
    """γ·√max(1, A/B) ("original", the default) or γ·0.2·√max(A, B) ("match_rms_adamw") for an A×B matrix."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * (0.2 * math.sqrt(max(rows, cols)))
    return lr * 1.0


def muon_rule(p: Tensor, g: Tensor, buf: Tensor, *, lr: Any, weight_decay: float, momentum: float, nesterov: bool,
              ns_coefficients: tuple[float, float, float], ns_steps: int, eps: float,
              adjust_lr_fn: str | None) -> None:
    """B ← μB + (1-μ)g;  U ← lerp(g, B, μ) (Nesterov) or B;  θ ← θ(1-γλ) - γ'·NS(U), γ' = adjusted γ."""
    validate(g.dim() == 2, "Param gradient must be a 2D matrix")
    buf.lerp_(g, 1 - momentum)
    update = g.lerp(buf, momentum) if nesterov else buf
    ortho = newton_schulz(update, ns_coefficients, ns_steps, eps)
    step_lr = adjusted_lr(lr, adjust_lr_fn, p.shape)
    p.mul_(1 - lr * weight_decay)
    p.add_(ortho, alpha=-step_lr)


class Muon(Optimizer):
    r"""Muon (Jordan et al.) as :class:`torch.optim.Muon`, for 2-D parameters (hidden-layer matrices;
    optimise biases and embeddings with another optimizer).

    .. math::
        B_t = \mu B_{t-1} + (1-\mu) g_t,\quad
        \tilde B_t = \begin{cases} g_t + \mu(B_t - g_t) & \text{nesterov} \\ B_t \end{cases},\quad
        \theta_t = \theta_{t-1}(1-\gamma\lambda) - \gamma'\,\mathrm{NS}^{(a,b,c)}_k(\tilde B_t;\epsilon)

    with γ' = γ·√max(1, A/B) ("original") or γ·0.2·√max(A, B) ("match_rms_adamw") for an A×B parameter.

    Args:
        params: iterable of 2-D parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 1e-3).
        weight_decay (float): decoupled weight decay λ (default: 0.1).
        momentum (float): momentum μ (default: 0.95).
        nesterov (bool): Nesterov momentum (default: True).
        ns_coefficients (tuple[float, float, float]): Newton–Schulz coefficients (a, b, c)
            (default: (3.4445, -4.7750, 2.0315)).
        eps (float): floor of the Frobenius norm in Newton–Schulz (default: 1e-7).
        ns_steps (int): Newton–Schulz iterations, < 100 (default: 5).
        adjust_lr_fn (str, optional): "original" or "match_rms_adamw" (default: None, i.e. "original").

    State per parameter: ``momentum_buffer``. Non-2-D parameters raise ``ValueError`` at construction.
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = EPS, ns_steps: int = NS_STEPS, adjust_lr_fn: str | None = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Learning rate should be >= 0 but is: {lr}")
        validate(0.0 <= momentum, f"momentum should be >= 0 but is: {momentum}")
        validate(0.0 <= weight_decay, f"weight decay should be >= 0 but is: {weight_decay}")
        validate(adjust_lr_fn in (None, "original", "match_rms_adamw"),
                 f"Adjust learning rate function {adjust_lr_fn} is not supported")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                                      ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                                      adjust_lr_fn=adjust_lr_fn))
        for group in self.param_groups:
            for p in group["params"]:
                validate(p.ndim == 2,
                         f"Muon only supports 2D parameters whereas we found a parameter with size: {p.size()}")

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Muon step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, bufs = [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                validate(not torch.is_complex(p), "Muon does not support complex parameters", RuntimeError)
                validate(not p.grad.is_sparse, "Muon does not support sparse gradients", RuntimeError)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                params.append(p)
                bufs.append(state["momentum_buffer"])
            lr = _to_scalar(group["lr"])  # a tensor lr stays a tensor: torch's rounding
            for p, buf in zip(params, bufs, strict=True):
                muon_rule(p, p.grad, buf, lr=lr, weight_decay=group["weight_decay"], momentum=group["momentum"],
                          nesterov=group["nesterov"], ns_coefficients=group["ns_coefficients"],
                          ns_steps=group["ns_steps"], eps=group["eps"], adjust_lr_fn=group["adjust_lr_fn"])
        return loss
