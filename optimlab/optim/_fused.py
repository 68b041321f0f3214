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
* **Changing scalars are tensors.** ``step`` (the state counters themselves, advanced inside the
  kernel) and ``lr`` enter as tensors, so schedules and steps never recompile; the rule then takes
  its tensor-step branch. The other hyperparameters and flags are constants of the graph.
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
runs the rule eagerly. Where compiling fails (no C++ compiler, an unsupported device or op) the
step warns once and falls back to the unfused path, with the same results within the fused
tolerance. Under an outer ``torch.compile`` the rule runs inline, for the outer graph to fuse.
"""

from __future__ import annotations

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

from ._many import PLAIN

__all__ = ["SLOTS", "active", "apply"]

#: parameters per compiled call
SLOTS = int(os.environ.get("OPTIMLAB_FUSED_SLOTS", "8"))
#: elements per traced slot: the compiler's size hint
HINT = 1 << 20
_DEVICES = ("cpu", "cuda")
#: per-rule keyword overrides selecting the rule's on-device (capturable) formulas
_OVERRIDES: dict[str, dict[str, Any]] = {"nadam_rule": {"tensor_math": True}}
#: per-parameter scalar arguments that the fused call passes as None (capturable branch)
_NONE_ARGS: dict[str, tuple[str, ...]] = {"asgd_rule": ("eta", "mu")}
#: rules that reduce over a parameter's dimensions: their tensors keep their shapes (no flattening)
_SHAPED = frozenset({"adafactor_rule", "muon_update_rule"})
#: parameters per compiled call where not ``SLOTS``: the rules whose slot compiles slowest. Cold first
#: step on the GPT-2-mini set (2 cores, empty cache, 2026-12-04): NAdam 10.2 s with 8 slots, 5.2 s
#: with 2; RAdam 10.6 s / 5.3 s; Adafactor (four reductions per slot) 10.6 s with 2, 7.6 s with 1;
#: Muon (its 16 hidden matrices) 14.3 s with 8 for both rules, 7.6 s with 2. A call costs ~12 µs:
#: the steps measured no slower (NAdam 13.9 vs 14.1 ms, RAdam 13.9 vs 14.0, Adafactor 32.6 vs 34.1)
_SLOTS: dict[str, int] = {"adafactor_rule": 1, "muon_momentum_rule": 2, "muon_update_rule": 2,
                          "nadam_rule": 2, "radam_rule": 2}
#: constants of a rule's calls that run once per parameter in an optimizer's life (SGD's first momentum
#: step, which seeds the buffer with the gradient): such a call runs the chunks' body eagerly
#: (:func:`_eager`) instead of compiling a graph for one step. Cold, the GPT-2-mini set's first two SGD
#: steps compiled two graphs, 5.7 s + 3.0 s (2 cores, 2026-12-06); now one.
_ONCE: dict[str, dict[str, Any]] = {"sgd_rule": {"first": True}}
#: rules whose 0-d state tensors are computed on in float64 (see :func:`_chunk`)
_PROMOTE = frozenset({"asgd_rule"})
#: rules whose ``lerp`` and ``add_(…, alpha=)`` must round as eager's (:class:`_EagerFMA`). Muon: its
#: momentum feeds a bfloat16 rounding (the Newton–Schulz input), where one float32 ulp of difference
#: flips a bfloat16 ulp (2^-8) now and then; with real gradients an ulp in the parameters does the
#: same a step later (measured: past the fused float32 row within 10 steps either way). Their
#: kernels are compiled with ``-ffp-contract=fast`` (the C++ compiler forms the FMAs) and round every
#: bfloat16/float16 intermediate as eager does (``emulate_precision_casts``). (An earlier version
#: computed each FMA exactly in float64 instead: bit for bit as well, but Inductor's float32↔float64
#: vector conversions made the kernels 3-6x slower than eager's ops.)
_EAGER_FMA = frozenset({"muon_momentum_rule", "muon_update_rule"})
#: rules whose scalar math on a tensor lr is done in the lr's dtype, as eager's tensor arithmetic
#: (the others compute it in float64, rounded once)
_OWN_LR_DTYPE = frozenset({"muon_momentum_rule", "muon_update_rule"})
_EAGER_FMA_INDUCTOR = {"cpp.enable_floating_point_contract_flag": "fast", "emulate_precision_casts": True}

#: compiled chunks by (rule, constant hyperparameters, input layout, device)
_kernels: dict[tuple[Any, ...], Callable[..., Any]] = {}
#: Inductor settings for the chunks. ``size_asserts``: no per-input size/stride check at each call
#: (:func:`_layout` admits only contiguous tensors of their parameter's size, passed flat), ~15 µs a
#: call. ``cpp.vec_isa_ok``: take the vector ISAs that /proc/cpuinfo lists instead of building and
#: loading a probe program per ISA (~8 s on a fresh cache, ~1.4 s per process after); if the
#: compiler then cannot build for them, the compile fails and fused=True falls back (warning once).
#: ``force_pointwise_cat``: :class:`_Hoist`'s row of scalars is one small loop writing one buffer; Inductor's
#: CPU default (a copy into a view per value) costs a ``reinterpret_tensor`` per value per call.
#: ``unroll_reductions_threshold``: the barriers (:class:`_Hoist`) are 2-element reductions, which Inductor
#: otherwise unrolls into every loop that reads them, undoing the barrier: each element loop but the first
#: of a chunk recomputed the row's selection chain per vector (SGD's chunk: 3,000 lines of C++, 900
#: without), and Adafactor's factors their ``lerp`` of a norm (its embedding: 42.7 -> 26 ms a step)
_INDUCTOR: dict[str, Any] = {"size_asserts": False, "cpp.vec_isa_ok": True, "force_pointwise_cat": True,
                            "unroll_reductions_threshold": 1}
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
                and (isinstance(kwargs["alpha"], Tensor) or args[0].dtype == torch.float32):
            x, y = args
            a = kwargs["alpha"]
            a = a.to(x.dtype).float() if isinstance(a, Tensor) else _round32(a)
            if x.dtype != torch.float32 and not y.is_contiguous():
                return x.copy_(x.float() + (y.float() * a).to(x.dtype).float())
            return x.copy_(_fma(y.float(), a, x.float()))
        if func is Tensor.mul_ and not kwargs and len(args) == 2 and isinstance(args[1], Tensor) \
                and args[1].dim() == 0 and args[0].dtype in (torch.bfloat16, torch.float16):
            return args[0].copy_(args[0].float() * args[1].float())
        if func not in (Tensor.lerp, Tensor.lerp_, torch.lerp) or kwargs or len(args) != 3 \
                or type(args[2]) not in (int, float) or torch.result_type(*args[:2]) == torch.float64:
            return func(*args, **kwargs)
        start, end, w = args
        w = _round32(w)
        small = abs(w) < 0.5
        a, b = start.float(), end.float()
        out = _fma(b - a, w if small else w - 1, a if small else b)
        if func is Tensor.lerp_:
            return start.copy_(out)
        return out.to(torch.result_type(start, end))


def _round32(x: float) -> float:
    """A Python number rounded to float32 (as ATen's float32 opmath takes a scalar)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _is_scalar(n: Any) -> bool:
    v = n.meta.get("val") if isinstance(n, torch.fx.Node) else None
    return isinstance(v, Tensor) and v.dim() == 0


class _Hoist(torch._inductor.custom_graph_pass.CustomGraphPass):
    """Post-grad pass: every functional 0-d computation that depends only on inputs moves to the
    top, and the values element loops read are stacked into one float64 row per device and passed
    through a barrier, ``amax`` over two copies of the row (exact for every value, ``-0`` and NaN
    included; a reduction, which Inductor always writes to a buffer instead of inlining into its
    consumers), so each loop reads a precomputed number instead of recomputing it per vector."""

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
        return "optimlab-fused-hoist-7"


def _chunk(fn: Callable[..., Any], lists: Sequence[Sequence[Any]], steps: Sequence[Tensor] | None,
           step_pos: int, scale: Tensor | None, found_inf: Tensor | None, lr: Tensor | None) -> None:
    """The traced body: ``fn`` (the rule, constant hyperparameters bound) on each of the chunk's slots."""
    promote = fn.func.__name__ in _PROMOTE
    if lr is not None:  # a 1-element input indexed in the graph (a 0-d CPU input would be read as a number)
        fn = functools.partial(fn, lr=lr[0])
    eager_fma = _EagerFMA() if fn.func.__name__ in _EAGER_FMA else contextlib.nullcontext()
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
    kinds, step_dtype, scale, found_inf, lr, slots = spec
    out = [torch.empty(_example_shape(k, i, kinds[0][1]), dtype=k[0], device=device)
           for k in kinds if k is not None for i in range(slots)]
    if step_dtype is not None:
        out += [torch.ones((), dtype=step_dtype, device=device) for _ in range(slots)]
    out += [torch.ones((), dtype=torch.float32, device=device) for flag in (scale, found_inf) if flag]
    if lr:
        out.append(torch.ones(1, dtype=lr, device=device))
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


def _check_guards(fn: Callable[..., Any], shape_env: Any) -> None:
    """The chunk graph is called without guards, so it must hold for every size: a rule whose trace
    branched on a size (a guard such as ``s0 % 16 == 0``, true only of the example) is refused here,
    and ``fused=True`` falls back to the unfused path (warning once) instead of computing wrong values."""
    guards = [str(g.expr) for g in getattr(shape_env, "guards", ())]
    if guards:
        raise RuntimeError(f"{fn.func.__name__}: its traced update depends on the sizes ({', '.join(guards[:3])})")


def _compile(fn: Callable[..., Any], spec: tuple[Any, ...], step_pos: int, device: torch.device) -> Callable[..., Any]:
    """``_chunk(fn, …)`` over flat tensor inputs (laid out by ``spec``): traced once by ``make_fx`` with
    symbolic sizes and compiled by Inductor. The result is called directly, with no Dynamo frame or
    guards in between: :func:`apply` keys it by everything the graph specializes on."""
    kinds, step_dtype, scale, found_inf, lr, slots = spec

    def flat_body(*flat: Tensor) -> tuple[()]:
        it = iter(flat)
        lists = [[_unstored(next(it), k) for _ in range(slots)] if k is not None else [None] * slots
                 for k in kinds]
        steps = [next(it) for _ in range(slots)] if step_dtype is not None else None
        s = next(it) if scale else None
        f = next(it) if found_inf else None
        _chunk(fn, lists, steps, step_pos, s, f, next(it) if lr else None)
        return ()

    example = _spec_inputs(spec, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the compiler's own deprecation notices are not the user's business
        from torch._inductor.compile_fx import compile_fx
        from torch.fx.experimental.proxy_tensor import make_fx

        gm = make_fx(flat_body, tracing_mode="symbolic")(*example)
        fakes = [n.meta["val"] for n in gm.graph.nodes if n.op == "placeholder"]
        if hasattr(gm, "shape_env"):
            _check_guards(fn, gm.shape_env)
            del gm.shape_env  # unpicklable: it would keep the graph out of Inductor's on-disk cache
        with torch._guards.tracing(torch._guards.TracingContext(fakes[0].fake_mode)), \
                torch._inductor.config.patch(post_grad_custom_post_pass=_Hoist(), **_INDUCTOR,
                                             **(_EAGER_FMA_INDUCTOR if fn.func.__name__ in _EAGER_FMA else {})):
            return _Direct(compile_fx(gm, fakes))


class _Direct:
    """A compiled chunk called through Inductor's generated ``call`` itself after its first call.

    ``compile_fx`` returns that code behind Dynamo's disable context, AOTAutograd's runtime wrapper and the
    compiled graph's own ``__call__`` (about 6 µs a call on this machine's CPU, most of a chunk's dispatch
    on small tensors). For a graph like ours (no outputs, input mutations kept in the graph, no
    autograd, no CUDA graphs) what those layers do per call is to bump the version counters of the
    mutated inputs, which :meth:`__call__` does itself, so autograd still sees the in-place update.
    Where the generated code cannot be found (another torch), every call goes through the full wrapper."""

    __slots__ = ("full", "graph", "call", "mutated")

    def __init__(self, full: Callable[..., Any]) -> None:
        self.full = full
        self.graph = _compiled_graph(full)
        self.call: Callable[[list[Any]], Any] | None = None
        self.mutated: tuple[int, ...] = ()

    def __call__(self, *args: Any) -> None:
        call = self.call
        if call is not None:
            call(list(args))
            torch._C._increment_version([args[i] for i in self.mutated])
            return
        self.full(*args)  # the first call (and every call where the generated code was not found)
        if self.graph is not None:  # from now on, the generated code as the wrappers call it
            self.mutated = tuple(sorted(self.graph.mutated_input_idxs))
            self.call = self.graph.current_callable

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
_BIND_NAMES = frozenset({"clear", "size", "stride", "empty_strided_cpu", "torch", "float16", "bfloat16", "float32",
                         "float64", "bool", "int32", "int64", "uint8"})
#: the largest scratch buffer (elements) a bound chunk keeps between calls
_BIND_SCRATCH = 1 << 12


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
            torch._C._increment_version(self.mutated(full))


def _picker(positions: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """``lambda xs: tuple(xs[i] for i in positions)``, in C."""
    get = operator.itemgetter(*positions)
    return get if len(positions) > 1 else lambda xs: (get(xs),)


def _compiled_graph(fn: Any) -> Any:
    """The ``CompiledFxGraph`` behind ``compile_fx``'s callable (searched through closures and
    ``__wrapped__``), or None."""
    from torch._inductor.output_code import CompiledFxGraph

    todo, seen = [fn], set()
    while todo and len(seen) < 64:
        f = todo.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        if isinstance(f, CompiledFxGraph):
            direct = callable(getattr(f, "current_callable", None)) and not getattr(f, "cudagraph_info", None)
            return f if direct else None
        todo.append(getattr(f, "__wrapped__", None))
        for cell in getattr(f, "__closure__", None) or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
    return None


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
        _chunk(fn, [[x] for x in items], None if steps is None else [steps], step_pos, scale, found_inf, lr)
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


def _kernel(rule: Callable[..., Any], hyper: dict[str, Any], spec: tuple[Any, ...], step_pos: int,
            device: torch.device) -> Callable[..., Any]:
    """The compiled chunk of ``rule`` for these constants and this input layout (built on first use)."""
    consts = {k: _key_value(v) for k, v in hyper.items()}
    key = (rule.__name__, tuple(sorted(consts.items())), spec, device)
    kernel = _kernels.get(key)
    if kernel is None:
        kernel = _kernels[key] = _compile(functools.partial(rule, **consts), spec, step_pos, device)
    return kernel


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


class _Plan:
    """One group's compiled calls, kept across steps while nothing they were built from changes: the kernel
    and flat argument list of every chunk, with the gradient positions to fill in each step.

    Valid while every list other than the gradients holds the same objects (:meth:`fits`: the parameters
    by identity and storage, the state by identity; ``load_state_dict`` and new state give new tensors),
    the optimizer's ``state`` is the same dict with the same step counters, and each gradient is
    contiguous with the planned dtype and size. Anything else builds a new plan."""

    __slots__ = ("key", "refs", "ptrs", "state", "steps", "step_dicts", "calls", "grads", "rest")

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


#: the plans of each optimizer's groups, by ``(id(group), rule name)`` (dropped with the optimizer)
_plans: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], _Plan]] = weakref.WeakKeyDictionary()


def apply(opt: Any, rule: Callable[..., Any], group: dict[str, Any], lists: Sequence[Sequence[Any]],
          hyper: dict[str, Any]) -> None:
    """Run ``rule(*items, **hyper)`` over ``lists`` (parameters first, gradients second, as
    :meth:`Optimizer._apply` passes them) in compiled chunks, honouring GradScaler's contract."""
    name = rule.__name__
    names = _arg_names(rule)
    step_pos = names.index("step") if "step" in names else -1
    device = lists[0][0].device
    scale, found_inf = getattr(opt, "grad_scale", None), getattr(opt, "found_inf", None)
    if not getattr(opt, "_step_supports_amp_scaling", False):  # GradScaler unscales and skips on the host
        scale = found_inf = None
    scale = None if scale is None else scale.to(device)
    found_inf = None if found_inf is None else found_inf.to(device)
    call_hyper = {**hyper, **_OVERRIDES.get(name, {})}
    lr = call_hyper.pop("lr", None)
    if lr is not None:
        own = isinstance(lr, Tensor) and name in _OWN_LR_DTYPE and lr.is_floating_point()
        lr = (lr.detach().reshape(1).to(device=device, dtype=lr.dtype if own else torch.float64, copy=True)
              if isinstance(lr, Tensor) else torch.tensor([lr], dtype=torch.float64, device=device))
    once = _ONCE.get(name)
    if once is not None and all(call_hyper.get(k) == v for k, v in once.items()):
        for i, p in enumerate(lists[0]):
            steps = opt.state.get(p, {}).get("step")
            _eager(rule, [x[i] for x in lists], step_pos, hyper, call_hyper,
                   steps if isinstance(steps, Tensor) else None, scale, found_inf, lr)
        return
    consts = tuple(sorted((k, _key_value(v)) for k, v in call_hyper.items()))
    key = (name, consts, scale is not None, found_inf is not None, None if lr is None else lr.dtype, device)
    plans = _plans.setdefault(opt, {})
    plan = plans.get((id(group), name))
    if plan is None or not plan.fits(key, lists, opt.state):
        plan = plans[id(group), name] = _build(opt, rule, lists, call_hyper, key, step_pos)
    grads = lists[1]
    extras = [t for t in (scale, found_inf, lr) if t is not None]
    for chunk in plan.calls:
        kernel, template, fill, bound = chunk
        args = template.copy()
        for pos, i, how in fill:  # None: as it is; True: flat; else its kind (:func:`_stored`)
            g = grads[i]
            args[pos] = g if how is None else g.view(-1) if how is True else _stored(g, how)
        args += extras
        if bound:
            bound(args)
            continue
        kernel(*args)
        if bound is None and getattr(kernel, "call", None) is not None:  # after its first call: bind once
            chunk[3] = kernel.bind(args) or False
    for i in plan.rest:
        _eager(rule, [x[i] for x in lists], step_pos, hyper, call_hyper, None if plan.steps is None else plan.steps[i],
               scale, found_inf, lr)


def _build(opt: Any, rule: Callable[..., Any], lists: Sequence[Sequence[Any]], call_hyper: dict[str, Any],
           key: tuple[Any, ...], step_pos: int) -> _Plan:
    """A group's :class:`_Plan`: each parameter's layout (:func:`_layout`), the parameters of one layout in
    chunks of the rule's slot count, each chunk's flat arguments, and the parameters left to the eager rule."""
    name, _, with_scale, with_found_inf, lr_dtype, device = key
    params = lists[0]
    step_dicts = [opt.state.get(p, {}) for p in params]  # no new entries
    state_steps: list[Tensor] | None = [d.get("step") for d in step_dicts]  # type: ignore[misc]
    if not all(isinstance(t, Tensor) for t in state_steps):  # type: ignore[union-attr]
        state_steps = None
        if step_pos >= 0:  # a rule that reads the step needs the counters
            raise RuntimeError(f"{name}: fused step needs tensor step counters")
    plan = _Plan(key, lists, opt.state, None if state_steps is None else step_dicts, state_steps)
    call_lists = [list(x) for x in lists]
    names = _arg_names(rule)
    for arg in _NONE_ARGS.get(name, ()):
        call_lists[names.index(arg)] = [None] * len(params)
    by: dict[tuple[Any, ...], list[int]] = {}
    for i, items in enumerate(zip(*call_lists, strict=True)):
        kinds = _layout(items, step_pos, name in _SHAPED)
        if kinds is None:
            plan.rest.append(i)
        else:
            by.setdefault((kinds, None if state_steps is None else state_steps[i].dtype), []).append(i)
    todo = list(by.items())
    for n, ((kinds, step_dtype), idx) in enumerate(todo):
        slots = _SLOTS.get(name, SLOTS)
        spec = (kinds, step_dtype, with_scale, with_found_inf, lr_dtype, slots)
        try:
            kernel = _kernel(rule, call_hyper, spec, step_pos, device)
        except Exception as err:  # noqa: BLE001 - any compiler failure: warn once, run unfused
            _failed.add(device.type)
            _warn_once(device.type, err)
            plan.rest.extend(i for _, later in todo[n:] for i in later)
            break
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
