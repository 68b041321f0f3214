"""``fused=True``: each algorithm's own rule, compiled by torch.compile/Inductor into single-pass kernels.

No kernel is written by hand: the *same* ``<name>_rule`` that the per-tensor and multi-tensor paths
run is traced by Dynamo and compiled by Inductor (C++/OpenMP on CPU, Triton on CUDA). How it is
called, so that one compiled graph serves a whole model and never recompiles while training:

* **Fixed-width chunks.** The rule is compiled once over ``SLOTS`` parameters with dynamic sizes
  (``dynamic=True``, no duck sizing) on flat, base-less aliases of each tensor; a step calls it
  ``ceil(n / SLOTS)`` times. Missing slots of the last chunk take tiny private dummy tensors, so
  the graph never sees a different list length. (One graph over the whole list is the fastest
  kernel but compiles for minutes; one call per tensor costs a Dynamo/Inductor dispatch each.)
* **Changing scalars are tensors.** ``step`` (the state counters themselves) and ``lr`` enter as
  0-d tensors, so schedules and steps never recompile; the rule then takes its tensor-step branch.
  The other hyperparameters and flags are constants of the graph (part of its cache key).
* **Scalar math hoisted.** Inductor would inline 0-d arithmetic (``1 - β1ᵗ``, ``√(1-β2ᵗ)``) into the
  element loop, a ``pow`` per vector of elements; a post-grad pass (:class:`_Hoist`) computes every
  0-d value the element loops read once, before them.
* **Scalar arguments.** Tensor-valued ``alpha=``/``value=`` arguments (``p.add_(g, alpha=-lr)`` with a
  tensor lr) become a product inside the kernel (:class:`_ScalarArgs`), which costs no memory traffic.
* **GradScaler** (``grad_scale``/``found_inf`` set on the optimizer, as for torch's fused optimizers):
  the gradient is divided by the scale inside the kernel and written back unscaled, and every
  update is masked by ``found_inf`` (step counters included) on the device: no host sync.

Anything the chunks cannot take (a tensor that is not contiguous or holds fewer than 2 elements)
runs the rule eagerly. Where compiling fails (no C++ compiler, an unsupported device or op) the
step warns once and falls back to the unfused path, with the same results within the fused
tolerance. Under an outer ``torch.compile`` the rule runs inline, for the outer graph to fuse.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._many import PLAIN

__all__ = ["SLOTS", "active", "apply"]

#: parameters per compiled call
SLOTS = int(os.environ.get("OPTIMLAB_FUSED_SLOTS", "8"))
#: graphs one rule may compile in a process (distinct flags/hyperparameters/dtypes), above Dynamo's default 8
RECOMPILE_LIMIT = 256
_DEVICES = ("cpu", "cuda")
#: per-rule keyword overrides selecting the rule's on-device (capturable) formulas
_OVERRIDES: dict[str, dict[str, Any]] = {"nadam_rule": {"tensor_math": True}}
#: per-parameter scalar arguments that the fused call passes as None (capturable branch)
_NONE_ARGS: dict[str, tuple[str, ...]] = {"asgd_rule": ("eta", "mu")}

_compiled: dict[str, Callable[..., Any]] = {}
_failed: set[str] = set()
_warned: set[str] = set()
_dummies: dict[tuple[Any, ...], list[Tensor]] = {}


# ---------------------------------------------------------------------------------- traced helpers
_ALPHA = frozenset({Tensor.add, Tensor.add_, Tensor.sub, Tensor.sub_, torch.add, torch.sub})
_VALUE = frozenset({Tensor.addcdiv, Tensor.addcdiv_, Tensor.addcmul, Tensor.addcmul_, torch.addcdiv, torch.addcmul})


class _ScalarArgs(torch.overrides.TorchFunctionMode):
    """Rewrites ``x.add_(y, alpha=a)`` / ``x.addcdiv_(y, z, value=a)`` with a non-constant ``a`` (a
    tensor, or a symbolic float) into ``x.add_(y * a)`` / ``x.addcdiv_(y * a, z)``."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        key = "alpha" if func in _ALPHA else "value" if func in _VALUE else None
        if key is not None and key in kwargs and type(kwargs[key]) not in (int, float, bool):
            a = kwargs.pop(key)
            args = (args[0], args[1] * a, *args[2:])
        return func(*args, **kwargs)


_LIB = torch.library.Library("optimlab", "FRAGMENT")
_LIB.define("hoist_scalars(Tensor[] xs) -> Tensor")


def _hoist_scalars(xs: list[Tensor]) -> Tensor:
    """Identity barrier: the 0-d values ``xs``, stacked (Inductor computes them before the loops).
    Registered without an autograd wrapper: it is called once per compiled chunk."""
    return torch.stack(xs)


def _hoist_scalars_fake(xs: list[Tensor]) -> Tensor:
    return xs[0].new_empty((len(xs),))


_LIB.impl("hoist_scalars", _hoist_scalars, "CompositeExplicitAutograd")
_LIB.impl("hoist_scalars", _hoist_scalars_fake, "Meta")


def _is_scalar(n: Any) -> bool:
    v = n.meta.get("val") if isinstance(n, torch.fx.Node) else None
    return isinstance(v, Tensor) and v.dim() == 0


class _Hoist(torch._inductor.custom_graph_pass.CustomGraphPass):
    """Post-grad pass: every functional 0-d computation that depends only on inputs moves to the
    top, and the values element loops read go through one :func:`_hoist_scalars` barrier (per
    dtype/device), so each loop reads a precomputed number instead of recomputing it per vector."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        hoisted: list[torch.fx.Node] = []
        seen: set[torch.fx.Node] = set()
        for node in graph.nodes:
            schema = getattr(node.target, "_schema", None)
            if (node.op == "call_function" and _is_scalar(node) and schema is not None and not schema.is_mutable
                    and all(a.op == "placeholder" or a in seen for a in node.all_input_nodes)):
                seen.add(node)
                hoisted.append(node)
        read: dict[tuple[Any, Any], list[torch.fx.Node]] = {}
        for node in hoisted:
            if any(u not in seen and u.op != "output" for u in node.users):
                v = node.meta["val"]
                read.setdefault((v.dtype, v.device), []).append(node)
        if not read:
            return
        anchor = [n for n in graph.nodes if n.op == "placeholder"][-1]
        for node in hoisted:
            anchor.append(node)
            anchor = node
        for nodes in read.values():
            with graph.inserting_after(anchor):
                stacked = graph.call_function(torch.ops.optimlab.hoist_scalars.default, (list(nodes),))
            anchor = stacked
            for i, node in enumerate(nodes):
                with graph.inserting_after(anchor):
                    sel = graph.call_function(torch.ops.aten.select.int, (stacked, 0, i))
                anchor = sel
                for u in list(node.users):
                    if u not in seen and u is not stacked and u.op != "output":
                        u.replace_input_with(node, sel)
        graph.lint()

    def uuid(self) -> str:
        return "optimlab-fused-hoist-1"


def _chunk(fn: Callable[..., Any], lists: Sequence[Sequence[Any]], steps: Sequence[Tensor] | None,
           step_pos: int, scale: Tensor | None, found_inf: Tensor | None, lr: Tensor | None) -> None:
    """The traced body: ``fn`` (the rule, constant hyperparameters bound) on each of the chunk's slots."""
    if lr is not None:  # a 1-element input indexed in the graph (a 0-d CPU input would be read as a number)
        fn = functools.partial(fn, lr=lr[0])
    with _ScalarArgs():
        for i in range(len(lists[0])):
            items = [x[i] for x in lists]
            if step_pos >= 0:
                items[step_pos] = steps[i].to(torch.float64)  # type: ignore[index]
            if found_inf is None:
                if scale is not None:
                    items[1] = items[1] / scale
                fn(*items)
                continue
            keep = found_inf != 0
            mutable = [t for j, t in enumerate(items) if j != 1 and isinstance(t, Tensor) and j != step_pos]
            old = [t.clone() for t in mutable]
            grad = items[1]
            if scale is not None:
                items[1] = grad / scale
            unscaled = items[1]
            fn(*items)
            for t, o in zip(mutable, old, strict=True):
                t.copy_(torch.where(keep, o, t))
            if scale is not None:
                grad.copy_(torch.where(keep, grad, unscaled))
            if steps is not None:
                steps[i].sub_(found_inf.to(steps[i].dtype))


def _compiled_for(name: str) -> Callable[..., Any]:
    """One compiled entry point per rule (its own code object, so its own recompile budget)."""
    if name not in _compiled:
        code = _chunk.__code__.replace(co_name=f"fused_{name}")
        fn = types.FunctionType(code, _chunk.__globals__, f"fused_{name}", _chunk.__defaults__)
        _compiled[name] = torch.compile(fn, dynamic=True, fullgraph=True,
                                        options={"post_grad_custom_post_pass": _Hoist()})
    return _compiled[name]


# ------------------------------------------------------------------------------------- dispatch
def active(group: dict[str, Any], params: Sequence[Tensor] | None = None) -> bool:
    """Whether ``group`` takes the compiled path now (fused, eager caller, supported device)."""
    if not group.get("fused") or torch.compiler.is_compiling():
        return False
    ps = group["params"] if params is None else params
    # plain tensors only: a tensor subclass (FSDP2's DTensor) has no storage of its own to alias flat
    return all(type(p) in PLAIN and p.device.type in _DEVICES
               and p.device.type not in _failed for p in ps)


@contextlib.contextmanager
def _config() -> Any:
    """Compile settings: sizes dynamic but not duck-typed (equal sizes need not stay equal), and the
    hyperparameter floats (constants of the graph) specialized; step and lr are tensors. Warnings raised
    while compiling (torch's internal deprecation notices) are silenced. Set and restored by hand:
    ``config.patch`` builds a class per use, measurable at one use per chunk."""
    fx, dyn = torch.fx.experimental._config, torch._dynamo.config
    duck, spec, limit = fx.use_duck_shape, dyn.specialize_float, dyn.recompile_limit
    # Each (rule flags, hyperparameter values, dtypes) is one graph of the rule's entry point; Dynamo's default
    # budget of 8 per code object is spent by a few optimizers in one process (a sweep, a test suite), after
    # which fullgraph compilation raises and fused=True would fall back for good.
    fx.use_duck_shape, dyn.specialize_float, dyn.recompile_limit = False, True, max(limit, RECOMPILE_LIMIT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the compiler's own deprecation notices are not the user's business
            yield
    finally:
        fx.use_duck_shape, dyn.specialize_float, dyn.recompile_limit = duck, spec, limit


def _flat(t: Tensor) -> Tensor:
    """A 1-D alias of contiguous ``t`` with no autograd/view base (Dynamo guards on a view's base)."""
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage(), t.storage_offset(),
                                                               (t.numel(),), (1,))


def _fits(items: Sequence[Any]) -> bool:
    return all(not isinstance(t, Tensor) or t.dim() == 0 or (t.is_contiguous() and not t.is_sparse)
               for t in items) and items[0].numel() >= 2


def _dummy(kinds: tuple[Any, ...], slot: int, device: torch.device) -> list[Any]:
    """The private stand-ins for an empty slot: a 2-element (or 0-d) tensor per tensor argument."""
    key = (kinds, slot, device)
    if key not in _dummies:
        _dummies[key] = [torch.ones(() if k[1] == 0 else 2, dtype=k[0], device=device) if k else None
                         for k in kinds]
    return _dummies[key]


def _warn_once(device: str, err: BaseException) -> None:
    if device not in _warned:
        _warned.add(device)
        warnings.warn(f"fused=True could not compile the update on {device} ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''}); using the unfused path instead",
                      RuntimeWarning, stacklevel=4)


def _eager(rule: Callable[..., Any], items: Sequence[Any], hyper: dict[str, Any], steps: Tensor | None,
           scale: Tensor | None, found_inf: Tensor | None) -> None:
    """One parameter by the unfused rule, with GradScaler's contract (the host reads ``found_inf``)."""
    if found_inf is not None and float(found_inf) != 0.0:
        if steps is not None:
            steps.sub_(1)
        return
    items = list(items)
    if scale is not None:
        items[1].div_(scale.to(items[1].device))
    rule(*items, **hyper)


def apply(opt: Any, rule: Callable[..., Any], group: dict[str, Any], lists: Sequence[Sequence[Any]],
          hyper: dict[str, Any]) -> None:
    """Run ``rule(*items, **hyper)`` over ``lists`` (parameters first, gradients second, as
    :meth:`Optimizer._apply` passes them) in compiled chunks, honouring GradScaler's contract."""
    name = rule.__name__
    names = list(inspect.signature(rule).parameters)
    step_pos = names.index("step") if "step" in names else -1
    params = lists[0]
    device = params[0].device
    scale, found_inf = getattr(opt, "grad_scale", None), getattr(opt, "found_inf", None)
    scale = None if scale is None else scale.to(device)
    found_inf = None if found_inf is None else found_inf.to(device)
    state_steps: list[Tensor] | None = [opt.state.get(p, {}).get("step") for p in params]  # no new entries
    if not all(isinstance(t, Tensor) for t in state_steps):  # type: ignore[union-attr]
        state_steps = None
        if step_pos >= 0:  # a rule that reads the step needs the counters
            raise RuntimeError(f"{name}: fused step needs tensor step counters")
    call_lists = [list(x) for x in lists]
    for arg in _NONE_ARGS.get(name, ()):
        call_lists[names.index(arg)] = [None] * len(params)
    call_hyper = {**hyper, **_OVERRIDES.get(name, {})}
    lr = call_hyper.pop("lr", None)
    if lr is not None:
        lr = (lr.detach().reshape(1).to(device=device, dtype=torch.float64, copy=True) if isinstance(lr, Tensor)
              else torch.tensor([lr], dtype=torch.float64, device=device))
    fn = functools.partial(rule, **call_hyper)

    by: dict[tuple[Any, ...], list[int]] = {}
    rest: list[int] = []
    for i in range(len(params)):
        items = [x[i] for x in call_lists]
        if not _fits(items):
            rest.append(i)
            continue
        kinds = tuple((t.dtype, t.dim()) if isinstance(t, Tensor) else None for t in items)
        if state_steps is not None:
            kinds = (*kinds, (state_steps[i].dtype, 0))
        by.setdefault(kinds, []).append(i)
    chunks = [(kinds, idx[c:c + SLOTS]) for kinds, idx in by.items() for c in range(0, len(idx), SLOTS)]
    compiled = _compiled_for(name)
    for n, (kinds, sel) in enumerate(chunks):
        args = [[(_flat(x[i]) if x[i].dim() else x[i]) if isinstance(x[i], Tensor) else x[i] for i in sel]
                for x in call_lists]
        steps = None if state_steps is None else [state_steps[i] for i in sel]
        for slot in range(len(sel), SLOTS):
            dummy = _dummy(kinds, slot, device)
            for j, x in enumerate(args):
                x.append(dummy[j] if kinds[j] else x[0])
            if steps is not None:
                steps.append(dummy[-1])
        try:
            with _config():
                compiled(fn, args, steps, step_pos, scale, found_inf, lr)
        except Exception as err:  # noqa: BLE001 - any compiler failure: warn once, run unfused
            _failed.add(device.type)
            _warn_once(device.type, err)
            rest.extend(i for _, later in chunks[n:] for i in later)
            break
    for i in rest:
        _eager(rule, [x[i] for x in lists], hyper, None if state_steps is None else state_steps[i], scale, found_inf)


def check_init(opt: Any, fused: bool | None, foreach: bool | None, differentiable: bool) -> None:
    """Constructor checks for ``fused=True`` where torch has no fused variant, as torch makes them for
    its own fused optimizers; GradScaler then hands over ``grad_scale``/``found_inf``."""
    if not fused:
        return
    if differentiable:
        raise RuntimeError("`fused` does not support `differentiable`")
    if foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    opt._step_supports_amp_scaling = True
