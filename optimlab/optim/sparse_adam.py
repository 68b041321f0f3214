"""SparseAdam: Adam restricted to the rows a sparse gradient touches (torch's masked form)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .optimizer import Optimizer, to_scalar, validate

__all__ = ["SparseAdam", "sparse_adam_rule"]


def sparse_adam_rule(p: Tensor, g: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, *, lr: float, beta1: float,
                     beta2: float, eps: float, step: int) -> None:
    """On the coordinates I that the (coalesced) sparse gradient g touches, and only there:

    m_I ← m_I + (1-β1)(g_I - m_I);  v_I ← v_I + (1-β2)(g_I² - v_I);
    θ_I ← θ_I - γ·√(1-β2ᵗ)/(1-β1ᵗ) · m_I / (√v_I + ε).
    """
    g = g.coalesce()  # the update is non-linear in g: duplicate indices must be summed first
    idx, vals = g._indices(), g._values()
    if vals.numel() == 0:
        return

    def scatter(values: Tensor) -> Tensor:
        return torch.sparse_coo_tensor(idx, values, g.size(), check_invariants=False)

    m_old = exp_avg.sparse_mask(g)._values()
    dm = vals.sub(m_old).mul_(1 - beta1)
    exp_avg.add_(scatter(dm))
    v_old = exp_avg_sq.sparse_mask(g)._values()
    dv = vals.pow(2).sub_(v_old).mul_(1 - beta2)
    exp_avg_sq.add_(scatter(dv))
    m_new = dm.add_(m_old)  # the new moments on I, without reading them back from the dense state
    denom = dv.add_(v_old).sqrt_().add_(eps)
    step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    p.add_(scatter(-step_size * m_new.div_(denom)))


class SparseAdam(Optimizer):
    r"""Adam for dense parameters with sparse gradients (e.g. ``nn.Embedding(sparse=True)``), as
    :class:`torch.optim.SparseAdam`: moments and parameters change only on the gradient's support.

    .. math::
        m_I \leftarrow \beta_1 m_I + (1-\beta_1) g_I,\quad v_I \leftarrow \beta_2 v_I + (1-\beta_2) g_I^2,\quad
        \theta_I \leftarrow \theta_I - \gamma\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\frac{m_I}{\sqrt{v_I}+\epsilon}

    Args:
        params: iterable of parameters or named parameters, or of dicts defining groups (dense, real).
        lr (float | Tensor): learning rate γ > 0 (default: 1e-3).
        betas (tuple[float, float]): β1, β2 in [0, 1) (default: (0.9, 0.999)).
        eps (float): ε > 0 added to the denominator (default: 1e-8).
        maximize (bool): maximize the objective (default: False).

    State per parameter: ``step`` (a Python int), ``exp_avg``, ``exp_avg_sq``.
    Dense gradients raise ``RuntimeError`` at ``step()``, as torch's do.
    """

    def __init__(self, params: Any, lr: float | Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, maximize: bool = False) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 < lr, f"Invalid learning rate: {lr}")
        validate(0.0 < eps, f"Invalid epsilon value: {eps}")
        validate(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
        validate(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))
        sparse, complex_ = [], []
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.is_sparse:
                    sparse.append([gi, pi])
                if p.is_complex():
                    complex_.append([gi, pi])
        validate(not sparse, f"Sparse params at indices {sparse}: SparseAdam requires dense parameter tensors")
        validate(not complex_, f"Complex params at indices {complex_}: SparseAdam does not support complex parameters")

    # torch.compile runs this step eagerly, as torch does for its SparseAdam (Dynamo does not trace
    # sparse tensors).
    @torch._disable_dynamo
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SparseAdam step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            maximize = group.get("maximize", False)
            todo = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                validate(p.grad.is_sparse, "SparseAdam does not support dense gradients, please consider Adam instead",
                         RuntimeError)
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                todo.append((p, state))
            lr = to_scalar(group["lr"])  # a tensor lr stays a tensor: torch's rounding
            for p, state in todo:
                g = -p.grad if maximize else p.grad
                sparse_adam_rule(p, g, state["exp_avg"], state["exp_avg_sq"], lr=lr, beta1=beta1, beta2=beta2,
                                 eps=group["eps"], step=state["step"])
        return loss
