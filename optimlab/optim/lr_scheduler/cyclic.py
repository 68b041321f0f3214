"""Schedulers that overwrite the lr with a closed form at every step: CyclicLR, OneCycleLR and
CosineAnnealingWarmRestarts (torch's ``get_lr`` is already closed-form here, so ``lr_at`` is the very
same expression and agrees with the stepped sequence bit for bit). CyclicLR and OneCycleLR also cycle
momentum (SGD ``momentum`` or Adam ``betas[0]``) inversely to the lr: ``momentum_at``.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from torch.optim import Optimizer

from . import _base
from ._base import LRScheduler, group_vals, per_group, set_group_val, set_momentum

__all__ = ["CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR"]


def _check_momentum(optimizer: Optimizer) -> bool:
    """Whether the optimizer has ``betas`` (else ``momentum``); raise if it has neither."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
    return "betas" in optimizer.defaults


def _init_momentum(optimizer: Optimizer, base: list[Any], top: list[Any], use_beta1: bool) -> None:
    """Start every group at its max momentum and record both bounds in the group (torch's keys)."""
    for b, m, g in zip(base, top, optimizer.param_groups, strict=True):
        set_momentum(g, m, use_beta1)
        g["max_momentum"] = m
        g["base_momentum"] = b


class CyclicLR(LRScheduler):
    """Cyclical learning rate (Smith 2017): within a cycle of ``step_size_up + step_size_down`` steps,
    with x the position in the cycle and r = up / (up + down),

    h = x / r (rising) or (x - 1) / (r - 1) (falling);  lr = base_lr + (max_lr - base_lr) · h · s,
    momentum = max_m - (max_m - base_m) · h · s,

    where s = scale_fn(cycle) (scale_mode "cycle") or scale_fn(t) ("iterations"): 1 (triangular),
    1/2^(cycle-1) (triangular2), γᵗ (exp_range), or a custom ``scale_fn``.

    Args:
        optimizer: the wrapped optimizer.
        base_lr (float or list): lower lr bound per group.
        max_lr (float or list): upper lr bound per group.
        step_size_up (int): steps of the rising half (default: 2000).
        step_size_down (int, optional): steps of the falling half (default: step_size_up).
        mode (str): "triangular", "triangular2" or "exp_range"; ignored with ``scale_fn`` (default: "triangular").
        gamma (float): γ of exp_range (default: 1.0).
        scale_fn (callable, optional): custom amplitude scaling, ``0 <= scale_fn(x) <= 1``.
        scale_mode (str): "cycle" or "iterations", for a custom ``scale_fn`` (default: "cycle").
        cycle_momentum (bool): cycle momentum / beta1 inversely (default: True).
        base_momentum (float or list): lower momentum bound (default: 0.8).
        max_momentum (float or list): upper momentum bound (default: 0.9).
        last_epoch (int): index of the last batch, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, base_lr: float | list[float], max_lr: float | list[float],
                 step_size_up: int = 2000, step_size_down: int | None = None,
                 mode: Literal["triangular", "triangular2", "exp_range"] = "triangular", gamma: float = 1.0,
                 scale_fn: Callable[[float], float] | None = None,
                 scale_mode: Literal["cycle", "iterations"] = "cycle", cycle_momentum: bool = True,
                 base_momentum: float = 0.8, max_momentum: float = 0.9, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        base_lrs = per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, g in zip(base_lrs, optimizer.param_groups, strict=True):
                set_group_val(g, "lr", lr)
        self.max_lrs = per_group("max_lr", optimizer, max_lr)
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _check_momentum(optimizer)
            self.base_momentums = per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = per_group("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                _init_momentum(optimizer, self.base_momentums, self.max_momentums, self.use_beta1)
        super().__init__(optimizer, last_epoch)  # torch's initial step still sees base_lrs from initial_lr
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        if self._scale_fn_custom is not None:
            return
        if self.mode == "triangular":
            self._scale_fn_ref = self._triangular_scale_fn
            self.scale_mode = "cycle"
        elif self.mode == "triangular2":
            self._scale_fn_ref = self._triangular2_scale_fn
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self._scale_fn_ref = partial(self._exp_range_scale_fn, self.gamma)
            self.scale_mode = "iterations"

    def scale_fn(self, x: float) -> float:
        """The amplitude scaling at ``x`` (cycle number or iteration, per ``scale_mode``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        return self._scale_fn_ref(x)

    @staticmethod
    def _triangular_scale_fn(x: float) -> float:
        return 1.0

    @staticmethod
    def _triangular2_scale_fn(x: float) -> float:
        return 1 / (2.0 ** (x - 1))

    @staticmethod
    def _exp_range_scale_fn(gamma: float, x: float) -> float:
        return gamma**x

    def _phase(self, t: int) -> tuple[float, float]:
        """(h, s): the triangle height in [0, 1] and the amplitude scaling at step ``t``."""
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        h = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        return h, self.scale_fn(cycle if self.scale_mode == "cycle" else t)

    def factor(self, t: int, i: int = 0) -> float:
        h, s = self._phase(t)
        return h * s

    def lr_at(self, step: int) -> list[Any]:
        return self._lrs(*self._phase(step))

    def _lrs(self, h: float, s: float) -> list[Any]:
        return [lo + (hi - lo) * h * s for lo, hi in zip(self.base_lrs, self.max_lrs, strict=True)]

    def momentum_at(self, step: int) -> list[Any]:
        """Momentum (SGD) or beta1 (Adam) of every group after ``step`` steps."""
        if not self.cycle_momentum:
            return [g["betas"][0] if "betas" in g else g.get("momentum") for g in self.optimizer.param_groups]
        return self._momenta(*self._phase(step))

    def _momenta(self, h: float, s: float) -> list[Any]:
        return [hi - (hi - lo) * h * s for lo, hi in zip(self.base_momentums, self.max_momentums, strict=True)]

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return self.lr_at(t)[i]

    def get_lr(self) -> list[Any]:
        """The lrs at ``last_epoch`` (closed form); also sets each group's momentum / beta1."""
        self._warn_if_outside_step()
        phase = self._phase(self.last_epoch)
        if self.cycle_momentum:
            for g, m in zip(self.optimizer.param_groups, self._momenta(*phase), strict=True):
                set_momentum(g, m, self.use_beta1)
        return self._lrs(*phase)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer and the built-in scale function; a custom ``scale_fn`` is kept
        only as a callable object's ``__dict__`` (never a function or lambda)."""
        sd = super().state_dict()
        sd.pop("_scale_fn_ref", None)
        fn = sd.pop("_scale_fn_custom")
        sd["_scale_fn_custom"] = None if fn is None or isinstance(fn, types.FunctionType) else fn.__dict__.copy()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes (and a callable ``scale_fn``'s ``__dict__``); the caller's dict is unchanged."""
        fn = state_dict["_scale_fn_custom"]
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "_scale_fn_custom"})
        if fn is not None:
            self._scale_fn_custom.__dict__.update(fn)
        self._init_scale_fn()


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topsin 2017): anneal from max_lr/div_factor up to max_lr over the first
    ``pct_start`` of ``total_steps``, then down to initial_lr/final_div_factor (two phases, fastai's form),
    or back to the initial lr and then down (``three_phase``). Momentum moves inversely.

    Within a phase from step a to b: ``lr = anneal(start, end, (t - a) / (b - a))`` with
    cos: ``end + (start - end)/2 · (1 + cos(π p))``, linear: ``(end - start)·p + start``.

    Args:
        optimizer: the wrapped optimizer.
        max_lr (float or list): peak lr per group.
        total_steps (int, optional): steps in the cycle; else ``epochs * steps_per_epoch``.
        epochs (int, optional), steps_per_epoch (int, optional): used when ``total_steps`` is None.
        pct_start (float): fraction of the cycle spent rising (default: 0.3).
        anneal_strategy (str): "cos" or "linear" (default: "cos").
        cycle_momentum (bool): cycle momentum / beta1 inversely (default: True).
        base_momentum (float or list): lowest momentum, at the peak lr (default: 0.85).
        max_momentum (float or list): highest momentum (default: 0.95).
        div_factor (float): initial_lr = max_lr / div_factor (default: 25).
        final_div_factor (float): min_lr = initial_lr / final_div_factor (default: 1e4).
        three_phase (bool): use the three-phase schedule (default: False).
        last_epoch (int): index of the last batch, to resume (default: -1).

    Stepping past ``total_steps`` raises ValueError, as in torch; with
    :func:`~optimlab.optim.lr_scheduler.set_fixed` on, the final lr and momentum are held instead.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | list[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: Literal["cos", "linear"] = "cos", cycle_momentum: bool = True,
                 base_momentum: float | list[float] = 0.85, max_momentum: float | list[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        T = self.total_steps
        up = float(pct_start * T) - 1
        if three_phase:
            self._schedule_phases = [
                _phase(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(float(2 * pct_start * T) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                _phase(T - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._schedule_phases = [
                _phase(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(T - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._anneal_func_type = anneal_strategy
        max_lrs = per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for m, g in zip(max_lrs, optimizer.param_groups, strict=True):
                g["initial_lr"] = m / div_factor
                g["max_lr"] = m
                g["min_lr"] = g["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _check_momentum(optimizer)
            top = per_group("max_momentum", optimizer, max_momentum)
            base = per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                _init_momentum(optimizer, base, top, self.use_beta1)
        super().__init__(optimizer, last_epoch)

    def _anneal_func(self, start: Any, end: Any, pct: float) -> Any:
        kind = getattr(self, "_anneal_func_type", None)
        if kind is None:
            return self.anneal_func(start, end, pct)  # type: ignore[attr-defined]  # old state dicts
        if kind == "cos":
            return self._annealing_cos(start, end, pct)
        if kind == "linear":
            return self._annealing_linear(start, end, pct)
        raise ValueError(f"Unknown _anneal_func_type: {kind}")

    @staticmethod
    def _annealing_cos(start: Any, end: Any, pct: float) -> Any:
        """end + (start - end)/2 · (1 + cos(π·pct))."""
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    @staticmethod
    def _annealing_linear(start: Any, end: Any, pct: float) -> Any:
        """(end - start)·pct + start."""
        return (end - start) * pct + start

    def _values(self, t: int, group: dict[str, Any]) -> tuple[Any, Any]:
        """(lr, momentum) of one group at step ``t``."""
        if t > self.total_steps and not _base.is_fixed():
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is {self.total_steps}")
        if _base.is_fixed():
            t = min(t, self.total_steps - 1)
        start = 0.0
        last = len(self._schedule_phases) - 1
        for k, ph in enumerate(self._schedule_phases):
            end = ph["end_step"]
            if t <= end or k == last:
                pct = (t - start) / (end - start)
                lr = self._anneal_func(group[ph["start_lr"]], group[ph["end_lr"]], pct)
                mom = None
                if self.cycle_momentum:
                    mom = self._anneal_func(group[ph["start_momentum"]], group[ph["end_momentum"]], pct)
                return lr, mom
            start = end
        raise AssertionError("unreachable")

    def lr_at(self, step: int) -> list[Any]:
        return [self._values(step, g)[0] for g in self.optimizer.param_groups]

    def momentum_at(self, step: int) -> list[Any]:
        """Momentum (SGD) or beta1 (Adam) of every group after ``step`` steps."""
        if not self.cycle_momentum:
            return [g["betas"][0] if "betas" in g else g.get("momentum") for g in self.optimizer.param_groups]
        return [self._values(step, g)[1] for g in self.optimizer.param_groups]

    def factor(self, t: int, i: int = 0) -> float:
        g = self.optimizer.param_groups[i]
        return self._values(t, g)[0] / g["max_lr"]

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return self._values(t, self.optimizer.param_groups[i])[0]

    def get_lr(self) -> list[Any]:
        """The lrs at ``last_epoch`` (closed form); also sets each group's momentum / beta1."""
        self._warn_if_outside_step()
        lrs = []
        for g in self.optimizer.param_groups:
            lr, mom = self._values(self.last_epoch, g)
            lrs.append(lr)
            if self.cycle_momentum:
                set_momentum(g, mom, self.use_beta1)
        return lrs


def _phase(end_step: float, start_lr: str, end_lr: str, start_momentum: str, end_momentum: str) -> dict[str, Any]:
    return {"end_step": end_step, "start_lr": start_lr, "end_lr": end_lr, "start_momentum": start_momentum,
            "end_momentum": end_momentum}


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov & Hutter 2017): lr = η_min + (base_lr - η_min)·(1 + cos(π T_cur / T_i))/2, where
    T_cur counts steps since the last restart and T_i = T_0·T_multⁱ is the length of the i-th cycle.

    ``step(epoch)`` accepts fractional epochs (e.g. ``epoch + batch / n_batches``), without the
    deprecation warning, like torch.

    Args:
        optimizer: the wrapped optimizer.
        T_0 (int): length of the first cycle, > 0.
        T_mult (int): growth of the cycle length after each restart, integer >= 1 (default: 1).
        eta_min (float): minimum lr (default: 0.0).
        last_epoch (int): index of the last step, to resume (default: -1).
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def _cycle(self, epoch: float) -> tuple[float, int]:
        """(T_cur, T_i) at ``epoch``: exact for integer epochs and in fixed mode; torch's ``log`` form
        for a fractional epoch otherwise."""
        T0, m = self.T_0, self.T_mult
        if epoch < T0:
            return epoch, T0
        if m == 1:
            return epoch % T0, T0
        if isinstance(epoch, int) or _base.is_fixed():
            start, Ti = 0, T0
            while epoch >= start + Ti:
                start, Ti = start + Ti, Ti * m
            return epoch - start, Ti
        n = int(math.log(epoch / T0 * (m - 1) + 1, m))
        return epoch - T0 * (m**n - 1) / (m - 1), T0 * m**n

    def factor(self, t: float, i: int = 0) -> float:
        T_cur, T_i = self._cycle(t)
        return (1 + math.cos(math.pi * T_cur / T_i)) / 2

    def _floor(self, i: int) -> float:
        return self.eta_min

    def _lr(self, T_cur: float, T_i: int) -> list[Any]:
        eta = self.eta_min
        return [eta + (base - eta) * (1 + math.cos(math.pi * T_cur / T_i)) / 2 for base in self.base_lrs]

    def lr_at(self, step: float) -> list[Any]:
        return self._lr(*self._cycle(step))

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        return self.lr_at(t)[i]

    def get_lr(self) -> list[Any]:
        """The lrs at the current ``T_cur`` / ``T_i``."""
        self._warn_if_outside_step()
        return self._lr(self.T_cur, self.T_i)

    def step(self, epoch: float | None = None) -> None:
        """Advance one step, or jump to ``epoch`` (may be fractional; must be >= 0)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    self.T_cur, self.T_i = self._cycle_from_epoch(epoch)
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for g, lr in zip(self.optimizer.param_groups, values, strict=True):
            set_group_val(g, "lr", lr)
        self._last_lr = group_vals(self.optimizer, "lr")

    def _cycle_from_epoch(self, epoch: float) -> tuple[float, int]:
        """torch's ``log`` form (it can misplace a cycle boundary by one cycle); exact in fixed mode."""
        if _base.is_fixed():
            return self._cycle(epoch)
        T0, m = self.T_0, self.T_mult
        n = int(math.log(epoch / T0 * (m - 1) + 1, m))
        return epoch - T0 * (m**n - 1) / (m - 1), T0 * m**n
