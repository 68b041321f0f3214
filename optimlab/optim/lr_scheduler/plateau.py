"""ReduceLROnPlateau: lr ← max(lr · factor, min_lr) once a metric stops improving for ``patience`` steps."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, SupportsFloat

import torch
from torch.optim import Optimizer

from ._base import EPOCH_DEPRECATION, LRScheduler, group_vals, set_group_val

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
    """Multiply every group's lr by ``factor`` (floored at ``min_lr``) when the metric passed to
    ``step(metrics)`` has not improved for more than ``patience`` steps; then wait ``cooldown`` steps.

    Its second base is torch's own ReduceLROnPlateau, for type checks only: trainers (PyTorch
    Lightning, Hugging Face ``Trainer``) recognise a plateau scheduler by ``isinstance(s,
    torch.optim.lr_scheduler.ReduceLROnPlateau)`` and only then pass the monitored metric to ``step``.
    Every method torch's class defines is defined here (and tested to be), so none of its code runs;
    torch's constructor is not called either.

    Improvement: ``a < best·(1 - threshold)`` (min, rel), ``a < best - threshold`` (min, abs),
    ``a > best·(1 + threshold)`` (max, rel), ``a > best + threshold`` (max, abs). A reduction smaller
    than ``eps`` is skipped. Like torch's, it calls no base constructor and has no closed form
    (``lr_at`` raises): the schedule follows the metrics.

    Args:
        optimizer: the wrapped optimizer.
        mode (str): ``"min"`` or ``"max"`` (default: "min").
        factor (float): multiplier, < 1 (default: 0.1).
        patience (int): bad steps tolerated before reducing (default: 10).
        threshold (float): significance of an improvement (default: 1e-4).
        threshold_mode (str): ``"rel"`` or ``"abs"`` (default: "rel").
        cooldown (int): steps to wait after a reduction (default: 0).
        min_lr (float or list): floor for every group, or one per group (default: 0).
        eps (float): smallest reduction applied (default: 1e-8).
    """

    def __init__(self, optimizer: Optimizer, mode: Literal["min", "max"] = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: Literal["rel", "abs"] = "rel",
                 cooldown: int = 0, min_lr: list[float] | float = 0, eps: float = 1e-8) -> None:
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        self.factor = factor
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = group_vals(self.optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        """Forget the best metric, the bad-step count and the cooldown."""
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record ``metrics`` (a number or 0-d tensor) and reduce the lr if it has plateaued."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad steps during cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = group_vals(self.optimizer, "lr")

    def _reduce_lr(self, epoch: int) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the `optimizer` ({len(groups)}) differs from when "
                    f"`ReduceLROnPlateau` was initialized ({len(self.min_lrs)}), usually due to a new param group "
                    "being added to the optimizer. Please modify the `min_lrs` field to match the length of the "
                    "`optimizer` param groups.")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for i, g in enumerate(groups):
            old = float(g["lr"])
            new = max(old * self.factor, self.min_lrs[i])
            if old - new > self.eps:
                set_group_val(g, "lr", new)

    @property
    def in_cooldown(self) -> bool:
        """Whether a reduction happened less than ``cooldown`` steps ago."""
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in {"min", "max"}:
            raise ValueError("mode " + mode + " is unknown!")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError("threshold mode " + threshold_mode + " is unknown!")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes (and re-derive the comparison from mode/threshold)."""
        self.__dict__.update(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)

    def lr_at(self, step: int) -> list[Any]:
        """Not available: the lr follows the metrics, not the step."""
        raise NotImplementedError("ReduceLROnPlateau has no closed form: its lr follows the metrics passed to step()")
