"""Schedulers made of schedulers: SequentialLR (one after another, switching at milestones) and
ChainedScheduler (all of them every step).

Torch's behaviour is reproduced by default, including pytorch issue 196243: a SequentialLR or
ChainedScheduler nested as the first child of a SequentialLR is advanced one step by the outer
constructor, and a nested SequentialLR later in the sequence raises at its milestone. With
:func:`~optimlab.optim.lr_scheduler.set_fixed` on, a nested composite is restarted instead, so
wrapping never changes a schedule.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer

from . import _base
from ._base import LRScheduler, group_vals, set_group_val

__all__ = ["ChainedScheduler", "SequentialLR"]


def _check_children(kind: str, optimizer: Optimizer, schedulers: Sequence[Any]) -> None:
    for i, s in enumerate(schedulers):
        if not hasattr(s, "optimizer"):
            raise TypeError(f"{kind} at index {i} should have `optimizer` as its attribute.")
        if any(c.__name__ == "ReduceLROnPlateau" for c in type(s).__mro__):  # ours or torch's
            raise ValueError(f"{kind} does not support `ReduceLROnPlateau` scheduler as it requires additional "
                             f"kwargs to be specified when calling `step`, but got one at index {i} in the given "
                             "schedulers sequence.")
        if optimizer != s.optimizer:
            raise ValueError(f"{kind} expects all schedulers to belong to the same optimizer, but got scheduler "
                             f"{type(s).__name__} at index {i} has {s.optimizer}, which is different from "
                             f"{type(optimizer).__name__}.")


def _is_composite(s: Any) -> bool:
    return hasattr(s, "_schedulers")


def _reset_lrs(optimizer: Optimizer) -> None:
    for g in optimizer.param_groups:
        set_group_val(g, "lr", g["initial_lr"])


def _restart(s: Any) -> None:
    """(fixed mode) Put a scheduler back in the state its constructor leaves, lrs included."""
    if hasattr(s, "_milestones"):  # a SequentialLR: its own epoch 0, first child started
        s.last_epoch = 0
        _reset_lrs(s.optimizer)
        _start_first(s._schedulers[0])
        s._last_lr = s._schedulers[0].get_last_lr()
    elif _is_composite(s):  # a ChainedScheduler: every child started, in order, from the initial lrs
        _reset_lrs(s.optimizer)
        for c in s._schedulers:
            _start_first(c)
        s._last_lr = group_vals(s.optimizer, "lr")
    else:
        s.last_epoch = -1
        s._initial_step()


def _start_first(s: Any) -> None:
    if _is_composite(s):
        _restart(s)
    else:
        s.last_epoch = -1
        s._initial_step()


class _Composite(LRScheduler):
    """State shared by the schedulers made of child schedulers (torch's state_dict layout)."""

    _schedulers: list[Any]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer, with each child's own state dict under ``_schedulers``."""
        sd = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        sd["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes and every child's state (the caller's dict is unchanged)."""
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "_schedulers"})
        for idx, sd in enumerate(state_dict["_schedulers"]):
            self._schedulers[idx].load_state_dict(sd)


class SequentialLR(_Composite):
    """Run ``schedulers[k]`` between ``milestones[k-1]`` and ``milestones[k]``; each later scheduler
    starts from its own step 0 (its closed form at 0) when its milestone is reached.

    Args:
        optimizer: the wrapped optimizer (every scheduler must wrap this one).
        schedulers (list): the schedulers, in order (not ReduceLROnPlateau).
        milestones (list of int): the steps where the next scheduler takes over (one fewer than schedulers).
        last_epoch (int): index of the last step (default: -1).

    ``lr_at(t)`` is ``schedulers[k].lr_at(t - milestones[k-1])``: the corrected schedule when a
    composite is nested first (torch shifts it; see :func:`~optimlab.optim.lr_scheduler.set_fixed`).
    """

    def __init__(self, optimizer: Optimizer, schedulers: list[Any], milestones: list[int],
                 last_epoch: int = -1) -> None:
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler, but got no scheduler.")
        _check_children(type(self).__name__, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("Sequential Schedulers expects number of schedulers provided to be one more than the "
                             f"number of milestone points, but got number of schedulers {len(schedulers)} and the "
                             f"number of milestones to be equal to {len(milestones)}")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        _reset_lrs(optimizer)
        idx = bisect_right(self._milestones, 0)
        if _base.is_fixed():
            for i, s in enumerate(schedulers):
                if not _is_composite(s) and i != idx:
                    self.recursive_undo(s)
            if _is_composite(schedulers[idx]):
                _restart(schedulers[idx])
            else:
                self.recursive_undo(schedulers[idx])
                schedulers[idx]._initial_step()
        else:
            self.recursive_undo()  # torch: undo every leaf's initial step, nested ones included
            self._schedulers[idx]._initial_step()
        self._last_lr = schedulers[idx].get_last_lr()

    def recursive_undo(self, sched: Any = None) -> None:
        """Take back the initial step of every (nested) child scheduler: ``last_epoch -= 1`` on each leaf."""
        s = self if sched is None else sched
        if _is_composite(s):
            for c in s._schedulers:
                self.recursive_undo(c)
        elif hasattr(s, "last_epoch"):
            s.last_epoch -= 1

    def step(self) -> None:  # type: ignore[override]
        """Advance one step: the active child steps, or restarts at its milestone."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        s = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            if _base.is_fixed() and _is_composite(s):
                _restart(s)
            else:
                s._update_lr(0)
        else:
            s.step()
        self._last_lr = s.get_last_lr()

    def lr_at(self, step: int) -> list[Any]:
        idx = bisect_right(self._milestones, step)
        start = self._milestones[idx - 1] if idx > 0 else 0
        return self._schedulers[idx].lr_at(step - start)

    def momentum_at(self, step: int) -> list[Any]:
        """Momentum (or beta1) of every group after ``step`` steps, from the active child's closed form."""
        idx = bisect_right(self._milestones, step)
        start = self._milestones[idx - 1] if idx > 0 else 0
        return self._schedulers[idx].momentum_at(step - start)


class ChainedScheduler(_Composite):
    """Step every scheduler in ``schedulers`` at each ``step()``, in order; their recursive forms compose.

    Like torch's, it calls no base constructor: it has no ``last_epoch`` or ``base_lrs`` of its own.

    Args:
        schedulers (sequence): the chained schedulers (not ReduceLROnPlateau).
        optimizer (Optimizer, optional): the wrapped optimizer (default: the first scheduler's).

    ``lr_at(t)`` replays the children's recursive steps from the groups' ``initial_lr`` (a pure function,
    O(t · len(schedulers)), equal to the stepped sequence bit for bit for children built fresh).
    """

    def __init__(self, schedulers: Sequence[Any], optimizer: Optimizer | None = None) -> None:
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler to be chained, but got no "
                             "scheduler.")
        optimizer = optimizer or schedulers[0].optimizer
        _check_children(type(self).__name__, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = group_vals(self._schedulers[-1].optimizer, "lr")

    def step(self) -> None:  # type: ignore[override]
        """Step every child, in order."""
        for s in self._schedulers:
            s.step()
        self._last_lr = group_vals(self._schedulers[-1].optimizer, "lr")

    def lr_at(self, step: int) -> list[Any]:
        out = []
        for i, g in enumerate(self.optimizer.param_groups):
            lr = g["initial_lr"]
            for s in self._schedulers:
                lr = s._advance(lr, 0, i, True, True)
            for t in range(1, step + 1):
                for s in self._schedulers:
                    lr = s._advance(lr, t, i, False, False)
            out.append(lr)
        return out
