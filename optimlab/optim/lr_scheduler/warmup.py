"""WarmupCosineLR: linear warmup then cosine (or linear) decay, one scheduler with a closed form
(optimlab's own; it replaces ``SequentialLR([LinearLR, CosineAnnealingLR], milestones=[warmup_steps])``)."""

from __future__ import annotations

import math
from typing import Any, Literal

from torch.optim import Optimizer

from ._base import LRScheduler

__all__ = ["WarmupCosineLR"]


class WarmupCosineLR(LRScheduler):
    """Linear warmup over W steps from ``start_factor``·base_lr to base_lr, then decay to ``eta_min``
    at ``total_steps`` (T), held there afterwards. With D = T - W:

    * t < W:           lr = base_lr · (s + (1 - s) · t / W)
    * W <= t <= T:     lr = η + (base_lr - η) · (1 + cos(π (t - W) / D)) / 2   (``anneal_strategy="cos"``)
                       lr = η + (base_lr - η) · (1 - (t - W) / D)               (``"linear"``)
    * t > T:           lr = η

    It equals ``SequentialLR([LinearLR(start_factor=s, total_iters=W), CosineAnnealingLR(T_max=D,
    eta_min=η)], milestones=[W])`` up to that composition's rounding (up to step T; past T torch's
    cosine rises again), but every step is computed from the closed form. Like OneCycleLR it
    overwrites the lr, so it is not meant for ChainedScheduler.

    Args:
        optimizer: the wrapped optimizer.
        warmup_steps (int): W >= 0.
        total_steps (int): T > W, the step where the decay ends.
        start_factor (float): warmup start multiplier, in (0, 1] (default: 1/3, LinearLR's).
        eta_min (float): final lr (default: 0.0).
        anneal_strategy (str): "cos" or "linear" (default: "cos").
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, start_factor: float = 1.0 / 3,
                 eta_min: float = 0.0, anneal_strategy: Literal["cos", "linear"] = "cos",
                 last_epoch: int = -1) -> None:
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"Expected non-negative integer warmup_steps, but got {warmup_steps}")
        if not isinstance(total_steps, int) or total_steps <= warmup_steps:
            raise ValueError(f"Expected integer total_steps > warmup_steps, but got {total_steps}")
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.start_factor = start_factor
        self.eta_min = eta_min
        self.anneal_strategy = anneal_strategy
        super().__init__(optimizer, last_epoch)

    def _closed(self, t: int, i: int) -> Any:
        base, eta, W, T, s = self.base_lrs[i], self.eta_min, self.warmup_steps, self.total_steps, self.start_factor
        if t < W:
            return base * (s + (1.0 - s) * t / W)
        p = min(t - W, T - W) / (T - W)
        if self.anneal_strategy == "cos":
            return eta + (base - eta) * (1 + math.cos(math.pi * p)) / 2
        return eta + (base - eta) * (1.0 - p)

    def factor(self, t: int, i: int = 0) -> float:
        """Warmup: s + (1 - s)·t/W of base_lr; decay: the share of (base_lr - η) above η."""
        W = self.warmup_steps
        if t < W:
            return self.start_factor + (1.0 - self.start_factor) * t / W
        p = min(t - W, self.total_steps - W) / (self.total_steps - W)
        return (1 + math.cos(math.pi * p)) / 2 if self.anneal_strategy == "cos" else 1.0 - p

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return self._closed(t, i)
