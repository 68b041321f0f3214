"""Schedulers that scale the base lr by a factor of the step: Lambda, Multiplicative, Step,
MultiStep, Constant, Linear, Exponential, Polynomial and CosineAnnealing.

Each states its ``factor(t)`` once (the closed form, ``lr_at``) and, in ``_advance``, the recursive
step torch takes (``lr_t = lr_{t-1} · factor(t) / factor(t-1)`` written in torch's op order, so the
stepped sequence equals torch's bit for bit).
"""

from __future__ import annotations

import math
import types
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from torch.optim import Optimizer

from ._base import ClosedFormStep, LRScheduler

__all__ = ["ConstantLR", "CosineAnnealingLR", "ExponentialLR", "LambdaLR", "LinearLR", "MultiStepLR",
           "MultiplicativeLR", "PolynomialLR", "StepLR"]


def _lambdas(optimizer: Optimizer, lr_lambda: Any) -> list[Callable[[int], float]]:
    if not isinstance(lr_lambda, (list, tuple)):
        return [lr_lambda] * len(optimizer.param_groups)
    if len(lr_lambda) != len(optimizer.param_groups):
        raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
    return list(lr_lambda)


class _LambdaState:
    """state_dict keeps a callable object's ``__dict__`` but never a plain function or lambda (torch's rule)."""

    lr_lambdas: list[Callable[[int], float]]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer; ``lr_lambdas`` holds each callable object's ``__dict__``
        (``None`` for functions and lambdas, which are not saved)."""
        sd = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        sd["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
                            for fn in self.lr_lambdas]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes and each callable object's ``__dict__`` (the caller's dict is unchanged)."""
        lambdas = state_dict["lr_lambdas"]
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "lr_lambdas"})
        for idx, saved in enumerate(lambdas):
            if saved is not None:
                self.lr_lambdas[idx].__dict__.update(saved)


class LambdaLR(_LambdaState, LRScheduler):
    """lr_t = base_lr · λ(t), one λ for all groups or one per group.

    Args:
        optimizer: the wrapped optimizer.
        lr_lambda (callable or list): ``epoch -> factor``, or one such function per param group.
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int, i: int = 0) -> float:
        return self.lr_lambdas[i](t)

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return self._closed(t, i)


class MultiplicativeLR(_LambdaState, LRScheduler):
    """lr_t = lr_{t-1} · λ(t), so lr_t = base_lr · ∏_{k=1..t} λ(k).

    Args:
        optimizer: the wrapped optimizer.
        lr_lambda (callable or list): ``epoch -> factor``, or one such function per param group.
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return lr if initial else lr * self.lr_lambdas[i](t)

    def _closed(self, t: int, i: int) -> Any:
        lr = self.base_lrs[i]  # the product taken in the stepped order, so it equals the stepped lr bitwise
        for k in range(1, t + 1):
            lr = lr * self.lr_lambdas[i](k)
        return lr

    def factor(self, t: int, i: int = 0) -> float:
        return math.prod(self.lr_lambdas[i](k) for k in range(1, t + 1))


class StepLR(ClosedFormStep, LRScheduler):
    """lr_t = base_lr · γ^⌊t / step_size⌋: decay by ``gamma`` every ``step_size`` steps.

    Args:
        optimizer: the wrapped optimizer.
        step_size (int): period of the decay.
        gamma (float): multiplicative decay factor (default: 0.1).
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int, i: int = 0) -> float:
        return self.gamma ** (t // self.step_size)

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return lr * self.gamma if t != 0 and t % self.step_size == 0 else lr


class MultiStepLR(ClosedFormStep, LRScheduler):
    """lr_t = base_lr · γ^(number of milestones ≤ t); a milestone listed n times decays by γⁿ.

    Args:
        optimizer: the wrapped optimizer.
        milestones (iterable of int): steps at which to decay (kept as a Counter, like torch).
        gamma (float): multiplicative decay factor (default: 0.1).
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int, i: int = 0) -> float:
        """γ^(milestones in [0, t]): stepping never reaches a negative milestone."""
        return self.gamma ** bisect_right(sorted(m for m in self.milestones.elements() if m >= 0), t)

    def _torch_closed_form(self, t: int) -> list[Any]:
        n = bisect_right(sorted(self.milestones.elements()), t)
        return [base * self.gamma**n for base in self.base_lrs]

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return lr * self.gamma ** self.milestones[t] if t in self.milestones else lr


class ConstantLR(ClosedFormStep, LRScheduler):
    """lr_t = base_lr · (factor if t < total_iters else 1).

    Args:
        optimizer: the wrapped optimizer.
        factor (float): multiplier in [0, 1] until ``total_iters`` (default: 1/3).
        total_iters (int): number of steps scaled by ``factor`` (default: 5).
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor  # type: ignore[assignment]  # torch's name; shadows factor(), so _closed is given
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def _closed(self, t: int, i: int) -> Any:
        # stepping never undoes the factor when total_iters <= 0; otherwise torch's closed form, bit for bit
        return self.base_lrs[i] * (self.factor + (t >= self.total_iters > 0) * (1 - self.factor))

    def _torch_closed_form(self, t: int) -> list[Any]:
        return [base * (self.factor + (t >= self.total_iters) * (1 - self.factor)) for base in self.base_lrs]

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        if t == 0:
            return lr * self.factor
        return lr * (1.0 / self.factor) if t == self.total_iters else lr


class LinearLR(ClosedFormStep, LRScheduler):
    """lr_t = base_lr · (s + (e - s) · min(t, T) / T): from ``start_factor`` s to ``end_factor`` e over T steps.

    Args:
        optimizer: the wrapped optimizer.
        start_factor (float): multiplier at step 0, in (0, 1] (default: 1/3).
        end_factor (float): multiplier from step ``total_iters`` on, in [0, 1] (default: 1.0).
        total_iters (int): length T of the ramp (default: 5).
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int, i: int = 0) -> float:
        s, e = self.start_factor, self.end_factor
        if self.total_iters <= 0:  # stepping applies start_factor once and never moves on
            return s
        return s + (e - s) * min(self.total_iters, t) / self.total_iters

    def _torch_closed_form(self, t: int) -> list[Any]:
        s, e, T = self.start_factor, self.end_factor, self.total_iters
        return [base * (s + (e - s) * min(T, t) / T) for base in self.base_lrs]

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        if t == 0:
            return lr * self.start_factor
        if initial or t > self.total_iters:
            return lr
        d = self.end_factor - self.start_factor
        return lr * (1.0 + d / (self.total_iters * self.start_factor + (t - 1) * d))


class ExponentialLR(ClosedFormStep, LRScheduler):
    """lr_t = base_lr · γᵗ (stepped as lr_t = lr_{t-1} · γ).

    Args:
        optimizer: the wrapped optimizer.
        gamma (float): multiplicative decay per step.
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int, i: int = 0) -> float:
        return self.gamma**t

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return lr if initial else lr * self.gamma


class PolynomialLR(ClosedFormStep, LRScheduler):
    """lr_t = base_lr · (1 - min(t, T) / T)^power.

    Args:
        optimizer: the wrapped optimizer.
        total_iters (int): steps T until the lr reaches 0 (default: 5).
        power (float): the polynomial's power (default: 1.0).
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> None:
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int, i: int = 0) -> float:
        if self.total_iters <= 0:  # stepping never changes the lr
            return 1.0
        return (1.0 - min(self.total_iters, t) / self.total_iters) ** self.power

    def _torch_closed_form(self, t: int) -> list[Any]:
        T = self.total_iters
        return [base * (1.0 - min(T, t) / T) ** self.power for base in self.base_lrs]

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        if initial or t > self.total_iters:
            return lr
        T = self.total_iters
        return lr * ((1.0 - t / T) / (1.0 - (t - 1) / T)) ** self.power


class CosineAnnealingLR(ClosedFormStep, LRScheduler):
    """lr_t = η_min + (base_lr - η_min) · (1 + cos(π t / T_max)) / 2 (periodic past T_max, like torch).

    Stepped recursively, as torch does: lr_t = η + (lr_{t-1} - η)·(1 + cos(πt/T))/(1 + cos(π(t-1)/T)),
    restarting additively one step after each trough. See docs/sched.md for how far that drifts.

    Args:
        optimizer: the wrapped optimizer.
        T_max (int): half-period in steps.
        eta_min (float): minimum lr (default: 0.0).
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int, i: int = 0) -> float:
        return (1 + math.cos(math.pi * t / self.T_max)) / 2

    def _floor(self, i: int) -> float:
        return self.eta_min

    def _closed(self, t: int, i: int) -> Any:
        # torch's closed form and op order (step(epoch) uses it): η + (base - η)·(1 + cos)/2
        return self.eta_min + (self.base_lrs[i] - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        eta, T, base = self.eta_min, self.T_max, self.base_lrs[i]
        if initial:
            return lr
        if first and t > 0:
            return eta + (base - eta) * (1 + math.cos(t * math.pi / T)) / 2
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (base - eta) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta) + eta
