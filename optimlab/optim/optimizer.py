"""optimlab's ``Optimizer`` base: the bookkeeping every algorithm shares, done once.

It subclasses :class:`torch.optim.Optimizer`, so it *is* a torch optimizer to GradScaler, DDP/FSDP,
ZeroRedundancyOptimizer, Lightning and LR schedulers, and inherits torch's checkpoint format.

Attributes (as torch documents them):
    defaults (dict): the constructor's hyperparameters, used for groups that do not override them.
    state (defaultdict[Tensor, dict]): per-parameter state, keyed by parameter, with torch's state
        names (``"step"``, ``"exp_avg"``, ``"momentum_buffer"``, …) so checkpoints interchange. It is
        created lazily, on a parameter's first step with a gradient (Adagrad, like torch, at construction).
    param_groups (list[dict]): each group's ``"params"`` (and ``"param_names"`` when the optimizer
        was given named parameters) and hyperparameters.
    step counter: algorithms that count steps keep ``state[p]["step"]`` like torch: a 0-d tensor of
        the default scalar dtype (float32, or float64 under a float64 default dtype) on the CPU, or
        on the parameter's device when ``capturable``/``fused`` (float32 for ``fused``).

Methods (inherited from torch, behaving exactly as documented there):
    zero_grad(set_to_none=True): drop (or zero in place) every parameter's ``.grad``.
    step(closure=None): one update of every group; a ``closure`` re-evaluates the loss (with grad
        enabled) and its value is returned. Parameters whose ``.grad`` is None are skipped.
    add_param_group(group): add a group, filling missing hyperparameters from ``defaults``.
    state_dict() / load_state_dict(sd): torch's format (params by index; ``param_names`` kept when
        the groups carry them), loadable from and into torch's optimizers.
    register_step_pre_hook / register_step_post_hook / register_state_dict_pre_hook /
    register_state_dict_post_hook / register_load_state_dict_pre_hook /
    register_load_state_dict_post_hook: torch's hook API.

Flags every elementwise algorithm shares, handled here once:
    maximize: the rule sees ``-∇`` (:meth:`_grads`).
    complex parameters: params, grads and state are viewed as real pairs (:meth:`_collect`).
    foreach: ``None`` picks torch's default (multi-tensor on accelerators, not when differentiable);
        the multi-tensor path runs the *same* rule on :class:`~._many.Many` lists (:meth:`_apply`).
    fused: accepted where torch accepts it, validated like torch (floating point params on a fused
        device, not with ``foreach``/``differentiable``); it runs the same rule compiled (:mod:`._fused`),
        or unfused where it cannot (no compiler, an outer ``torch.compile``, tensor subclasses such as DTensor).
    GradScaler: an optimizer that advertises ``_step_supports_amp_scaling`` gets ``grad_scale``/``found_inf``
        and must unscale and skip itself; every path does so here, in :meth:`_collect` (:meth:`_amp_gate`),
        :meth:`_count` and :meth:`_apply`, so no algorithm handles them (the compiled fused path in its kernel).
    capturable / differentiable: the step count stays a tensor and the rule takes its tensor branch
        (capturable is only valid on accelerators, as in torch); ``differentiable`` runs the step
        with autograd on, so gradients flow through ``step()``.

An algorithm subclass supplies its update *rule* once (a function over tensor-likes), the names and
initial values of its state, and calls :meth:`_collect`, :meth:`_count` and :meth:`_apply`.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, ClassVar

import torch
from torch import Tensor

from . import _fused, _lowp
from ._many import PLAIN, Many

__all__ = ["Optimizer", "compiling", "scalar_dtype", "to_scalar", "use_grad_for_differentiable", "validate",
           "validate_common"]



def use_grad_for_differentiable(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``step`` with autograd on only when the optimizer is ``differentiable`` (torch's
    ``_use_grad_for_differentiable``, without its two ``torch._dynamo.graph_break()`` calls: Dynamo
    does not trace a step that is not torch's own after that break, only the functions it calls, one
    graph each, with tensors crossing between them, which re-guarded every step)."""

    @functools.wraps(func)
    def _use_grad(self: Any, *args: Any, **kwargs: Any) -> Any:
        prev = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return func(self, *args, **kwargs)
        finally:
            torch.set_grad_enabled(prev)

    return _use_grad

_GRAD, _IS_SPARSE = operator.attrgetter("grad"), operator.attrgetter("is_sparse")


def _grads_of(params: Sequence[Tensor]) -> list[Any]:
    """Each parameter's ``.grad`` (a C-level map eagerly; Dynamo cannot trace ``attrgetter``)."""
    return [p.grad for p in params] if compiling() else list(map(_GRAD, params))


def _any_sparse(grads: Sequence[Tensor]) -> bool:
    return any(g.is_sparse for g in grads) if compiling() else any(map(_IS_SPARSE, grads))

_FUSED_DEVICES = ("mps", "cuda", "xpu", "hpu", "cpu", "mtia")
_CAPTURABLE_DEVICES = ("cuda", "xpu", "hpu", "xla")


def compiling() -> bool:
    """Whether Dynamo is tracing the step (``torch.compile``). Then step counters and tensor
    hyperparameters stay tensors and every rule takes its tensor branch, as torch's ``_get_value``
    does: a ``.item()`` would graph-break, and a Python number read from a tensor is specialised
    into the graph (one recompilation per step, wrong guards on floats)."""
    return torch.compiler.is_compiling()


def validate(cond: bool, message: str, exc: type[Exception] = ValueError) -> None:
    """Raise ``exc(message)`` unless ``cond`` holds (hyperparameter checks, torch's exception types)."""
    if not cond:
        raise exc(message)


def validate_common(lr: Any, eps: float | None = None, weight_decay: Any = None,
                    betas: tuple[Any, Any] | None = None) -> None:
    """torch's shared checks: 1-element tensor lr, ``lr >= 0``, ``eps >= 0``, ``0 <= β < 1``, ``λ >= 0``."""
    validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
    validate(0.0 <= lr, f"Invalid learning rate: {lr}")
    if eps is not None:
        validate(0.0 <= eps, f"Invalid epsilon value: {eps}")
    if betas is not None:
        validate(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
        validate(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
    if weight_decay is not None:
        validate(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")


def scalar_dtype(fused: bool | None = None) -> torch.dtype:
    """torch's dtype for step counters: float32 when fused, else float64 only under a float64 default."""
    if fused:
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def to_scalar(x: Any) -> Any:
    """A 1-element tensor hyperparameter as a 0-d tensor (a number stays a number), as torch's optimizers
    take ``lr`` and friends."""
    return x.squeeze() if isinstance(x, Tensor) and x.dim() != 0 else x


def _foreach_capable(t: Tensor) -> bool:
    return type(t) in PLAIN and t.device.type in ("cuda", "xpu", "mps", "mtia")


def _real(t: Any) -> Any:
    return torch.view_as_real(t) if isinstance(t, Tensor) and t.is_complex() else t


class Optimizer(torch.optim.Optimizer):
    """Base class of optimlab's optimizers (see the module docstring for attributes and methods)."""

    #: torch's multi-tensor paths refuse ``differentiable=True`` (AssertionError), except SGD's.
    _foreach_differentiable: bool = False
    #: whether the rule also runs on :class:`Many` lists (False: per tensor only, e.g. Adafactor's reductions)
    _multi_tensor: ClassVar[bool] = True

    #: state tensors that ``state_dtype=`` may store compactly: name -> signed (first moments) or not (:mod:`._lowp`)
    _lowp_state: ClassVar[dict[str, bool]] = {}

    #: group keys that older checkpoints may lack, filled in on load (torch's ``__setstate__``)
    _group_defaults: ClassVar[tuple[tuple[str, Any], ...]] = ()
    #: for algorithms whose ``step`` is a tensor: other per-parameter scalar state that older
    #: checkpoints stored as Python numbers (None: the algorithm keeps no tensor step)
    _scalar_state: ClassVar[tuple[str, ...] | None] = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, val in self._group_defaults:
                group.setdefault(key, val)
        if self._scalar_state is not None:
            self._fix_steps(*self._scalar_state)

    @staticmethod
    def _scalar(x: Any) -> Any:
        """A Python number from a 1-element tensor hyperparameter, unless it needs grad or the step is
        being compiled (then a 0-d tensor: no host sync)."""
        if isinstance(x, Tensor):
            if compiling():
                return x.squeeze() if x.dim() else x
            if not x.requires_grad:
                return x.item()
        return x

    @staticmethod
    def _use_foreach(group: dict[str, Any], params: Sequence[Tensor]) -> bool:
        """torch's default: the multi-tensor path when every parameter is a plain tensor on an
        accelerator and the step is not differentiable; ``foreach=True/False`` forces it. ``fused``
        normally runs the compiled rule (:mod:`._fused`); where it cannot (under an outer
        torch.compile, or after a compiler failure) it runs the rule on lists on accelerators, and
        per tensor on CPU, where that loop measured 2-2.5x faster than the foreach ops."""
        if group.get("fused"):
            return not all(p.device.type == "cpu" for p in params)
        foreach = group.get("foreach")
        if foreach is None:
            if group.get("differentiable", False):
                return False
            return all(_foreach_capable(p) for p in params)
        return bool(foreach)

    @staticmethod
    def _grads(params: Sequence[Tensor], maximize: bool) -> list[Tensor]:
        """The gradients to descend on: ``-∇`` when maximizing."""
        return [-p.grad for p in params] if maximize else _grads_of(params)  # type: ignore[operator]

    # ----------------------------------------------------------------------------------- state
    @staticmethod
    def _new_step(p: Tensor, group: dict[str, Any]) -> Tensor:
        """A fresh step counter (0) where torch keeps it: on ``p``'s device when capturable/fused."""
        if group.get("capturable") or group.get("fused"):
            return torch.zeros((), dtype=scalar_dtype(group.get("fused")), device=p.device)
        return torch.tensor(0.0, dtype=scalar_dtype())

    @staticmethod
    def _check_fused(p: Tensor) -> None:
        if not (p.is_floating_point() and p.device.type in _FUSED_DEVICES):  # (the message only on failure)
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported "
                               f"devices: {list(_FUSED_DEVICES)} but {p.dtype} and {p.device.type}")

    def _fix_steps(self, *scalars: str) -> None:
        """After loading old checkpoints: turn float ``step`` (and other scalar state) into torch's tensors."""
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p, {})
                for key in ("step", *scalars):
                    if key in st and not torch.is_tensor(st[key]):
                        on_dev = group.get("capturable") or group.get("fused")
                        st[key] = torch.tensor(float(st[key]), dtype=scalar_dtype(group.get("fused")),
                                               device=p.device if on_dev else None)

    def _collect(self, group: dict[str, Any], init: Callable[[Tensor, dict[str, Any]], dict[str, Any]],
                 keys: Sequence[str], sparse_error: str | None = None,
                 sparse_ok: bool = False) -> tuple[list[Tensor], list[Tensor], list[list[Any]], list[Tensor]]:
        """Parameters with gradients, their (maximize-signed) gradients, the state tensors named by
        ``keys`` (created by ``init`` on first use) and the step counters.

        Complex parameters, gradients and state come back as real views (writes go through). A
        sparse gradient raises torch's RuntimeError unless ``sparse_ok``.
        """
        differentiable, state, params = group.get("differentiable"), self.state, group["params"]
        gs = _grads_of(params)
        if any(map(operator.is_, gs, repeat(None))):
            params = [p for p, g in zip(params, gs, strict=True) if g is not None]
            gs = [g for g in gs if g is not None]
        if not sparse_ok and _any_sparse(gs):  # torch's error, at the first sparse gradient
            for p, g in zip(params, gs, strict=True):
                if g.is_sparse:
                    raise RuntimeError(sparse_error or f"{type(self).__name__} does not support sparse gradients")
                self._init(group, init, p)
        dicts = [state[p] for p in params] if compiling() else list(map(state.__getitem__, params))
        if not all(dicts):
            for p, st in zip(params, dicts, strict=True):
                if not st:
                    self._init(group, init, p)
        if differentiable and any(isinstance(st.get("step"), Tensor) and st["step"].requires_grad for st in dicts):
            raise RuntimeError("`requires_grad` is not supported for `step` in differentiable mode")
        if not self._amp_gate(group, params):  # GradScaler found inf/NaN: nothing to update
            return [], [], [[] for _ in keys], []
        grads = self._grads(params, group.get("maximize", False))
        steps = list(map(dict.__getitem__, dicts, repeat("step"))) if params and "step" in dicts[0] else []
        if not any(map(Tensor.is_complex, params)):  # (map: the loops run in C)
            return params, grads, [list(map(dict.get, dicts, repeat(k))) for k in keys], steps
        states = [[_real(d[k]) if k in d else None for d in dicts] for k in keys]
        return [_real(p) for p in params], [_real(g) for g in grads], states, steps

    def _init(self, group: dict[str, Any], init: Callable[[Tensor, dict[str, Any]], dict[str, Any]], p: Tensor) -> None:
        """``p``'s lazy state on its first step with a gradient (fused: its device and dtype checked first)."""
        st = self.state[p]
        if not st:
            if group.get("fused"):
                self._check_fused(p)
            st.update(init(p, group))
            self._compact(p, group)

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        # stochastic rounding's seed (:mod:`._lowp`): torch's, read here rather than in a step Dynamo may trace
        self._lowp_seed = torch.initial_seed()
        super().__init__(params, defaults)

    def _compact(self, p: Tensor, group: dict[str, Any]) -> None:
        """``p``'s new state in the group's low-precision storage (``state_dtype=``/``param_rounding=``)."""
        if _lowp.enabled(group):
            index = next(i for i, q in enumerate(q for g in self.param_groups for q in g["params"]) if q is p)
            _lowp.compact(self.state[p], p, group, self._lowp_state, index, _lowp.base_seed(self))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``, then each state brought to its group's storage (:mod:`._lowp`): torch's
        float32 state into a low-precision group is quantised, compact state into a full-precision one decoded,
        and the integer tensors that torch's loader casts to the parameter's dtype (codes, counters) kept.
        ``state_dtype``/``param_rounding`` are this optimizer's own (how it stores), not the checkpoint's."""
        saved = {pid: {k: v for k, v in st.items() if isinstance(v, Tensor) and k != "step"
                       and v.dtype in (torch.int8, torch.uint8, torch.int64)}
                 for pid, st in state_dict.get("state", {}).items()}
        lowp = any(saved.values()) or any(_lowp.enabled(g) for g in self.param_groups) or any(
            _lowp.enabled(g) for g in state_dict.get("param_groups", ()))
        storage = [{k: g[k] for k in _lowp.KEYS if k in g} for g in self.param_groups]
        super().load_state_dict(state_dict)
        if lowp:
            for group, keep in zip(self.param_groups, storage, strict=False):  # this optimizer's storage policy
                for k in _lowp.KEYS:
                    group.pop(k, None)
                group.update(keep)
            ids = [i for g in state_dict["param_groups"] for i in g["params"]]
            params = [p for g in self.param_groups for p in g["params"]]
            _lowp.conform(self, {id(p): saved[i] for i, p in zip(ids, params, strict=False) if saved.get(i)})

    def _amp(self, group: dict[str, Any],
             params: Sequence[Tensor] | None = None) -> tuple[Tensor | None, Tensor | None]:
        """GradScaler's ``(grad_scale, found_inf)`` where this group's step must honour them itself: set by
        GradScaler on an optimizer that advertises ``_step_supports_amp_scaling`` (torch's fused contract),
        on every path but the compiled fused one (:mod:`._fused` folds them into its kernels)."""
        if not getattr(self, "_step_supports_amp_scaling", False):
            return None, None
        scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        if (scale is None and found_inf is None) or _fused.active(group, params):
            return None, None
        return scale, found_inf

    def _amp_gate(self, group: dict[str, Any], params: Sequence[Tensor]) -> bool:
        """GradScaler's contract for ``params`` (with gradients), as torch's fused kernels keep it; False when
        the step must be skipped. Eagerly: ``found_inf`` read on the host (as torch's CPU kernels do), inf/NaN
        -> skip (nothing updated, step counters untouched; lazy state is already created), else each ``.grad``
        divided by ``grad_scale`` in place (torch's kernels write the unscaled gradient back). Under
        ``torch.compile``: no host read; the gradients are unscaled where finite, and :meth:`_count` and
        :meth:`_apply` mask the update by ``found_inf`` on the device (counters: +1, then -found_inf)."""
        scale, found_inf = self._amp(group, params)
        if scale is None and found_inf is None:
            return True
        grads = _grads_of(params)
        if compiling():
            if scale is not None:
                for g in grads:
                    unscaled = g / scale.to(g.device)
                    g.copy_(unscaled if found_inf is None else torch.where(found_inf.to(g.device) != 0, g, unscaled))
            return True
        if found_inf is not None and found_inf.item() != 0.0:
            return False
        if scale is not None and grads:
            dev = grads[0].device
            if all(type(g) in PLAIN and not g.is_sparse and g.device == dev for g in grads):
                torch._foreach_div_(grads, scale.to(dev))
            else:  # sparse, tensor subclasses (DTensor), mixed devices
                for g in grads:
                    g.div_(scale.to(g.device))
        return True

    def _count(self, group: dict[str, Any], steps: Sequence[Tensor], tensor: bool = False) -> list[Any]:
        """Advance the step counters; return each step as a Python float, or the tensors themselves
        when ``tensor`` (capturable/differentiable math) or while compiling (:func:`compiling`). For the
        compiled fused path the counters are returned as they are: :func:`._fused.apply` advances them.
        Capturable needs an accelerator, as in torch (not checked while compiling, as torch)."""
        if group.get("capturable") and not compiling():
            validate(all(s.device.type in _CAPTURABLE_DEVICES for s in steps),
                     "If capturable=True, params and state_steps must be on supported devices: "
                     f"{list(_CAPTURABLE_DEVICES)}.", AssertionError)
        if steps and group.get("fused") and _fused.active(group):
            return list(steps)  # the compiled fused path advances the counters inside its kernel
        found_inf = self._amp(group)[1] if steps and compiling() else None
        if found_inf is not None:  # (see _amp_gate) the rule sees t+1; a skipped step leaves t
            out = [s + 1 for s in steps]
            for s in steps:
                s.add_(1 - found_inf.to(s.device, s.dtype))
            return out
        if steps and not group.get("differentiable") and steps[0].device.type != "cpu":
            torch._foreach_add_(list(steps), 1)
        else:
            for s in steps:
                s += 1
        if tensor or compiling():
            return list(steps)
        return [s.item() for s in steps]

    def _lr(self, group: dict[str, Any], tensor: bool) -> Any:
        """The group's lr for the rule: a Python number, except a tensor lr in tensor-step mode
        (capturable/differentiable) or while compiling, where torch keeps it a tensor."""
        lr = group["lr"]
        if (tensor or compiling()) and isinstance(lr, Tensor):
            return lr.squeeze() if lr.dim() else lr
        return self._scalar(lr)

    # ------------------------------------------------------------------------------------ rule
    def _apply(self, rule: Callable[..., Any], group: dict[str, Any], lists: Sequence[Sequence[Any]],
               bucket_by: Sequence[Any] | None = None, **hyper: Any) -> None:
        """Run ``rule(*items, **hyper)`` for each parameter, or once per bucket on :class:`Many` lists
        when the multi-tensor path is chosen.

        ``lists`` are parallel lists, the first being the parameters. Entries that are tensors are
        per-parameter tensors; other entries (Python numbers, None) are per-parameter scalars, and
        the multi-tensor path buckets parameters by (device, dtype, those scalars) so that each
        bucket gets one value, as torch's own foreach paths effectively compute. ``bucket_by`` adds a
        per-parameter key (e.g. the value of 0-d state the rule reads as a number) without passing it.
        """
        if not lists or not lists[0]:
            return
        if _lowp.enabled(group):  # stored state: the rule wrapped to load and store it (per tensor or fused)
            for part_rule, part, idx in _lowp.expand(self, group, rule, lists):
                self._run(part_rule, group, part, None if bucket_by is None else [bucket_by[i] for i in idx], hyper)
            return
        self._run(rule, group, lists, bucket_by, hyper)

    def _run(self, rule: Callable[..., Any], group: dict[str, Any], lists: Sequence[Sequence[Any]],
             bucket_by: Sequence[Any] | None, hyper: dict[str, Any]) -> None:
        """:meth:`_apply` for one rule: compiled (fused), or per tensor / on buckets, GradScaler honoured."""
        if group.get("fused") and _fused.active(group, lists[0]):
            return _fused.apply(self, rule, group, lists, hyper)
        found_inf = self._amp(group)[1] if compiling() else None
        if found_inf is not None:  # GradScaler under torch.compile (see _amp_gate): keep the old values on inf
            mutable = [t for j, x in enumerate(lists) if j != 1 for t in x if isinstance(t, Tensor)]
            old = [t.clone() for t in mutable]
            self._update(rule, group, lists, bucket_by, hyper)
            for t, o in zip(mutable, old, strict=True):
                t.copy_(torch.where(found_inf.to(t.device) != 0, o, t))
            return
        self._update(rule, group, lists, bucket_by, hyper)

    def _update(self, rule: Callable[..., Any], group: dict[str, Any], lists: Sequence[Sequence[Any]],
                bucket_by: Sequence[Any] | None, hyper: dict[str, Any]) -> None:
        """:meth:`_apply`'s unfused paths: per tensor, or on :class:`Many` buckets."""
        per_tensor = not self._multi_tensor or getattr(rule, "per_tensor", False)  # (stored state: per tensor)
        if per_tensor or not self._use_foreach(group, lists[0]) or any(
            isinstance(t, Tensor) and t.is_sparse for t in lists[1]
        ):
            for items in zip(*lists, strict=True):
                rule(*items, **hyper)
            return
        validate(self._foreach_differentiable or not group.get("differentiable"), "_foreach ops don't support autograd",
                 AssertionError)
        buckets: dict[tuple[Any, ...], list[int]] = {}
        for i, p in enumerate(lists[0]):
            key = (p.device, p.dtype, *(x[i] for x in lists[1:] if not isinstance(x[i], Tensor)),
                   None if bucket_by is None else bucket_by[i])
            buckets.setdefault(key, []).append(i)
        for idx in buckets.values():
            args = []
            for x in lists:
                first = x[idx[0]]
                args.append(Many([x[i] for i in idx]) if isinstance(first, Tensor) else first)
            rule(*args, **hyper)

    @staticmethod
    def _eval_closure(closure: Callable[[], Any] | None) -> Any:
        """Evaluate ``closure`` with autograd enabled (``step`` itself may run under no_grad)."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()
