"""``fused=True``: each algorithm's own rule, compiled by Inductor into single-pass kernels.

No kernel is written by hand: the *same* ``<name>_rule`` that the per-tensor and multi-tensor paths
run is traced by ``make_fx`` (symbolic sizes) and compiled by Inductor (C++/OpenMP on CPU, Triton on
CUDA). How it is called, so that one compiled graph serves a whole model and never recompiles while
training, at little cost per call:

* **Fixed-width chunks.** The rule is compiled once over ``SLOTS`` parameters with symbolic sizes (one
  size symbol per slot) on 1-D views of each tensor; a step calls it ``ceil(n / SLOTS)`` times.
  Missing slots of the last chunk take tiny private dummy tensors, so the graph never sees a
  different list length. (One graph over the whole list is the fastest kernel but compiles for
  minutes; one call per tensor costs a dispatch each.) Rules that reduce per parameter (Adafactor)
  keep each tensor's shape instead, one size symbol per (slot, dimension); so does Muon's update,
  whose orthogonalised matrix is a transposed view for a tall parameter (passed as the contiguous
  tensor it views, transposed back in the graph).
* **Called directly.** The compiled graph is cached by everything it specialises on (rule, constant
  hyperparameters, dtypes and layout, device) and called without a Dynamo frame: no guards per call.
  On CPU each planned chunk then calls the generated C++ kernel itself from its argument list
  (:class:`_Bound`), with the sizes and scratch buffers Inductor's ``call`` would compute each time.
* **Planned once per group.** The layout checks, the chunking and each chunk's flat argument list are
  kept per parameter group (:class:`_Plan`) and reused while the parameters (object and storage), the
  state tensors and the step counters are the same objects and the gradients keep their layout; a step
  then only fills in the gradients and calls the kernels.
* **Changing scalars are inputs.** ``step`` (the state counters themselves, advanced inside the
  kernel), ``lr`` and every other numeric hyperparameter (betas, momentum, weight decay, eps, …: what
  a scheduler, a trainer or user code may write into ``param_groups``) enter as 1-element tensors, so
  schedules and steps never recompile; the rule then takes its tensor-step branch. While tracing, a
  hyperparameter is a :class:`Knob`: a comparison the rule branches on (``weight_decay != 0``) is
  recorded as a guard of the kernel, so a value of another class selects (or compiles) another
  kernel, at most :data:`VARIANTS` per key. Flags (amsgrad, nesterov, maximize, …), dtypes and layout
  are the cache key.
* **Scalar math hoisted.** Inductor would inline 0-d arithmetic (``1 - β1ᵗ``, ``√(1-β2ᵗ)``) into the
  element loop, a ``pow`` per vector of elements; a post-grad pass (:class:`_Hoist`) computes every
  0-d value the element loops read once, into one buffer, before them (on CPU inside the
  chunk's one C++ kernel, no separate call).
* **Scalar arguments.** Tensor-valued ``alpha=``/``value=`` arguments (``p.add_(g, alpha=-lr)`` with a
  tensor lr) become a product inside the kernel (:class:`_ScalarArgs`), which costs no memory traffic.
* **GradScaler** (``grad_scale``/``found_inf`` set on an optimizer that advertises
  ``_step_supports_amp_scaling``, as torch's fused optimizers do): the gradient is divided by the
  scale inside the kernel and written back unscaled, and every update is masked by ``found_inf``
  (step counters included) on the device: no host sync.
* **Rules that are not elementwise** through and through run their elementwise parts here and the
  rest eagerly: Muon's decay and momentum (and the bfloat16 Newton–Schulz input, a scratch tensor)
  are one kernel, the Newton–Schulz matmuls run eagerly per parameter, its update another kernel
  (the shape-dependent lr ratio a per-parameter 0-d input). Its product-sums round as ATen's single
  FMAs (:class:`_EagerFMA`): on CPU the buffer and the parameters then equal the unfused path's bit
  for bit, so the bfloat16 rounding of the next Newton–Schulz input cannot turn a float32 ulp into a
  bfloat16 one.

Anything the chunks cannot take (a tensor that is not contiguous or holds fewer than 2 elements)
runs the chunk body eagerly. **Fail closed**: each new kernel is first run on a small probe and
compared with the eager chunk body, through Inductor's public wrapper and then through each faster
call path (the generated ``call``, :class:`_Bound`); a path that raises or disagrees is not used, and
a list of Inductor settings (:data:`_LADDER`) is tried in turn. Where no kernel can be built (no C++
compiler, an unsupported device or op, a changed Inductor) the step warns once and falls back to the
unfused path, with the same results within the fused tolerance; a call that fails later leaves the
step's remaining parameters to the eager chunk body (each updated once) and switches to the unfused
path. Under an outer ``torch.compile`` the rule runs inline, for the outer graph to fuse. Every use
of torch's private internals is in :mod:`._compat`, loaded on the first build.
"""

from __future__ import annotations

import array
import contextlib
import functools
import inspect
import operator
import os
import struct
import types
import warnings
import weakref
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

import torch
from torch import Tensor

from . import _compat
from ._many import PLAIN
from ._rule import RuleSpec, spec_of

__all__ = ["SLOTS", "active", "apply"]

#: parameters per compiled call (where the rule's :class:`~._rule.RuleSpec` does not say otherwise)
SLOTS = int(os.environ.get("OPTIMLAB_FUSED_SLOTS", "8"))
#: elements per traced slot: the compiler's size hint
HINT = 1 << 20
_DEVICES = ("cpu", "cuda")
#: Inductor settings of the rules whose product-sums round as eager's (:class:`_EagerFMA`): the C++ compiler
#: forms the FMAs, and bfloat16/float16 intermediates round as eager does
_EAGER_FMA_INDUCTOR = {"cpp.enable_floating_point_contract_flag": "fast", "emulate_precision_casts": True}
#: compiled chunks of each (rule, code-selecting constants, input layout, device): a list of
#: (guards on the runtime hyperparameters, kernel), at most :data:`VARIANTS` per key
_kernels: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], Any]]] = {}
#: kernels per key before a group stops compiling (a hyperparameter that selects code and keeps changing)
VARIANTS = 4
#: Inductor settings for the chunks, tried in order until one passes the probe (:func:`_compile`).
#: ``size_asserts``: no per-input size/stride check at each call (:func:`_layout` admits only contiguous
#: tensors of their parameter's size, passed flat), ~15 µs a call; some releases bind the size symbols only
#: in those checks (torch 2.14: ``NameError`` at the first call), hence the second entry.
#: ``cpp.vec_isa_ok``: take the vector ISAs that /proc/cpuinfo lists instead of building and loading a probe
#: program per ISA (~8 s on a fresh cache); if the compiler then cannot build for them, the compile fails and
#: the unfused path is used (a build failure ends the ladder: the entries differ only in the wrapper).
#: ``force_pointwise_cat``: :class:`_Hoist`'s row of scalars is one small loop writing one buffer.
#: ``unroll_reductions_threshold``: the barriers (:class:`_Hoist`) are 2-element reductions, which Inductor
#: otherwise unrolls into every loop that reads them, undoing the barrier
_LADDER: tuple[dict[str, Any], ...] = (
    {"size_asserts": False, "cpp.vec_isa_ok": True, "force_pointwise_cat": True, "unroll_reductions_threshold": 1},
    {"size_asserts": True, "cpp.vec_isa_ok": True, "force_pointwise_cat": True, "unroll_reductions_threshold": 1},
)
_failed: set[str] = set()
_warned: set[str] = set()
_dummies: dict[tuple[Any, ...], list[Tensor]] = {}


# ---------------------------------------------------------------------------------- traced helpers
_ALPHA = frozenset({Tensor.add, Tensor.add_, Tensor.sub, Tensor.sub_, torch.add, torch.sub})
_VALUE = frozenset({Tensor.addcdiv, Tensor.addcdiv_, Tensor.addcmul, Tensor.addcmul_, torch.addcdiv, torch.addcmul})


class _ScalarArgs(torch.overrides.TorchFunctionMode):
    """Rewrites ``x.add_(y, alpha=a)`` / ``x.addcdiv_(y, z, value=a)`` with a non-constant ``a`` (a
    tensor, or a symbolic float) into ``x.add_(y * a)`` / ``x.addcdiv_(y * a, z)`` (``y`` first cast
    to the result's dtype where it has another, as eager computes ``a·y``)."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        key = "alpha" if func in _ALPHA else "value" if func in _VALUE else None
        if key is not None and key in kwargs and type(kwargs[key]) not in (int, float, bool):
            a = kwargs.pop(key)
            other = args[1]
            if isinstance(other, Tensor) and isinstance(args[0], Tensor) \
                    and other.dtype != (dtype := torch.result_type(args[0], other)):
                other = other.to(dtype)  # eager scales in the result's dtype (a bfloat16 y, a float32 x)
            args = (args[0], other * a, *args[2:])
        return func(*args, **kwargs)


def _fma(a: Tensor, b: Any, c: Tensor) -> Tensor:
    """``a·b + c`` as one fused multiply-add: an ``addcmul``, which Inductor emits as an FMA on CUDA and
    as ``c + a·b`` in C++, which ``-ffp-contract=fast`` (:data:`_EAGER_FMA`) makes one FMA there. The
    kernels of these rules hold no other product-sum of tensors, so the compiler has no choice of
    which product to fuse (θ(1-γλ) + γ'·O would be one: Muon's decay is in the other kernel)."""
    return torch.addcmul(c, a, b if isinstance(b, Tensor) else a.new_full((), b))


class _EagerFMA(torch.overrides.TorchFunctionMode):
    """The product-sums that ATen computes with one FMA (CPU and CUDA kernels alike), rounded so:

    * ``lerp(start, end, w)`` with a number ``w`` (``Lerp.h``): ``fma(w, end - start, start)`` for
      ``|w| < 0.5``, else ``fma(w - 1, end - start, end)``, ``w`` first rounded to float32 (Inductor's
      own decomposition takes ``-(1 - w)`` in double, another rounding of the coefficient);
    * ``x.add_(y, alpha=a)``: ``fma(y, a, x)``, ``a`` first rounded to ``x``'s dtype (as ATen's add
      kernel takes it: float32, or bfloat16/float16 for half-precision ``x``; where ``y`` is not
      contiguous, as Muon's update of a tall matrix, ATen's half-precision loop is not vectorised and
      rounds ``a·y`` and the sum to ``x``'s dtype each);
    * ``x.mul_(c)`` of a half-precision ``x`` by a 0-d tensor ``c``: in float32, ``c`` rounded to float32
      (ATen's opmath reads a 0-d CPU tensor as a scalar; the graph would round it to ``x``'s dtype).

    Float32 opmath (float32 and half-precision tensors, :func:`_fma`); float64 tensors keep Inductor's
    formulas (contracted all the same; a float64 ulp is far below anything a bfloat16 rounding notices)."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func is Tensor.add_ and set(kwargs) == {"alpha"} and len(args) == 2 and isinstance(args[1], Tensor) \
                and torch.result_type(*args) != torch.float64 and args[0].is_floating_point() \
                and (isinstance(kwargs["alpha"], (Tensor, Knob)) or args[0].dtype == torch.float32):
            x, y = args
            a = _unknob(kwargs["alpha"])
            a = a.to(x.dtype).float() if isinstance(a, Tensor) else _round32(a)
            if x.dtype != torch.float32 and not y.is_contiguous():
                return x.copy_(x.float() + (y.float() * a).to(x.dtype).float())
            return x.copy_(_fma(y.float(), a, x.float()))
        if func is Tensor.mul_ and not kwargs and len(args) == 2 and isinstance(args[1], Tensor) \
                and args[1].dim() == 0 and args[0].dtype in (torch.bfloat16, torch.float16):
            return args[0].copy_(args[0].float() * args[1].float())
        if func not in (Tensor.lerp, Tensor.lerp_, torch.lerp) or kwargs or len(args) != 3 \
                or type(args[2]) not in (int, float, Knob) or torch.result_type(*args[:2]) == torch.float64:
            return func(*args, **kwargs)
        start, end, w = args
        if isinstance(w, Knob):  # the same selection and roundings, w a runtime input (its range guarded)
            small = -0.5 < w < 0.5
            w = w.t.to(torch.float32).to(torch.float64)
            coef: Any = (w if small else w - 1).to(torch.float32)
        else:
            w = _round32(w)
            small = abs(w) < 0.5
            coef = w if small else w - 1
        a, b = start.float(), end.float()
        out = _fma(b - a, coef, a if small else b)
        if func is Tensor.lerp_:
            return start.copy_(out)
        return out.to(torch.result_type(start, end))


def _round32(x: float) -> float:
    """A Python number rounded to float32 (as ATen's float32 opmath takes a scalar)."""
    return struct.unpack("f", struct.pack("f", x))[0]


class Knob:
    """A numeric hyperparameter as a runtime input of a compiled kernel, while the rule is traced.

    ``t`` is the traced 0-d float64 tensor (an element of the kernel's hyperparameter row), ``v`` the value the
    kernel is built for, and ``fn`` how ``v`` follows from the hyperparameter ``name`` (arithmetic with Python
    numbers gives a derived Knob: ``1 - β1``). In tensor operations a Knob is its tensor, so a schedule that
    changes the value between steps reuses the kernel. A comparison with a number or a truth test (``if
    weight_decay != 0``) is answered from ``v`` and recorded in ``guards`` as (name, fn, operator, other,
    answer): the kernel serves exactly the values that answer alike. A conversion to a Python number
    (``float(x)``, ``math.sqrt(x)``) pins the value (a guard of equality).
    """

    __slots__ = ("t", "v", "name", "fn", "guards")

    def __init__(self, t: Tensor, v: float, name: str, guards: list[tuple[Any, ...]],
                 fn: Callable[[float], float] | None = None) -> None:
        self.t, self.v, self.name, self.guards = t, v, name, guards
        self.fn = fn or _same

    def _answer(self, op: Callable[[Any, Any], bool], other: Any) -> Any:
        if isinstance(other, Knob):
            other = other.pin()
        if type(other) not in (int, float, bool):
            return NotImplemented
        out = bool(op(self.v, other))
        self.guards.append((self.name, self.fn, op, other, out))
        return out

    def pin(self) -> float:
        """The value as a Python number, the kernel then specialised on it."""
        self.guards.append((self.name, self.fn, operator.eq, self.v, True))
        return self.v

    def _derive(self, o: Any, tfn: Callable[[Any, Any], Any]) -> Any:
        if type(o) not in (int, float):
            return tfn(self.t, _unknob(o))
        f = self.fn
        return Knob(tfn(self.t, o), _number(tfn, self.v, o), self.name, self.guards,
                    lambda x: _number(tfn, f(x), o))

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self._answer(operator.eq, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self._answer(operator.ne, other)

    def __lt__(self, other: Any) -> Any:
        return self._answer(operator.lt, other)

    def __le__(self, other: Any) -> Any:
        return self._answer(operator.le, other)

    def __gt__(self, other: Any) -> Any:
        return self._answer(operator.gt, other)

    def __ge__(self, other: Any) -> Any:
        return self._answer(operator.ge, other)

    def __bool__(self) -> bool:
        return self._answer(operator.ne, 0)  # type: ignore[no-any-return]

    def __float__(self) -> float:
        return float(self.pin())

    def __int__(self) -> int:
        return int(self.pin())

    __hash__ = object.__hash__

    def __neg__(self) -> Any:
        return self._derive(-1, operator.mul)

    def __abs__(self) -> Any:
        return self._derive(0, lambda x, _: abs(x))

    def __add__(self, o: Any) -> Any:
        return self._derive(o, operator.add)

    def __radd__(self, o: Any) -> Any:
        return self._derive(o, lambda x, y: y + x)

    def __sub__(self, o: Any) -> Any:
        return self._derive(o, operator.sub)

    def __rsub__(self, o: Any) -> Any:
        return self._derive(o, lambda x, y: y - x)

    def __mul__(self, o: Any) -> Any:
        return self._derive(o, operator.mul)

    def __rmul__(self, o: Any) -> Any:
        return self._derive(o, lambda x, y: y * x)

    def __truediv__(self, o: Any) -> Any:
        return self._derive(o, operator.truediv)

    def __rtruediv__(self, o: Any) -> Any:
        return self._derive(o, lambda x, y: y / x)

    def __pow__(self, o: Any) -> Any:
        return self._derive(o, operator.pow)

    def __rpow__(self, o: Any) -> Any:
        return self._derive(o, lambda x, y: y**x)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        return func(*_unknob(tuple(args)), **_unknob(kwargs or {}))


def _same(x: float) -> float:
    return x


def _number(fn: Callable[[Any, Any], Any], x: float, o: float) -> float:
    """``fn(x, o)`` on Python numbers (NaN where Python raises: a guard on it then fails to hold)."""
    try:
        out = fn(x, o)
    except (ArithmeticError, ValueError):
        return float("nan")
    return out if type(out) in (int, float) else float("nan")


def _unknob(x: Any) -> Any:
    """``x`` with every :class:`Knob` (also inside tuples, lists and dicts) replaced by its traced tensor."""
    if isinstance(x, Knob):
        return x.t
    if isinstance(x, (tuple, list)):
        return type(x)(_unknob(y) for y in x)
    if isinstance(x, dict):
        return {k: _unknob(v) for k, v in x.items()}
    return x


def _runtime(value: Any) -> bool:
    """Whether a hyperparameter value becomes a kernel input: a number (not a flag) or a 1-element tensor
    that needs no grad. Flags, None and strings select code and stay constants of the graph."""
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.requires_grad and not value.is_complex()
    return type(value) in (int, float)


def _holds(guards: tuple[Any, ...], values: dict[str, float]) -> bool:
    """Whether the values answer every recorded comparison (:class:`Knob`) as when the kernel was built."""
    return all(bool(op(fn(values[name]), other)) == out for name, fn, op, other, out in guards)


def _is_scalar(n: Any) -> bool:
    v = n.meta.get("val") if isinstance(n, torch.fx.Node) else None
    return isinstance(v, Tensor) and v.dim() == 0


class _Hoist:
    """Post-grad pass: every functional 0-d computation that depends only on inputs moves to the
    top, and the values element loops read are stacked into one float64 row per device and passed
    through a barrier, ``amax`` over two copies of the row (exact for every value, ``-0`` and NaN
    included; a reduction, which Inductor always writes to a buffer instead of inlining into its
    consumers), so each loop reads a precomputed number instead of recomputing it per vector."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag  # the compile's own settings that Inductor's cache key does not see

    def __call__(self, graph: torch.fx.Graph) -> None:
        hoisted: list[torch.fx.Node] = []
        seen: set[torch.fx.Node] = set()
        for node in graph.nodes:
            schema = getattr(node.target, "_schema", None)
            if (node.op == "call_function" and _is_scalar(node) and schema is not None and not schema.is_mutable
                    and all(a.op == "placeholder" or a in seen for a in node.all_input_nodes)):
                seen.add(node)
                hoisted.append(node)
        self._realize(graph, seen)
        self._factors(graph)
        read: dict[Any, list[torch.fx.Node]] = {}
        for node in hoisted:
            if any(u not in seen and u.op != "output" for u in node.users):
                read.setdefault(node.meta["val"].device, []).append(node)
        if not read:
            return
        anchor = [n for n in graph.nodes if n.op == "placeholder"][-1]
        for node in hoisted:
            anchor.append(node)
            anchor = node
        convert = torch.ops.prims.convert_element_type.default
        for nodes in read.values():  # one float64 row per device (float32, bool, … values convert exactly)
            rows: list[torch.fx.Node] = []
            for node in nodes:
                with graph.inserting_after(anchor):
                    anchor = graph.call_function(torch.ops.aten.unsqueeze.default, (node, 0))
                rows.append(anchor)
                if node.meta["val"].dtype != torch.float64:
                    with graph.inserting_after(anchor):
                        anchor = graph.call_function(convert, (anchor, torch.float64))
                    rows[-1] = anchor
            inner = set(rows) | {r.args[0] for r in rows}
            with graph.inserting_after(anchor):
                values = graph.call_function(torch.ops.aten.cat.default, (rows,))
            with graph.inserting_after(values):
                row = graph.call_function(torch.ops.aten.unsqueeze.default, (values, 0))
            with graph.inserting_after(row):
                pair = graph.call_function(torch.ops.aten.expand.default, (row, [2, len(rows)]))
            with graph.inserting_after(pair):
                stacked = graph.call_function(torch.ops.aten.amax.default, (pair, [0]))
            anchor = stacked
            for i, node in enumerate(nodes):
                with graph.inserting_after(anchor):
                    anchor = sel = graph.call_function(torch.ops.aten.select.int, (stacked, 0, i))
                if node.meta["val"].dtype != torch.float64:
                    with graph.inserting_after(anchor):
                        anchor = sel = graph.call_function(convert, (sel, node.meta["val"].dtype))
                for u in list(node.users):
                    if u not in seen and u not in inner and u.op != "output":
                        u.replace_input_with(node, sel)
        graph.lint()

    @staticmethod
    def _realize(graph: torch.fx.Graph, hoisted: set[torch.fx.Node]) -> None:
        """0-d math on reduction results (Adafactor's RMS(θ)-based α, its clipping factor): each such
        value that an element loop reads goes through the same barrier, so the chain behind it
        (``√``, ``pow`` of the symbolic size, divisions) runs once instead of once per vector."""
        for node in list(graph.nodes):
            schema = getattr(node.target, "_schema", None)
            if (node.op != "call_function" or node in hoisted or not _is_scalar(node) or schema is None
                    or schema.is_mutable or any(not _is_scalar(a) and isinstance(a.meta.get("val"), Tensor)
                                                for a in node.all_input_nodes)):
                continue  # (a 0-d value read straight from a tensor is a reduction: realized anyway)
            loops = [u for u in node.users if u.op == "call_function" and not _is_scalar(u)
                     and isinstance(u.meta.get("val"), Tensor)]
            if not loops:
                continue
            with graph.inserting_after(node):
                row = graph.call_function(torch.ops.aten.unsqueeze.default, (node, 0))
            with graph.inserting_after(row):
                pair = graph.call_function(torch.ops.aten.expand.default, (row, [2]))
            with graph.inserting_after(pair):
                once = graph.call_function(torch.ops.aten.amax.default, (pair, [0]))
            for u in loops:
                u.replace_input_with(node, once)

    @staticmethod
    def _factors(graph: torch.fx.Graph) -> None:
        """Computed broadcast factors (Adafactor's updated row and column moments, a size-1 dimension
        where the element loop reading them has a full one) go through the barrier as well: otherwise
        Inductor inlines the chain behind them (the moment's ``lerp`` of a norm) into the element loop
        once per element, or realizes the full-size update instead."""
        for node in list(graph.nodes):
            schema = getattr(node.target, "_schema", None)
            val = node.meta.get("val")
            if (node.op != "call_function" or schema is None or schema.is_mutable or not isinstance(val, Tensor)
                    or val.dim() == 0 or 1 not in val.shape):
                continue
            size1 = [i for i, d in enumerate(val.shape) if isinstance(d, int) and d == 1]

            def broadcasts(u: torch.fx.Node) -> bool:
                v = u.meta.get("val")
                return (u.op == "call_function" and isinstance(v, Tensor) and v.dim() == val.dim()
                        and any(not (isinstance(v.shape[i], int) and v.shape[i] == 1) for i in size1))

            loops = [u for u in node.users if broadcasts(u)]
            if not loops:
                continue
            with graph.inserting_after(node):
                row = graph.call_function(torch.ops.aten.unsqueeze.default, (node, 0))
            with graph.inserting_after(row):
                pair = graph.call_function(torch.ops.aten.expand.default, (row, [2, *val.shape]))
            with graph.inserting_after(pair):
                once = graph.call_function(torch.ops.aten.amax.default, (pair, [0]))
            for u in loops:
                u.replace_input_with(node, once)

    def uuid(self) -> str:
        return "optimlab-fused-hoist-7" + self.tag


def _chunk(fn: Callable[..., Any], spec: RuleSpec, lists: Sequence[Sequence[Any]], steps: Sequence[Tensor] | None,
           step_pos: int, scale: Tensor | None, found_inf: Tensor | None, lr: Tensor | None) -> None:
    """The traced body: ``fn`` (the rule, hyperparameters bound) on each of the chunk's slots."""
    promote = spec.promote
    if lr is not None:  # a 1-element input indexed in the graph (a 0-d CPU input would be read as a number)
        fn = functools.partial(fn, lr=lr[0])
    eager_fma = _EagerFMA() if spec.eager_fma else contextlib.nullcontext()
    with _ScalarArgs(), eager_fma:
        for i in range(len(lists[0])):
            items = [x[i] for x in lists]
            if steps is not None:
                steps[i].add_(1)  # the counters advance here (Optimizer._count leaves them to the fused path)
                if step_pos >= 0:
                    items[step_pos] = steps[i].to(torch.float64)
            # ASGD's 0-d η and μ (float32 in fused checkpoints, as torch's) are read and updated in float64
            # and stored rounded, as the for-loop's Python-number coefficients are. (Not NAdam's Π: the
            # for-loop reads it back rounded after updating it, which the rule's tensor form does.)
            stored = [(j, t) for j, t in enumerate(items) if promote and j != step_pos and isinstance(t, Tensor)
                      and t.dim() == 0 and t.dtype != torch.float64]
            for j, t in stored:
                items[j] = t.to(torch.float64)
            _slot(fn, items, step_pos, scale, found_inf, None if steps is None else steps[i])
            for j, t in stored:
                t.copy_(items[j])


def _slot(fn: Callable[..., Any], items: list[Any], step_pos: int, scale: Tensor | None, found_inf: Tensor | None,
          step: Tensor | None) -> None:
    """One slot's update, with GradScaler's unscale and inf/NaN skip folded in (``items`` keeps the
    updated values of its tensors)."""
    if found_inf is None:
        if scale is not None:
            items[1] = items[1] / scale
        fn(*items)
        return
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
    if step is not None:
        step.sub_(found_inf.to(step.dtype))


def _spec_inputs(spec: tuple[Any, ...], device: torch.device) -> list[Tensor]:
    """Example inputs of a chunk graph: slot ``i`` of every 1-D argument ``2^20 + 17i`` elements long
    (uninitialised, never touched: tracing runs on fake tensors), so that the traced sizes are one
    symbol per slot (shared by that slot's tensors, distinct between slots) and the compiler's size
    hints are those of a large parameter (Inductor parallelises its loops by them); 0-d arguments
    and the extras (steps, scale, found_inf, lr) as they come."""
    kinds, step_dtype, scale, found_inf, lr, slots, knobs = spec
    out = [torch.empty(_example_shape(k, i, kinds[0][1]), dtype=k[0], device=device)
           for k in kinds if k is not None for i in range(slots)]
    if step_dtype is not None:
        out += [torch.ones((), dtype=step_dtype, device=device) for _ in range(slots)]
    out += [torch.ones((), dtype=torch.float32, device=device) for flag in (scale, found_inf) if flag]
    if lr:
        out.append(torch.ones(1, dtype=lr, device=device))
    out += [torch.ones(1, dtype=torch.float64, device=device) for _ in knobs]  # (1 element: no size symbol)
    return out


def _probe_inputs(spec: tuple[Any, ...], device: torch.device, values: dict[str, float],
                  gen: torch.Generator) -> list[Tensor]:
    """Small real inputs of a chunk graph for :func:`_probe`: slot ``i`` of every 1-D argument ``5 + 3i``
    elements (a shaped one ``3 + i + d`` for parameter dimension ``d``, as stored: :func:`_example_shape`),
    state uniform in [0.1, 1.1) (non-negative, as second moments are), gradients standard normal, counters
    at 3, scale 2, no inf, lr 1e-2, the runtime hyperparameters at the values the kernel is built for."""
    kinds, step_dtype, scale, found_inf, lr, slots, knobs = spec
    out: list[Tensor] = []
    for j, k in enumerate(kinds):
        if k is None:
            continue
        for i in range(slots):
            form = k[1]
            shape = () if form == 0 and k[0] != torch.float64 else (1,) if form == 0 else (5 + 3 * i,) \
                if form == 1 else tuple(1 if d < 0 else 3 + i + d for d in form)
            x = torch.randn(shape, generator=gen, dtype=torch.float64) if j == 1 else \
                torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1
            out.append(x.to(device=device, dtype=k[0]))
    if step_dtype is not None:
        out += [torch.full((), 3.0, dtype=step_dtype, device=device) for _ in range(slots)]
    if scale:
        out.append(torch.full((), 2.0, dtype=torch.float32, device=device))
    if found_inf:
        out.append(torch.zeros((), dtype=torch.float32, device=device))
    if lr:
        out.append(torch.full((1,), 1e-2, dtype=lr, device=device))
    out += [torch.full((1,), values[k], dtype=torch.float64, device=device) for k in knobs]
    return out


def _example_shape(kind: tuple[Any, Any], slot: int, param_form: Any) -> tuple[int, ...]:
    """A tensor's example shape (as passed, :func:`_stored`) by its kind's form: 0 (0-d; a float64
    one as 1 element), 1 (flat, ``HINT + 17·slot``) or a shape pattern (:func:`_pattern`: parameter
    dimension ``d`` ↦ ``HINT^(1/k) + 17·slot + 3d`` for a parameter with k dimensions above 1, -1 ↦ 1),
    so every (slot, dimension) is its own size symbol."""
    form = kind[1]
    if form == 0:
        return (1,) if kind[0] == torch.float64 else ()
    if form == 1:
        return (HINT + 17 * slot,)
    dims = sum(d >= 0 for d in param_form)
    base = max(2, round(HINT ** (1 / max(dims, 1))))
    return tuple(1 if d < 0 else base + 17 * slot + 3 * d for d in form)


def _compile(rule: Callable[..., Any], consts: dict[str, Any], values: dict[str, float], spec: tuple[Any, ...],
             step_pos: int, device: torch.device) -> tuple[tuple[Any, ...], _Direct]:
    """``_chunk(rule, …)`` over flat tensor inputs (laid out by ``spec``), traced by ``make_fx`` with symbolic
    sizes and compiled by Inductor; returns the guards on the runtime hyperparameters (:class:`Knob`) and the
    kernel. Each Inductor setting of :data:`_LADDER` is tried until a kernel reproduces the eager chunk body
    on a probe (:func:`_probe`); none: raises (the caller falls back to the unfused path). The kernel is called
    directly afterwards, with no Dynamo frame or guards: the caller keys it by everything it specialises on.

    A trace that branched on a size (a guard such as ``s0 % 16 == 0``, true only of the example) is refused:
    the graph must hold for every size."""
    kinds, step_dtype, scale, found_inf, lr, slots, knobs = spec
    rule_spec = spec_of(rule)

    def body(guards: list[tuple[Any, ...]]) -> Callable[..., tuple[()]]:
        def flat_body(*flat: Tensor) -> tuple[()]:
            it = iter(flat)
            lists = [[_unstored(next(it), k) for _ in range(slots)] if k is not None else [None] * slots
                     for k in kinds]
            steps = [next(it) for _ in range(slots)] if step_dtype is not None else None
            s = next(it) if scale else None
            f = next(it) if found_inf else None
            lr_t = next(it) if lr else None
            hyper = {**consts, **{k: Knob(next(it)[0], values[k], k, guards) for k in knobs}}
            _chunk(functools.partial(rule, **hyper), rule_spec, lists, steps, step_pos, s, f, lr_t)
            return ()
        return flat_body

    errors: list[str] = []
    for config in _LADDER:
        guards: list[tuple[Any, ...]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the compiler's own deprecation notices are not the user's business
            gm, fakes, size_guards = _compat.trace_symbolic(body(guards), _spec_inputs(spec, device))
            if size_guards:
                raise RuntimeError(f"{rule.__name__}: its traced update depends on the sizes "
                                   f"({', '.join(size_guards[:3])})")
            try:
                wide = rule_spec.wide_tiles and device.type == "cpu"
                full = _compat.compile_graph(gm, fakes, {
                    "post_grad_custom_post_pass": _compat.graph_pass(_Hoist("-wide" if wide else "")), **config,
                    **(_EAGER_FMA_INDUCTOR if rule_spec.eager_fma else {}),
                    **_compat.known_settings(rule_spec.inductor)}, wide_tiles=wide)
            except Exception as err:  # noqa: BLE001 - nothing builds here (the settings differ only past the build)
                raise RuntimeError(f"{rule.__name__}: {type(err).__name__}: "
                                   f"{str(err).splitlines()[0] if str(err) else ''}") from err
        kernel = _Direct(full)
        problem = _probe(kernel, body([]), spec, device, values)
        if problem is None:
            return tuple(dict.fromkeys(guards)), kernel
        errors.append(problem)
    raise RuntimeError(f"{rule.__name__}: no compiled kernel reproduced the rule ({'; '.join(errors)})")


#: tolerance of the probe by dtype: (rtol, atol). The compiled kernel contracts products into FMAs and
#: hoists scalar math, so it differs from the eager body in the last bits; a wrong kernel differs in all
_PROBE_TOL = {torch.float64: (1e-9, 1e-12), torch.float32: (1e-4, 1e-5), torch.bfloat16: (3e-2, 1e-2),
              torch.float16: (3e-3, 1e-3)}


def _probe(kernel: _Direct, body: Callable[..., Any], spec: tuple[Any, ...], device: torch.device,
           values: dict[str, float]) -> str | None:
    """Run a new kernel once on small real inputs (:func:`_probe_inputs`) through Inductor's public wrapper,
    then through each faster call path it offers (the generated ``call`` directly, :class:`_Bound`), against
    the eager chunk body on the same inputs. A path that raises or disagrees is not used: the wrapper's
    failure returns the reason (the kernel is not trusted); a faster path's only switches it off."""
    gen = torch.Generator().manual_seed(0)
    ref_in = _probe_inputs(spec, device, values, gen)
    want = [t.clone() for t in ref_in]
    body(*want)

    def run(call: Callable[[list[Tensor]], Any]) -> str | None:
        got = [t.clone() for t in ref_in]
        try:
            call(got)
        except Exception as err:  # noqa: BLE001 - any failure means: not this path
            return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        for a, b in zip(got, want, strict=True):
            rtol, atol = _PROBE_TOL.get(b.dtype, (0.0, 0.0))
            if a.shape != b.shape or not torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                return "the compiled kernel disagrees with the rule on a probe"
        return None

    problem = run(lambda xs: kernel.full(*xs))
    if problem is not None:
        return problem
    kernel.enable_direct()
    if kernel.call is not None and run(lambda xs: kernel(*xs)) is not None:
        kernel.call = None
    if kernel.call is not None:
        def bound(xs: list[Tensor]) -> None:
            b = kernel.bind(xs)
            if not b:
                raise RuntimeError("no bound caller")
            b(list(xs))
        kernel.bindable = run(bound) is None
    return None


class _Direct:
    """A compiled chunk called through Inductor's generated ``call`` itself after its first call.

    ``compile_fx`` returns that code behind Dynamo's disable context, AOTAutograd's runtime wrapper and the
    compiled graph's own ``__call__`` (about 6 µs a call on this machine's CPU, most of a chunk's dispatch
    on small tensors). For a graph like ours (no outputs, input mutations kept in the graph, no
    autograd, no CUDA graphs) what those layers do per call is to bump the version counters of the
    mutated inputs, which :meth:`__call__` does itself, so autograd still sees the in-place update.
    Where the generated code cannot be found (another torch), or it did not reproduce the rule on the probe
    (:func:`_probe`), every call goes through the full wrapper."""

    __slots__ = ("full", "graph", "call", "mutated", "bindable")

    def __init__(self, full: Callable[..., Any]) -> None:
        self.full = full
        self.graph = _compat.compiled_graph(full) if _compat.has_increment_version() else None
        self.call: Callable[[list[Any]], Any] | None = None
        self.mutated: tuple[int, ...] = ()
        #: whether :meth:`bind` callers reproduced the rule on the probe
        self.bindable = False

    def enable_direct(self) -> None:
        """From now on, call the generated code as the wrappers call it (after a first call through them)."""
        if self.graph is not None:
            self.mutated = tuple(sorted(self.graph.mutated_input_idxs))
            self.call = self.graph.current_callable

    def __call__(self, *args: Any) -> None:
        call = self.call
        if call is not None:
            call(list(args))
            _compat.increment_version([args[i] for i in self.mutated])
            return
        self.full(*args)

    def bind(self, args: list[Any]) -> _Bound | None:
        """A :class:`_Bound` caller for a chunk that is called with ``args`` at every call (the same
        objects and sizes, except at positions refilled per call with tensors of the same layout), or
        None where the generated ``call`` does anything but allocate small buffers and run C++
        kernels (Triton launches, extern kernels, views) or cannot be found. It is recorded by running
        ``call`` once with stand-ins for the kernels (nothing is computed)."""
        call = self.call
        func = getattr(call, "__func__", None)
        code = getattr(func, "__code__", None)
        if code is None or code.co_freevars or not hasattr(call, "__self__"):
            return None
        env = dict(func.__globals__)
        kernels = {n for n in code.co_names if n.startswith("cpp_fused")
                   and type(env.get(n)).__name__ == "builtin_function_or_method"}
        if not kernels or not set(code.co_names) <= _BIND_NAMES | kernels or "empty_strided_cpu" not in env:
            return None
        bufs: list[Tensor] = []
        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        empty = env["empty_strided_cpu"]

        def alloc(*a: Any) -> Tensor:
            bufs.append(empty(*a))
            return bufs[-1]

        def recorder(kernel: Callable[..., Any]) -> Callable[..., None]:
            return lambda *a: calls.append((kernel, a))

        env.update({n: recorder(env[n]) for n in kernels}, empty_strided_cpu=alloc)
        env.update({n: _no_check for n in _CHECKS if n in env})  # checks of the recording's own arguments
        try:
            types.FunctionType(code, env)(call.__self__, list(args))
        except Exception:  # noqa: BLE001 - not the code this was written for: keep calling it
            return None
        if any(b.numel() > _BIND_SCRATCH for b in bufs):
            return None
        where: dict[int, list[int]] = {}
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                where.setdefault(id(a), []).append(i)
        consts: list[Any] = list(bufs)
        at = {id(b): len(args) + k for k, b in enumerate(bufs)}
        picked = []
        for kernel, a in calls:
            pos = []
            for x in a:
                if isinstance(x, Tensor):
                    i = where.get(id(x), at.get(id(x)))
                    if i is None or isinstance(i, list) and len(i) != 1:
                        return None
                    pos.append(i[0] if isinstance(i, list) else i)
                elif isinstance(x, (int, float)):  # sizes of this chunk's tensors
                    pos.append(len(args) + len(consts))
                    consts.append(x)
                else:
                    return None
            picked.append((kernel, _picker(pos)))
        return _Bound(picked, consts, _picker(list(self.mutated)) if self.mutated else None)


#: global names a generated CPU ``call`` may use for :meth:`_Direct.bind` (besides its C++ kernels)
#: the size and stride checks a generated ``call`` may make (``size_asserts``): a bound chunk's arguments keep the
#: layout its plan checked (:class:`_Plan`), so they are not repeated per call
_CHECKS = frozenset({"assert_size_stride", "assert_size_stride_grouped", "assert_alignment"})
_BIND_NAMES = frozenset({"clear", "size", "stride", "empty_strided_cpu", "torch", "float16", "bfloat16", "float32",
                         "float64", "bool", "int32", "int64", "uint8"}) | _CHECKS
#: the largest scratch buffer (elements) a bound chunk keeps between calls
_BIND_SCRATCH = 1 << 12


def _no_check(*args: Any, **kwargs: Any) -> None:
    return None


class _Bound:
    """One chunk's generated C++ kernels called straight from its flat argument list: each kernel's
    arguments picked from (the list, the chunk's scratch buffers, its sizes), then the version
    counters of the mutated inputs bumped, as :class:`_Direct` does. What Inductor's ``call`` does
    besides — unpack the list, read each size, allocate its 0-d and row buffers, drop the names —
    is done once, when the chunk is planned (~3 µs of the ~5 µs a small chunk's call costs here)."""

    __slots__ = ("kernels", "consts", "mutated")

    def __init__(self, kernels: list[tuple[Callable[..., Any], Callable[[list[Any]], tuple[Any, ...]]]],
                 consts: list[Any], mutated: Callable[[list[Any]], tuple[Tensor, ...]] | None) -> None:
        self.kernels, self.consts, self.mutated = kernels, consts, mutated

    def __call__(self, args: list[Any]) -> None:
        full = args + self.consts
        for kernel, pick in self.kernels:
            kernel(*pick(full))
        if self.mutated is not None:
            _compat.increment_version(self.mutated(full))


def _picker(positions: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """``lambda xs: tuple(xs[i] for i in positions)``, in C."""
    get = operator.itemgetter(*positions)
    return get if len(positions) > 1 else lambda xs: (get(xs),)


# ------------------------------------------------------------------------------------- dispatch
_IS_CPU, _IS_CUDA = operator.attrgetter("is_cpu"), operator.attrgetter("is_cuda")
_DTYPE = operator.attrgetter("dtype")


def active(group: dict[str, Any], params: Sequence[Tensor] | None = None) -> bool:
    """Whether ``group`` takes the compiled path now (fused, eager caller, supported device)."""
    if not group.get("fused") or torch.compiler.is_compiling():
        return False
    ps = group["params"] if params is None else params
    # plain tensors only: a tensor subclass (FSDP2's DTensor) has no storage of its own to alias flat
    if not all(map(PLAIN.__contains__, map(type, ps))):  # (map: the loop runs in C)
        return False
    if all(map(_IS_CPU, ps)):  # the common cases without building device objects
        return "cpu" not in _failed
    if all(map(_IS_CUDA, ps)):
        return "cuda" not in _failed
    return all(p.device.type in _DEVICES and p.device.type not in _failed for p in ps)


def _dummy(kinds: tuple[Any, ...], step_dtype: Any, slot: int, device: torch.device) -> list[Any]:
    """The private stand-ins for an empty slot: a 2-element (or 0-d) tensor per tensor argument, and a
    step counter (last)."""
    key = (kinds, step_dtype, slot, device)
    if key not in _dummies:
        _dummies[key] = [torch.ones(_dummy_shape(k), dtype=k[0], device=device) if k else None for k in kinds]
        _dummies[key].append(None if step_dtype is None else torch.ones((), dtype=step_dtype, device=device))
    return _dummies[key]


def _dummy_shape(kind: tuple[Any, Any]) -> tuple[int, ...]:
    form = kind[1]
    if form == 0:
        return (1,) if kind[0] == torch.float64 else ()
    return (2,) if form == 1 else tuple(1 if d < 0 else 2 for d in form)


def _warn_once(device: str, err: BaseException) -> None:
    if device not in _warned:
        _warned.add(device)
        warnings.warn(f"fused=True could not compile the update on {device} ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''}); using the unfused path instead",
                      RuntimeWarning, stacklevel=4)


def _eager(rule: Callable[..., Any], items: list[Any], step_pos: int, hyper: dict[str, Any],
           call_hyper: dict[str, Any], steps: Tensor | None, scale: Tensor | None, found_inf: Tensor | None,
           lr: Tensor | None) -> None:
    """One parameter that the chunks cannot take, by the chunks' own body (:func:`_chunk`) run eagerly:
    the same formulas, and no host reads (the counter advanced, GradScaler's unscale and skip kept, on
    the device). A sparse gradient goes to the unfused rule instead (the host reads ``found_inf``; on
    inf/NaN nothing changes, the counter included)."""
    if not items[1].is_sparse:
        fn = functools.partial(rule, **{k: _key_value(v) for k, v in call_hyper.items()})
        _chunk(fn, spec_of(rule), [[x] for x in items], None if steps is None else [steps], step_pos, scale,
               found_inf, lr)
        return
    if found_inf is not None and float(found_inf) != 0.0:
        return
    if steps is not None:
        steps += 1
        if step_pos >= 0:
            items[step_pos] = steps.item()  # the unfused rule's Python-number step
    if scale is not None:
        items[1].div_(scale.to(items[1].device))
    rule(*items, **hyper)


def _key_value(v: Any) -> Any:
    """A hyperparameter as part of a kernel's cache key (a plain tensor hyperparameter by its value)."""
    return float(v) if isinstance(v, Tensor) else v


class _Recompiling(RuntimeError):
    """A kernel key that already has :data:`VARIANTS` kernels would need another."""


def _kernel(rule: Callable[..., Any], consts: dict[str, Any], values: dict[str, float], spec: tuple[Any, ...],
            step_pos: int, device: torch.device) -> tuple[tuple[Any, ...], _Direct]:
    """The compiled chunk of ``rule`` for these constants, this input layout and runtime hyperparameter
    values answering its guards alike (built on first use), with its guards."""
    key = (rule, tuple(sorted(consts.items())), spec, device)
    variants = _kernels.get(key, [])
    for guards, kernel in variants:
        if _holds(guards, values):
            return guards, kernel
    if len(variants) >= VARIANTS:
        names = sorted({g[0] for guards, _ in variants for g in guards})
        raise _Recompiling(f"{rule.__name__}: {len(variants)} kernels were compiled because "
                           f"{', '.join(names) or 'a hyperparameter'} keeps taking values that select other code")
    guards, kernel = _compile(rule, consts, values, spec, step_pos, device)
    _kernels.setdefault(key, []).append((guards, kernel))
    return guards, kernel


def _pattern(t: Tensor, p: Tensor) -> tuple[int, ...] | None:
    """``t``'s shape in terms of parameter ``p``'s: per dimension the index of the matching dimension
    of ``p`` or -1 for a size-1 dimension (``p``'s own size-1 dimensions included, so that the graph
    may specialise on them); None when neither fits. A ``t`` of ``p``'s shape that is a permuted view
    of a contiguous tensor (Muon's update of a tall matrix: the transposed Newton–Schulz result)
    gets that permutation instead: it is passed as the contiguous tensor and permuted back in the
    graph (:func:`_stored`, :func:`_unstored`)."""
    if t.dim() != p.dim():
        return None
    if not t.is_contiguous():
        perm = tuple(sorted(range(t.dim()), key=lambda k: -t.stride(k)))
        ok = t is not p and t.shape == p.shape and 1 not in t.shape and t.permute(perm).is_contiguous()
        return perm if ok else None
    out = []
    for k, (n, m) in enumerate(zip(t.shape, p.shape, strict=True)):
        if n == 1:
            out.append(-1)
        elif n == m:
            out.append(k)
        else:
            return None
    return tuple(out)


def _layout(items: Sequence[Any], step_pos: int, shaped: bool) -> tuple[Any, ...] | None:
    """A parameter's argument kinds: (dtype, form) per tensor, with form 0 (0-d), 1 (passed flat:
    contiguous, the parameter's size) or, for a ``shaped`` rule, a shape pattern (:func:`_pattern`;
    contiguous, or a permuted view of a contiguous tensor); None for a None argument. None when the
    chunks cannot take the parameter (fewer than 2 elements, sparse, another per-parameter value,
    another layout)."""
    p = items[0]
    if p.numel() < 2:
        return None
    kinds: list[Any] = []
    for j, t in enumerate(items):
        if j == step_pos or t is None:
            kinds.append(None)
        elif not isinstance(t, Tensor) or t.is_sparse or not (t.is_contiguous() or shaped):
            return None
        elif t.dim() == 0:
            kinds.append((t.dtype, 0))
        elif not shaped and t.numel() == p.numel():
            kinds.append((t.dtype, 1))
        elif shaped and (form := _pattern(t, p)) is not None:
            kinds.append((t.dtype, form))
        else:
            return None
    return tuple(kinds)


def _flat(t: Tensor) -> Tensor:
    """A contiguous tensor as 1-D (itself if it is)."""
    return t if t.dim() == 1 else t.view(-1)


def _permutation(form: Any) -> bool:
    """Whether a shape pattern is a permutation other than the identity (:func:`_pattern`)."""
    return isinstance(form, tuple) and sorted(form) == list(range(len(form))) and list(form) != sorted(form)


def _stored(t: Tensor, kind: tuple[Any, Any]) -> Tensor:
    """The tensor a chunk is passed for ``t`` of this kind (:func:`_layout`): flat (form 1); a 0-d
    float64 tensor as 1 element (make_fx traces a 0-d float64 CPU input as a Python float, which
    Inductor then fails to compile; Muon's per-parameter lr ratio); the contiguous tensor that a
    permuted ``t`` views; else ``t`` itself."""
    form = kind[1]
    if form == 1:
        return _flat(t)
    if form == 0:
        return t.view(1) if kind[0] == torch.float64 else t
    return t.permute(form) if _permutation(form) else t


def _unstored(t: Tensor, kind: tuple[Any, Any]) -> Tensor:
    """Inverse of :func:`_stored` inside the graph (flat stays flat): the rule sees the argument's shape."""
    form = kind[1]
    if form == 0:
        return t[0] if kind[0] == torch.float64 else t
    return t.permute(sorted(range(len(form)), key=form.__getitem__)) if _permutation(form) else t


@functools.cache
def _arg_names(rule: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(rule).parameters)


class _HostRow:
    """A float64 row on ``device`` fed from a Python ``array`` (``torch.frombuffer`` shares its memory): writing
    new values costs no tensor allocation on the CPU, one small copy elsewhere; ``views`` are its 1-element
    slices, the kernels' inputs."""

    __slots__ = ("host", "data", "row", "views")

    def __init__(self, n: int, device: torch.device) -> None:
        self.host = array.array("d", bytes(8 * n))
        self.data = torch.frombuffer(self.host, dtype=torch.float64)
        self.row = self.data if device.type == "cpu" else torch.zeros(n, dtype=torch.float64, device=device)
        self.views = [self.row[i:i + 1] for i in range(n)]

    def write(self, values: Sequence[float]) -> None:
        self.host[:] = array.array("d", values)
        if self.row is not self.data:  # (staged before the call returns: the host array may change after)
            self.row.copy_(self.data, non_blocking=True)


class _Plan:
    """One group's compiled calls, kept across steps while nothing they were built from changes: the kernel
    and flat argument list of every chunk, with the gradient positions to fill in each step.

    Valid while every list other than the gradients holds the same objects (:meth:`fits`: the parameters
    by identity and storage, the state by identity; ``load_state_dict`` and new state give new tensors),
    the optimizer's ``state`` is the same dict with the same step counters, and each gradient is
    contiguous with the planned dtype and size. Anything else builds a new plan."""

    __slots__ = ("key", "refs", "ptrs", "state", "steps", "step_dicts", "calls", "grads", "rest", "guards", "row")

    def __init__(self, key: tuple[Any, ...], lists: Sequence[Sequence[Any]], state: Any,
                 step_dicts: list[dict[str, Any]] | None, steps: list[Tensor] | None) -> None:
        self.key = key
        self.refs = [tuple(x) for j, x in enumerate(lists) if j != 1]
        self.ptrs = [p.data_ptr() for p in lists[0]]
        self.state, self.step_dicts, self.steps = state, step_dicts, steps
        #: per chunk: [kernel, flat arguments with the gradient entries None, [(position, parameter, kind)],
        #: its :class:`_Bound` caller (None: not tried yet; False: none)]
        self.calls: list[list[Any]] = []
        #: the dtype, size and contiguity of each gradient (plain and dense: :func:`_layout` checked)
        grads = lists[1]
        self.grads = (list(map(_DTYPE, grads)), list(map(Tensor.numel, grads)), list(map(Tensor.is_contiguous, grads)))
        self.rest: list[int] = []
        #: the guards of its kernels on the runtime hyperparameters (:class:`Knob`)
        self.guards: tuple[Any, ...] = ()
        #: the last hyperparameter row passed, with its values
        self.row: tuple[tuple[float, ...], Any] = ((), None)

    def row_for(self, values: dict[str, float], knobs: tuple[str, ...], device: torch.device) -> list[Tensor]:
        """The kernels' hyperparameter inputs for these values: 1-element views of one float64 row, kept
        with the plan and rewritten in place when the values change (a schedule: no allocation per step)."""
        now = tuple(values[k] for k in knobs)
        if now != self.row[0]:
            if not self.row[0] and now:
                self.row = (now, _HostRow(len(now), device))
            self.row[1].write(now)
            self.row = (now, self.row[1])
        return self.row[1].views if now else []

    def fits(self, key: tuple[Any, ...], lists: Sequence[Sequence[Any]], state: Any) -> bool:
        if key != self.key or state is not self.state:
            return False
        refs = iter(self.refs)
        for j, x in enumerate(lists):
            if j != 1:
                ref = next(refs)
                if len(x) != len(ref) or not all(map(operator.is_, x, ref)):
                    return False
        if list(map(Tensor.data_ptr, lists[0])) != self.ptrs:  # ``p.data = …`` (Module.to, …) swaps the storage
            return False
        if self.step_dicts is not None and not all(
                map(operator.is_, map(dict.get, self.step_dicts, repeat("step")), self.steps)):  # type: ignore[arg-type]
            return False
        grads = lists[1]  # as planned: plain, dense, of the same dtypes, sizes and contiguity
        return (all(map(PLAIN.__contains__, map(type, grads))) and list(map(_DTYPE, grads)) == self.grads[0]
                and list(map(Tensor.numel, grads)) == self.grads[1]
                and list(map(Tensor.is_contiguous, grads)) == self.grads[2])


#: the plans of each optimizer's groups, by ``(id(group), rule)`` (dropped with the optimizer)
_plans: weakref.WeakKeyDictionary[Any, dict[tuple[int, Any], _Plan]] = weakref.WeakKeyDictionary()
#: groups (by ``(id(group), rule)``) whose hyperparameters kept selecting new code: they run the chunk body
#: eagerly (:func:`_eager`), warned once (dropped with the optimizer)
_gave_up: weakref.WeakKeyDictionary[Any, set[tuple[int, Any]]] = weakref.WeakKeyDictionary()


def apply(opt: Any, rule: Callable[..., Any], group: dict[str, Any], lists: Sequence[Sequence[Any]],
          hyper: dict[str, Any]) -> None:
    """Run ``rule(*items, **hyper)`` over ``lists`` (parameters first, gradients second, as
    :meth:`Optimizer._apply` passes them) in compiled chunks, honouring GradScaler's contract.

    Numeric hyperparameters (:func:`_runtime`) enter the kernels as one float64 row, so schedules of any of
    them reuse the kernels; flags select the kernel. A failure of a kernel's call leaves the parameters it
    did not update to the eager chunk body in the same step (each parameter updated exactly once) and
    switches the device to the unfused path, warning once."""
    spec = spec_of(rule)
    names = _arg_names(rule)
    step_pos = names.index("step") if "step" in names else -1
    device = lists[0][0].device
    scale, found_inf = getattr(opt, "grad_scale", None), getattr(opt, "found_inf", None)
    if not getattr(opt, "_step_supports_amp_scaling", False):  # GradScaler unscales and skips on the host
        scale = found_inf = None
    scale = None if scale is None else scale.to(device)
    found_inf = None if found_inf is None else found_inf.to(device)
    call_hyper = {**hyper, **spec.overrides}
    lr = call_hyper.pop("lr", None)
    if lr is not None:
        own = isinstance(lr, Tensor) and spec.own_lr_dtype and lr.is_floating_point()
        lr = (lr.detach().reshape(1).to(device=device, dtype=lr.dtype if own else torch.float64, copy=True)
              if isinstance(lr, Tensor) else torch.tensor([lr], dtype=torch.float64, device=device))

    def eager(idx: Sequence[int], steps: Sequence[Tensor | None]) -> None:
        for i, st in zip(idx, steps, strict=True):
            _eager(rule, [x[i] for x in lists], step_pos, hyper, call_hyper, st, scale, found_inf, lr)

    gave_up = _gave_up.setdefault(opt, set())
    if (spec.once is not None and all(call_hyper.get(k) == v for k, v in spec.once.items())) \
            or (id(group), rule) in gave_up:
        st = [_state_of(opt, p).get("step") for p in lists[0]]
        eager(range(len(lists[0])), [t if isinstance(t, Tensor) else None for t in st])
        return
    knobs = tuple(sorted(k for k, v in call_hyper.items() if _runtime(v)))
    values = {k: float(call_hyper[k]) for k in knobs}  # (a tensor hyperparameter: one host read)
    consts = {k: v for k, v in call_hyper.items() if k not in values}
    key = (rule, tuple(sorted((k, _key_value(v)) for k, v in consts.items())), knobs, scale is not None,
           found_inf is not None, None if lr is None else lr.dtype, device)
    plans = _plans.setdefault(opt, {})
    plan = plans.get((id(group), rule))
    if plan is None or not plan.fits(key, lists, opt.state) or not _holds(plan.guards, values):
        try:
            plan = plans[id(group), rule] = _build(opt, rule, lists, consts, values, key, step_pos)
        except _Recompiling as err:
            gave_up.add((id(group), rule))
            warnings.warn(f"fused=True: {err}; this parameter group now runs the rule uncompiled (same results, "
                          "slower). Keep code-selecting values (e.g. zero or non-zero weight decay) fixed to stay "
                          "compiled", RuntimeWarning, stacklevel=4)
            return apply(opt, rule, group, lists, hyper)
    row = plan.row_for(values, knobs, device)
    grads = lists[1]
    extras = [t for t in (scale, found_inf, lr) if t is not None] + row
    for n, chunk in enumerate(plan.calls):
        kernel, template, fill, bound = chunk
        args = template.copy()
        for pos, i, how in fill:  # None: as it is; True: flat; else its kind (:func:`_stored`)
            g = grads[i]
            args[pos] = g if how is None else g.view(-1) if how is True else _stored(g, how)
        args += extras
        try:
            if bound:
                bound(args)
                continue
            kernel(*args)
        except Exception as err:  # noqa: BLE001 - fail closed: the rest of this step eagerly, then unfused
            _failed.add(device.type)
            _warn_once(device.type, err)
            plans.pop((id(group), rule), None)
            left = [i for c in plan.calls[n:] for _, i, _ in c[2]] + plan.rest
            eager(left, [None if plan.steps is None else plan.steps[i] for i in left])
            return
        if bound is None:  # bind once, where the probe trusted it
            chunk[3] = (kernel.bindable and kernel.bind(args)) or False
    eager(plan.rest, [None if plan.steps is None else plan.steps[i] for i in plan.rest])


def _state_of(opt: Any, p: Tensor) -> dict[str, Any]:
    """``p``'s state (no new entry), or its base parameter's where ``p`` is a view (the blocked views of
    :mod:`._lowp`)."""
    st = opt.state.get(p)
    if st is None and p._base is not None:
        st = opt.state.get(p._base)
    return st or {}


def _build(opt: Any, rule: Callable[..., Any], lists: Sequence[Sequence[Any]], consts: dict[str, Any],
           values: dict[str, float], key: tuple[Any, ...], step_pos: int) -> _Plan:
    """A group's :class:`_Plan`: each parameter's layout (:func:`_layout`), the parameters of one layout in
    chunks of the rule's slot count, each chunk's flat arguments, and the parameters left to the eager rule."""
    _, _, knobs, with_scale, with_found_inf, lr_dtype, device = key
    spec = spec_of(rule)
    name = rule.__name__
    params = lists[0]
    step_dicts = [_state_of(opt, p) for p in params]  # no new entries
    state_steps: list[Tensor] | None = [d.get("step") for d in step_dicts]  # type: ignore[misc]
    if not all(isinstance(t, Tensor) for t in state_steps):  # type: ignore[union-attr]
        state_steps = None
        if step_pos >= 0:  # a rule that reads the step needs the counters
            raise RuntimeError(f"{name}: fused step needs tensor step counters")
    plan = _Plan(key, lists, opt.state, None if state_steps is None else step_dicts, state_steps)
    call_lists = [list(x) for x in lists]
    names = _arg_names(rule)
    for arg in spec.none_args:
        call_lists[names.index(arg)] = [None] * len(params)
    by: dict[tuple[Any, ...], list[int]] = {}
    for i, items in enumerate(zip(*call_lists, strict=True)):
        kinds = _layout(items, step_pos, spec.shaped)
        if kinds is None:
            plan.rest.append(i)
        else:
            by.setdefault((kinds, None if state_steps is None else state_steps[i].dtype), []).append(i)
    todo = list(by.items())
    guards: dict[Any, None] = {}
    for n, ((kinds, step_dtype), idx) in enumerate(todo):
        slots = spec.slots or SLOTS
        chunk_spec = (kinds, step_dtype, with_scale, with_found_inf, lr_dtype, slots, knobs)
        try:
            found, kernel = _kernel(rule, consts, values, chunk_spec, step_pos, device)
        except _Recompiling:
            raise
        except Exception as err:  # noqa: BLE001 - any compiler failure: warn once, run unfused
            _failed.add(device.type)
            _warn_once(device.type, err)
            plan.rest.extend(i for _, later in todo[n:] for i in later)
            break
        guards.update(dict.fromkeys(found))
        for c in range(0, len(idx), slots):
            sel = idx[c:c + slots]
            dummies = [_dummy(kinds, step_dtype, slot, device) for slot in range(len(sel), slots)]
            flat: list[Any] = []
            fill: list[tuple[int, int, Any]] = []
            for j, k in enumerate(kinds):
                if k is None:
                    continue
                for i in sel:
                    if j == 1:  # the gradients: filled in at each step
                        how = (None if params[i].dim() == 1 else True) if k[1] == 1 else k
                        fill.append((len(flat), i, how))
                        flat.append(None)
                    else:
                        flat.append(_stored(call_lists[j][i], k))
                flat += [d[j] for d in dummies]
            if state_steps is not None:
                flat += [state_steps[i] for i in sel]
                flat += [d[-1] for d in dummies]
            plan.calls.append([kernel, flat, fill, None])
    plan.guards = tuple(guards)
    return plan


def check_init(opt: Any, fused: bool | None, foreach: bool | None, differentiable: bool, amp: bool = True) -> None:
    """Constructor checks for ``fused=True`` where torch has no fused variant, as torch makes them for
    its own fused optimizers; GradScaler then hands over ``grad_scale``/``found_inf`` (unless not
    ``amp``: then GradScaler unscales the gradients and skips inf/NaN steps itself, as for an unfused
    optimizer)."""
    if not fused:
        return
    if differentiable:
        raise RuntimeError("`fused` does not support `differentiable`")
    if foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    opt._step_supports_amp_scaling = amp
