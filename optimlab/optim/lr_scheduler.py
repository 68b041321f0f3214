"""Learning-rate schedulers mirroring ``torch.optim.lr_scheduler``.

Every scheduler subclasses torch's :class:`~torch.optim.lr_scheduler.LRScheduler`, so it works on any
``torch.optim.Optimizer`` (torch's or optimlab's) and its ``state_dict`` is torch's.

Attributes: ``optimizer`` (the wrapped optimizer), ``base_lrs`` (each group's ``initial_lr``),
``last_epoch`` (steps taken; -1 before the first). Methods: ``step(epoch=None)`` (the epoch argument is
deprecated, with torch's warning, and switches to the closed form), ``get_last_lr()``, ``get_lr()`` (the
recursive "chainable" form torch uses inside ``step``), ``print_lr``, ``state_dict``/``load_state_dict``.
Beyond torch: ``lr_at(step)``, the closed form as a pure function of the step.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler as _TorchLRScheduler

__all__ = ["LRScheduler", "StepLR"]


def _group_lrs(optimizer: Optimizer) -> list[Any]:
    return [g["lr"].clone() if isinstance(g["lr"], Tensor) else g["lr"] for g in optimizer.param_groups]


class LRScheduler(_TorchLRScheduler):
    """Base of optimlab's schedulers: torch's base plus ``lr_at`` and ``print_lr``.

    A subclass defines :meth:`lr_at` (closed form) and, to stay bit-for-bit with torch's stepped
    sequence, :meth:`get_lr` (the recursive form torch applies at each step).
    """

    def _warn_if_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                          UserWarning, stacklevel=3)

    def lr_at(self, step: int) -> list[float]:
        """The lr of every param group after ``step`` scheduler steps, from the closed form; changes
        no state."""
        raise NotImplementedError(f"{type(self).__name__} has no closed form")

    def _get_closed_form_lr(self) -> list[float]:
        return self.lr_at(self.last_epoch)

    def print_lr(self, is_verbose: bool, group: int, lr: float, epoch: int | None = None) -> None:
        """Print the lr of one param group (kept from torch's older API)."""
        if is_verbose:
            where = ""
            if epoch is not None:
                where = f"epoch {epoch:5d}: " if isinstance(epoch, int) else f"epoch {epoch:.2f}: "
            print(f"{where}adjusting learning rate of group {group} to {lr:.4e}.")


class StepLR(LRScheduler):
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

    def get_lr(self) -> list[float | Tensor]:
        """Recursive form: multiply the current lr by γ at every non-zero multiple of step_size."""
        self._warn_if_outside_step()
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _group_lrs(self.optimizer)
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def lr_at(self, step: int) -> list[float]:
        return [base * self.gamma ** (step // self.step_size) for base in self.base_lrs]
