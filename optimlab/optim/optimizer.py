"""optimlab's ``Optimizer`` base: the bookkeeping every algorithm shares, done once.

It subclasses :class:`torch.optim.Optimizer`, so it *is* a torch optimizer to GradScaler, DDP/FSDP,
ZeroRedundancyOptimizer, Lightning and LR schedulers, and inherits torch's checkpoint format.

Attributes (as torch documents them):
    defaults (dict): the constructor's hyperparameters, used for groups that do not override them.
    state (defaultdict[Tensor, dict]): per-parameter state, keyed by parameter, with torch's state
        names (``"step"``, ``"exp_avg"``, ``"momentum_buffer"``, …) so checkpoints interchange.
    param_groups (list[dict]): each group's ``"params"`` and hyperparameters.
    step counter: algorithms that count steps keep ``state[p]["step"]`` like torch (a float32 0-d
        tensor, or on the parameter's device when ``capturable``/``fused``).

Methods:
    zero_grad(set_to_none=True): drop (or zero) every parameter's ``.grad``.
    step(closure=None): one update; a ``closure`` re-evaluates the loss and its value is returned.
    add_param_group(group): add a group, filling missing hyperparameters from ``defaults``.
    state_dict() / load_state_dict(sd): torch's format (params by index, or by name when the
        groups carry ``param_names``), loadable from and into torch's optimizers.
    register_step_pre_hook / register_step_post_hook / register_state_dict_*_hook /
    register_load_state_dict_*_hook: torch's hook API.

An algorithm subclass supplies its update *rule* once (a function over tensor-likes) and calls
:meth:`_apply` which runs it per tensor or, on the multi-tensor path, on :class:`~._many.Many` lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import _use_grad_for_differentiable

from ._many import Many

__all__ = ["Optimizer", "use_grad_for_differentiable", "validate"]

use_grad_for_differentiable = _use_grad_for_differentiable  # torch's base-class utility, re-exported


def validate(cond: bool, message: str, exc: type[Exception] = ValueError) -> None:
    """Raise ``exc(message)`` unless ``cond`` holds (hyperparameter checks, torch's exception types)."""
    if not cond:
        raise exc(message)


def _foreach_capable(t: Tensor) -> bool:
    return type(t) in (Tensor, torch.nn.Parameter) and t.device.type in ("cuda", "xpu", "mps", "mtia")


class Optimizer(torch.optim.Optimizer):
    """Base class of optimlab's optimizers (see the module docstring for attributes and methods)."""

    @staticmethod
    def _scalar(x: Any) -> Any:
        """A Python number from a 1-element tensor hyperparameter (unless it needs grad)."""
        if isinstance(x, Tensor) and not x.requires_grad:
            return x.item()
        return x

    @staticmethod
    def _use_foreach(group: dict[str, Any], params: Sequence[Tensor]) -> bool:
        """torch's default: the multi-tensor path when every parameter is a plain tensor on an
        accelerator and the step is not differentiable; ``foreach=True/False`` forces it."""
        foreach = group.get("foreach")
        if foreach is None:
            if group.get("differentiable", False) or group.get("fused"):
                return False
            return all(_foreach_capable(p) for p in params)
        return bool(foreach)

    @staticmethod
    def _grads(params: Sequence[Tensor], maximize: bool) -> list[Tensor]:
        """The gradients to descend on: ``-∇`` when maximizing."""
        return [(-p.grad if maximize else p.grad) for p in params]  # type: ignore[operator]

    def _apply(self, rule: Callable[..., Any], group: dict[str, Any], lists: Sequence[Sequence[Any]],
               **hyper: Any) -> None:
        """Run ``rule(*tensors, **hyper)`` on each parameter's tensors, or once per (device, dtype)
        bucket on :class:`Many` lists when the multi-tensor path is chosen."""
        if not lists or not lists[0]:
            return
        if self._use_foreach(group, lists[0]) and not any(t.is_sparse for t in lists[1] if t is not None):
            buckets = torch.optim.Optimizer._group_tensors_by_device_and_dtype([list(x) for x in lists])
            for (tensors, _indices) in buckets.values():
                rule(*(Many(t) for t in tensors), **hyper)
            return
        for tensors in zip(*lists, strict=True):
            rule(*tensors, **hyper)

    @staticmethod
    def _eval_closure(closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()
