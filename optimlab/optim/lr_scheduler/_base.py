"""The scheduler base shared by every optimlab scheduler, the family-wide ``fixed`` switch and the
small helpers that read and write param groups without aliasing tensors."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler as _TorchLRScheduler

__all__ = ["LRScheduler", "fixed", "is_fixed", "set_fixed"]

EPOCH_DEPRECATION = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where possible. "
    "Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch is different from "
    "None, the closed form is used instead of the new chainable form, where available."
)

_FIXED = False


def set_fixed(flag: bool = True) -> bool:
    """Switch the whole family between torch's behaviour (``False``, the default) and corrected
    behaviour for torch's known scheduler bugs (``True``); returns the previous setting.

    Corrected: a SequentialLR/ChainedScheduler nested in a SequentialLR no longer advances at
    construction nor fails at its milestone (pytorch issue 196243); OneCycleLR past ``total_steps``
    holds its final lr/momentum instead of raising; CosineAnnealingWarmRestarts ``step(epoch)`` with
    ``T_mult > 1`` finds the cycle exactly (torch's floating ``log`` misplaces cycle boundaries).
    """
    global _FIXED
    old, _FIXED = _FIXED, bool(flag)
    return old


def is_fixed() -> bool:
    """Whether the corrected behaviour (see :func:`set_fixed`) is on."""
    return _FIXED


@contextlib.contextmanager
def fixed(flag: bool = True) -> Iterator[None]:
    """Context manager form of :func:`set_fixed`: ``with fixed(): ...`` restores the old setting on exit."""
    old = set_fixed(flag)
    try:
        yield
    finally:
        set_fixed(old)


def group_vals(optimizer: Optimizer, key: str) -> list[Any]:
    """``group[key]`` of every param group, tensors cloned so callers never alias them."""
    return [g[key].clone() if isinstance(g[key], Tensor) else g[key] for g in optimizer.param_groups]


def set_group_val(group: dict[str, Any], key: str, val: Any) -> None:
    """Write ``val`` into ``group[key]``; a tensor hyperparameter is filled in place, never replaced."""
    if isinstance(group[key], Tensor):
        group[key].fill_(val.squeeze() if isinstance(val, Tensor) and val.dim() else val)
    else:
        group[key] = val


def per_group(name: str, optimizer: Optimizer, value: Any) -> list[Any]:
    """A scalar broadcast to every param group, or a list/tuple checked to have one entry per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. {name} has "
                             f"{len(value)} values, param_groups has {len(optimizer.param_groups)}.")
    else:
        value = [value] * len(optimizer.param_groups)
    return [v.clone() if isinstance(v, Tensor) else v for v in value]


def set_momentum(group: dict[str, Any], value: Any, use_beta1: bool) -> None:
    """Set SGD-style ``momentum`` or Adam-style ``betas[0]`` of one param group."""
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


class LRScheduler(_TorchLRScheduler):
    """Base of optimlab's schedulers: torch's :class:`~torch.optim.lr_scheduler.LRScheduler` plus the
    closed form.

    Attributes (torch's): ``optimizer`` (the wrapped optimizer), ``base_lrs`` (each group's
    ``initial_lr``, recorded at construction), ``last_epoch`` (steps taken; -1 before the initial step
    the constructor performs, so 0 right after construction).

    Methods (torch's): ``step(epoch=None)`` advances one step (the ``epoch`` argument is deprecated with
    torch's warning and switches to the closed form where torch has one; a ``UserWarning`` is raised
    when it is first called before ``optimizer.step()``), ``get_last_lr()`` the lrs the last step set,
    ``get_lr()`` the recursive ("chainable") form ``step`` applies, ``print_lr`` prints one group's lr,
    ``state_dict()`` every attribute but the optimizer, ``load_state_dict(sd)`` restores them. State dicts
    are interchangeable with torch's scheduler of the same name.

    Beyond torch: :meth:`lr_at` (closed form, a pure function of the step). A subclass gives
    :meth:`factor` (``lr_t = floor + (base_lr - floor) * factor(t)``) and :meth:`_advance`, one group's
    step of torch's recursive form on the current lr, which :meth:`get_lr` applies and composite
    schedulers can replay without touching state.
    """

    def _warn_if_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                          UserWarning, stacklevel=3)

    # -- torch's recursive form -------------------------------------------------------------------
    def get_lr(self) -> list[Any]:
        """The next lr of every param group, by torch's recursive form applied to ``group["lr"]``."""
        self._warn_if_outside_step()
        first = getattr(self, "_step_count", 0) == 1
        return [self._advance(g["lr"], self.last_epoch, i, self._is_initial, first)
                for i, g in enumerate(self.optimizer.param_groups)]

    def _advance(self, lr: Any, t: int, i: int, initial: bool = False, first: bool = False) -> Any:
        """One step of torch's recursive form for group ``i``: the lr at step ``t`` given the current
        ``lr``; ``initial`` marks the constructor's step, ``first`` the first ``step()`` call."""
        raise NotImplementedError(f"{type(self).__name__} has no recursive form")

    # -- the closed form ------------------------------------------------------------------------
    def factor(self, t: int, i: int = 0) -> float:
        """Multiplier of the base lr at step ``t`` for group ``i``: ``lr_t = floor + (base - floor)·factor``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed form")

    def _floor(self, i: int) -> float:
        return 0.0

    def _closed(self, t: int, i: int) -> Any:
        floor = self._floor(i)
        if floor == 0:
            return self.base_lrs[i] * self.factor(t, i)
        return floor + (self.base_lrs[i] - floor) * self.factor(t, i)

    def lr_at(self, step: int) -> list[Any]:
        """The lr of every param group after ``step`` scheduler steps (``step = last_epoch``), from the
        closed form; a pure function: no state changes."""
        return [self._closed(step, i) for i in range(len(self.optimizer.param_groups))]

    def print_lr(self, is_verbose: bool, group: int, lr: float, epoch: int | None = None) -> None:
        """Print the lr of one param group when ``is_verbose`` (kept from torch's older API)."""
        if is_verbose:
            where = ""
            if epoch is not None:
                where = f"epoch {epoch:5d}: " if isinstance(epoch, int) else f"epoch {epoch:.2f}: "
            print(f"{where}adjusting learning rate of group {group} to {lr:.4e}.")


class ClosedFormStep:
    """Mixin for the schedulers whose torch twin has ``_get_closed_form_lr``: ``step(epoch)`` then uses
    torch's closed form (same formula, same rounding): :meth:`LRScheduler.lr_at`, unless a class gives
    ``_torch_closed_form`` because torch's formula disagrees with its own stepping on degenerate
    arguments (e.g. ``total_iters=0``), where ``lr_at`` follows the stepping."""

    def _torch_closed_form(self, t: int) -> list[Any]:
        return self.lr_at(t)  # type: ignore[attr-defined]

    def _get_closed_form_lr(self) -> list[Any]:
        return self._torch_closed_form(self.last_epoch)  # type: ignore[attr-defined]
