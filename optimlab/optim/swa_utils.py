"""Stochastic weight averaging utilities mirroring ``torch.optim.swa_utils``.

* :class:`AveragedModel` keeps a running average of a model's parameters (and optionally buffers):
  SWA (equal weights, the default) or EMA, or any user ``avg_fn`` / ``multi_avg_fn``.
  Its ``state_dict`` has torch's keys (``n_averaged``, ``module.*``), so checkpoints interchange.
* The averaging functions: ``get_swa_avg_fn`` / ``get_swa_multi_avg_fn`` (W ← W + (w − W)/(n + 1)) and
  ``get_ema_avg_fn`` / ``get_ema_multi_avg_fn`` (W ← decay·W + (1 − decay)·w).
* :func:`update_bn` recomputes BatchNorm running statistics with one pass over a loader.
* :class:`SWALR` anneals each group's lr to ``swa_lr``.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn import Module
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer
from torch.utils._foreach_utils import _get_foreach_kernels_supported_devices

from .lr_scheduler._base import LRScheduler, per_group

__all__ = [
    "AveragedModel",
    "update_bn",
    "SWALR",
    "get_ema_multi_avg_fn",
    "get_swa_multi_avg_fn",
    "get_ema_avg_fn",
    "get_swa_avg_fn",
]

ParamList = Sequence[Tensor]
AvgFn = Callable[[Tensor, Tensor, "Tensor | int"], Tensor]
MultiAvgFn = Callable[[ParamList, ParamList, "Tensor | int"], None]


# --------------------------------------------------------------------------- averaging functions


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")


def _lerp_capable(t: Tensor) -> bool:
    """``torch._foreach_lerp_`` handles floating and complex tensors only."""
    return torch.is_floating_point(t) or torch.is_complex(t)


def get_ema_multi_avg_fn(decay: float = 0.999) -> MultiAvgFn:
    """In-place EMA over lists: W ← W + (1 − decay)·(w − W), i.e. decay·W + (1 − decay)·w.

    Raises ``ValueError`` unless 0 ≤ decay ≤ 1.
    """
    _check_decay(decay)

    @torch.no_grad()
    def ema_update(averaged: ParamList, current: ParamList, _num_averaged: Tensor | int) -> None:
        if _lerp_capable(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - decay)
            return
        for w_avg, w in zip(averaged, current, strict=True):  # integer tensors: no lerp kernel
            w_avg.copy_(w_avg * decay + w * (1 - decay))

    return ema_update


def get_swa_multi_avg_fn() -> MultiAvgFn:
    """In-place equal-weight average over lists: W ← W + (w − W)/(n + 1), n = models averaged so far."""

    @torch.no_grad()
    def swa_update(averaged: ParamList, current: ParamList, num_averaged: Tensor | int) -> None:
        if _lerp_capable(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 / (num_averaged + 1))
            return
        diffs = torch._foreach_sub(current, averaged)
        if isinstance(num_averaged, Tensor):
            torch._foreach_addcdiv_(averaged, diffs, [num_averaged + 1] * len(averaged))
        else:
            torch._foreach_add_(averaged, diffs, alpha=1.0 / (num_averaged + 1))

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> AvgFn:
    """EMA of one tensor, returned (not in place): decay·W + (1 − decay)·w.

    Raises ``ValueError`` unless 0 ≤ decay ≤ 1.
    """
    _check_decay(decay)

    @torch.no_grad()
    def ema_update(averaged: Tensor, current: Tensor, _num_averaged: Tensor | int) -> Tensor:
        return decay * averaged + (1 - decay) * current

    return ema_update


def get_swa_avg_fn() -> AvgFn:
    """Equal-weight average of one tensor, returned (not in place): W + (w − W)/(n + 1)."""

    @torch.no_grad()
    def swa_update(averaged: Tensor, current: Tensor, num_averaged: Tensor | int) -> Tensor:
        return averaged + (current - averaged) / (num_averaged + 1)

    return swa_update


# --------------------------------------------------------------------------- AveragedModel


def _by_device_and_dtype(pairs: Iterable[tuple[Tensor, Tensor]]) -> dict[tuple[torch.device, torch.dtype],
                                                                         tuple[list[Tensor], list[Tensor]]]:
    """Bucket (averaged, current) pairs by the averaged tensor's device and dtype, keeping order."""
    out: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]] = {}
    for avg, cur in pairs:
        lists = out.setdefault((avg.device, avg.dtype), ([], []))
        lists[0].append(avg)
        lists[1].append(cur)
    return out


class AveragedModel(Module):
    """A copy of ``model`` whose parameters are a running average of ``model``'s (SWA or EMA).

    The first :meth:`update_parameters` copies ``model``'s values; each later one applies, with n the
    number of models averaged so far (buffer ``n_averaged``):

    * ``multi_avg_fn(averaged_list, current_list, n)`` in place, per (device, dtype) bucket, if given;
    * else ``avg_fn(averaged, current, n)`` per tensor, its result copied in, if given;
    * else SWA: W ← W + (w − W)/(n + 1) (the multi-tensor form on devices with foreach kernels).

    Args:
        model (Module): the model to average; it is deep-copied into ``self.module``.
        device (torch.device | int, optional): where the copy (and ``n_averaged``) lives.
        avg_fn (callable, optional): per-tensor averaging function (see :func:`get_ema_avg_fn`).
        multi_avg_fn (callable, optional): in-place list averaging function (see :func:`get_ema_multi_avg_fn`).
        use_buffers (bool): average buffers too (e.g. BatchNorm statistics); otherwise buffers are copied
            from ``model`` at each update (default: ``False``).

    Raises ``AssertionError`` when both ``avg_fn`` and ``multi_avg_fn`` are given (as torch does). Neither
    function is saved in the ``state_dict``.
    """

    n_averaged: Tensor

    def __init__(self, model: Module, device: int | torch.device | None = None, avg_fn: AvgFn | None = None,
                 multi_avg_fn: MultiAvgFn | None = None, use_buffers: bool = False) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long, device=device))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the averaged copy."""
        return self.module(*args, **kwargs)

    def _tracked(self, model: Module, own: bool) -> Iterable[Tensor]:
        if self.use_buffers:
            return itertools.chain(model.parameters(), model.buffers())
        return self.parameters() if own else model.parameters()

    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current parameters (and buffers if ``use_buffers``) into the average."""
        averaged: list[Tensor] = []
        current: list[Tensor] = []
        first = bool(self.n_averaged == 0)
        for w_avg, w in zip(self._tracked(self.module, True), self._tracked(model, False), strict=False):
            w = w.detach().to(w_avg.device)
            averaged.append(w_avg.detach())
            current.append(w)
            if first:
                w_avg.detach().copy_(w)
        if not first:
            self._average(averaged, current)
        if not self.use_buffers:  # buffers follow the source model
            for b_avg, b in zip(self.module.buffers(), model.buffers(), strict=True):
                b_avg.detach().copy_(b.detach().to(b_avg.device))
        self.n_averaged += 1

    @torch.no_grad()
    def _average(self, averaged: list[Tensor], current: list[Tensor]) -> None:
        if self.avg_fn is not None and self.multi_avg_fn is None:
            for w_avg, w in zip(averaged, current, strict=True):
                w_avg.copy_(self.avg_fn(w_avg, w, self.n_averaged.to(w_avg.device)))
            return
        for (device, _), (avg_list, cur_list) in _by_device_and_dtype(zip(averaged, current, strict=True)).items():
            n = self.n_averaged.to(device)
            if self.multi_avg_fn is not None:
                self.multi_avg_fn(avg_list, cur_list, n)
            elif device.type in _get_foreach_kernels_supported_devices():
                get_swa_multi_avg_fn()(avg_list, cur_list, n)
            else:
                swa = get_swa_avg_fn()
                for w_avg, w in zip(avg_list, cur_list, strict=True):
                    w_avg.copy_(swa(w_avg, w, n))


# --------------------------------------------------------------------------- update_bn


@torch.no_grad()
def update_bn(loader: Iterable[Any], model: Module, device: int | torch.device | None = None) -> None:
    """Recompute every BatchNorm layer's ``running_mean``/``running_var`` with one pass over ``loader``.

    Statistics are reset, then accumulated as a cumulative (equal-weight) average (``momentum=None``)
    in training mode; each layer's momentum and the model's train/eval mode are restored afterwards.
    A batch is a tensor, or a list/tuple whose first element is the input tensor.
    """
    momenta: dict[_BatchNorm, float | None] = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    for batch in loader:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if device is not None:
            x = x.to(device)
        model(x)
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


# --------------------------------------------------------------------------- SWALR


def _linear_anneal(t: float) -> float:
    """α(t) = t."""
    return t


def _cosine_anneal(t: float) -> float:
    """α(t) = (1 − cos πt)/2."""
    return (1 - math.cos(math.pi * t)) / 2


_ANNEAL = {"cos": _cosine_anneal, "linear": _linear_anneal}


class SWALR(LRScheduler):
    """Anneal each group's lr from its current value L to ``swa_lr`` over ``anneal_epochs`` steps, then hold.

    Closed form, k = steps taken since construction, A = ``anneal_epochs``:
    lr_k = swa_lr·α(t) + L·(1 − α(t)),  t = min(1, k/A) (t = 1 when A = 0),
    α(t) = (1 − cos πt)/2 (``"cos"``) or t (``"linear"``).

    Like torch, :meth:`get_lr` is recursive: it recovers L from the current lr by inverting the previous
    step (L = (lr − α_prev·swa_lr)/(1 − α_prev)), so SWALR also anneals from whatever lr another scheduler
    left. It counts its own steps (``_step_count``), not ``last_epoch``.

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        swa_lr (float or list): the target lr, for all groups or one per group (stored as ``group["swa_lr"]``).
        anneal_epochs (int): steps of the annealing phase, ≥ 0 (default: 10).
        anneal_strategy (str): ``"cos"`` or ``"linear"`` (default: ``"cos"``).
        last_epoch (int): the index of the last epoch (default: -1).

    Raises ``ValueError`` for a list ``swa_lr`` of the wrong length, an unknown ``anneal_strategy``, or an
    ``anneal_epochs`` that is not a non-negative int.
    """

    def __init__(self, optimizer: Optimizer, swa_lr: float | Sequence[float], anneal_epochs: int = 10,
                 anneal_strategy: Literal["cos", "linear"] = "cos", last_epoch: int = -1) -> None:
        swa_lrs = per_group("swa_lr", optimizer, swa_lr)
        if anneal_strategy not in ("cos", "linear"):  # a tuple: unhashable values give ValueError, as in torch
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        for value, group in zip(swa_lrs, optimizer.param_groups, strict=True):
            group["swa_lr"] = value
        self._set_anneal_func(anneal_strategy)
        self.anneal_epochs = anneal_epochs
        # L of the closed form: each group's lr when annealing starts (read by lr_at only).
        self._anneal_from = [float(g["lr"]) for g in optimizer.param_groups]
        super().__init__(optimizer, last_epoch)

    _linear_anneal = staticmethod(_linear_anneal)
    _cosine_anneal = staticmethod(_cosine_anneal)

    @staticmethod
    def _get_initial_lr(lr: Any, swa_lr: Any, alpha: float) -> Any:
        """Invert one annealing step: the L with lr = swa_lr·α + L·(1 − α) (swa_lr itself when α = 1)."""
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy: Literal["cos", "linear"]) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = _ANNEAL[anneal_strategy]

    def _t(self, k: int) -> float:
        """Annealing progress after k steps, clamped to [0, 1]."""
        return max(0, min(1, k / max(1, self.anneal_epochs)))

    def _k(self) -> int:
        k = self._step_count - 1  # set by the base's step(); 0 after construction
        return max(1, k) if self.anneal_epochs == 0 else k

    def get_lr(self) -> list[float | Tensor]:
        """Recursive form (torch's): recover L from the current lr, then move it to step k's α."""
        self._warn_if_outside_step()
        k = self._k()
        alpha_prev, alpha = self.anneal_func(self._t(k - 1)), self.anneal_func(self._t(k))
        groups = self.optimizer.param_groups
        starts = [self._get_initial_lr(g["lr"], g["swa_lr"], alpha_prev) for g in groups]
        return [g["swa_lr"] * alpha + start * (1 - alpha) for g, start in zip(groups, starts, strict=True)]

    def lr_at(self, step: int) -> list[float]:
        """lr after ``step`` SWALR steps since construction, from the closed form; changes no state.

        L is each group's lr when this scheduler was built (or, after loading a torch state dict, recovered
        from the last lr while annealing is unfinished)."""
        if self._anneal_from is None:
            raise RuntimeError("SWALR.lr_at: the lr annealing started from is unknown (state loaded after the "
                               "annealing had finished)")
        k = max(1, step) if self.anneal_epochs == 0 else step
        alpha = self.anneal_func(self._t(k))
        return [float(g["swa_lr"]) * alpha + start * (1 - alpha)
                for g, start in zip(self.optimizer.param_groups, self._anneal_from, strict=True)]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer and ``anneal_func`` (torch's keys, plus ``_anneal_from``)."""
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict` (ours or torch's SWALR)."""
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)
        if "_anneal_from" not in state_dict:  # torch's state: recover L from the last lr if still annealing
            alpha = self.anneal_func(self._t(self._k()))
            self._anneal_from = None if alpha == 1 else [
                float(self._get_initial_lr(lr, g["swa_lr"], alpha))
                for lr, g in zip(self._last_lr, self.optimizer.param_groups, strict=True)]

