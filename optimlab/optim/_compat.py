"""Every use of torch's private internals by the optimizers, in one place, each behind feature detection.

``torch._inductor``, ``torch._guards``, ``torch._C``, ``make_fx`` and the optimizer base's private hooks move
between releases without notice. Nothing here is imported at ``import optimlab``: the compiler pieces load on
the first ``fused=True`` build. Where a piece is missing, the function says so (None, False or an exception
the caller turns into a fallback), and every eager path goes on without it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["capture_health_check", "compile_graph", "compiled_graph", "graph_pass", "increment_version",
           "trace_symbolic"]


def capture_health_check(opt: Any) -> None:
    """torch's check that a capturable optimizer is not stepped in a CUDA graph it was not built for (a
    private method of the base class; absent: nothing to check)."""
    check = getattr(opt, "_accelerator_graph_capture_health_check", None) or getattr(
        opt, "_cuda_graph_capture_health_check", None)
    if check is not None:
        check()


@functools.cache
def _increment() -> Callable[[Sequence[Tensor]], None] | None:
    return getattr(getattr(torch, "_C", None), "_increment_version", None)


def increment_version(tensors: Sequence[Tensor]) -> bool:
    """Bump autograd's version counters of tensors written outside ATen (a compiled kernel called
    directly); False where torch offers no way (then the caller must go through the public wrapper)."""
    inc = _increment()
    if inc is None:
        return False
    inc(list(tensors))
    return True


def has_increment_version() -> bool:
    """Whether :func:`increment_version` can bump version counters on this torch."""
    return _increment() is not None


def trace_symbolic(fn: Callable[..., Any], example: Sequence[Tensor]) -> tuple[Any, list[Any], list[str]]:
    """``fn`` traced by ``make_fx`` with symbolic sizes: the graph module, its fake placeholder values and the
    guards the trace put on the sizes (as strings). Raises where the tracer or its shape environment is not
    where it was: a graph whose size guards cannot be read must not be trusted for every size."""
    from torch.fx.experimental.proxy_tensor import make_fx

    gm = make_fx(fn, tracing_mode="symbolic")(*example)
    shape_env = getattr(gm, "shape_env", None)
    guards = getattr(shape_env, "guards", None)
    if shape_env is None or guards is None:
        raise RuntimeError("this torch's make_fx keeps no readable shape environment")
    del gm.shape_env  # unpicklable: it would keep the graph out of Inductor's on-disk cache
    fakes = [n.meta["val"] for n in gm.graph.nodes if n.op == "placeholder"]
    return gm, fakes, [str(g.expr) for g in guards]


def graph_pass(logic: Any) -> Any:
    """An Inductor post-grad pass object that runs ``logic(graph)`` and identifies itself by ``logic.uuid()``
    (Inductor's ``CustomGraphPass``, so that its on-disk cache keys on the pass)."""
    from torch._inductor.custom_graph_pass import CustomGraphPass

    class _Pass(CustomGraphPass):
        def __call__(self, graph: torch.fx.Graph) -> None:
            logic(graph)

        def uuid(self) -> str:
            return logic.uuid()

    return _Pass()


def known_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Inductor settings this torch has (optional tuning: a setting a release renamed is left out)."""
    if not settings:
        return {}
    from torch._inductor import config as inductor_config

    return {k: v for k, v in settings.items() if hasattr(inductor_config, k)}


def compile_graph(gm: Any, fakes: list[Any], config: dict[str, Any], wide_tiles: bool = False) -> Callable[..., Any]:
    """Inductor's compilation of a traced graph under ``config`` (Inductor settings), called as
    ``compiled(*tensors)``; ``wide_tiles``: under :func:`wide_lowp_tiles`."""
    import torch._guards as guards
    from torch._inductor import config as inductor_config
    from torch._inductor.compile_fx import compile_fx

    with guards.tracing(guards.TracingContext(fakes[0].fake_mode)), inductor_config.patch(**config), \
            (wide_lowp_tiles() if wide_tiles else contextlib.nullcontext()):
        return compile_fx(gm, fakes)


@contextlib.contextmanager
def wide_lowp_tiles() -> Iterator[None]:
    """Inductor's CPU code generation, for the compiles inside, as low-precision kernels need it:

    * a loop that moves bfloat16/float16 or 8-bit values anywhere is tiled 16 elements wide (two float32
      vectors, one full bfloat16 vector on AVX2). Inductor does so only when every statement is 16-bit, so one
      float32-only statement (a parameter's update beside its bfloat16 moments) makes every 16-bit load and
      store a half vector (8-bit ones a quarter) moved through a stack buffer;
    * a float32 ↔ int32 reinterpretation (``view(dtype)``) of a vector is a register cast, where Inductor
      copies it element by element through two stack buffers;
    * an integer load of a whole tile is one plain load (a full vector, or a half or quarter one into the low
      lanes), where ATen's counted integer ``loadu`` fills a stack buffer and reloads it (a stalled
      store-to-load forward per vector).

    Where this torch's code generator is not as expected, it is left as it is."""
    try:
        from torch._inductor.codegen import cpp
        select, lowp_of = cpp.TilingSelect.select_tiling, cpp.get_loop_body_lowp_fp
        get_bodies, dtypes_of = cpp._get_loop_body, cpp._get_dtype_from_loopbodies
        bitcast = cpp.CppVecOverrides.to_dtype_bitcast
        kernel_of = cpp.V
        load_line = cpp.CppVecKernel._get_vec_load_line
    except (ImportError, AttributeError):
        yield
        return

    def select_tiling(self: Any, fn_list: Any, var_sizes_list: Any) -> Any:
        try:
            bodies = get_bodies(fn_list)
            found = {lowp_of(body)[0] for body in bodies} - {None}
            if not found and dtypes_of(bodies) & {torch.int8, torch.uint8}:
                found = {torch.bfloat16}  # 16 wide, as for bfloat16
        except Exception:  # noqa: BLE001 - an unexpected loop body: Inductor's own choice
            found = set()
        if len(found) != 1:
            return select(self, fn_list, var_sizes_list)
        dtype = found.pop()
        cpp.get_loop_body_lowp_fp = lambda body: (lowp_of(body)[0] or dtype, lowp_of(body)[1])
        try:
            return select(self, fn_list, var_sizes_list)
        finally:
            cpp.get_loop_body_lowp_fp = lowp_of

    words = {torch.float32: "float", torch.int32: "int32_t"}

    def to_dtype_bitcast(x: Any, dtype: torch.dtype, src_dtype: torch.dtype) -> Any:
        n = None
        if dtype in words and src_dtype in words and dtype != src_dtype and getattr(x, "is_vec", False):
            n = kernel_of.kernel._get_num_vectors(src_dtype)
        if n == 1:
            return f"at::vec::cast<{words[dtype]}>({x})"
        if n == 2:
            return (f"at::vec::VectorizedN<{words[dtype]},2>(at::vec::cast<{words[dtype]}>({x}[0]), "
                    f"at::vec::cast<{words[dtype]}>({x}[1]))")
        return bitcast(x, dtype, src_dtype)

    integers = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)

    def vec_load_line(self: Any, var: str, index: Any, dtype: torch.dtype, load_mask: Any = None) -> str:
        nbytes = self.tiling_factor * dtype.itemsize
        if (dtype not in integers or load_mask is not None or self.tail_size
                or self._get_num_vectors(dtype) != 1 or nbytes * 8 > self.vec_isa.bit_width()):
            return load_line(self, var, index, dtype, load_mask)
        vec = self._get_vec_type(dtype)
        at = f"{var} + {cpp.cexpr_index(index)}" if index != 0 else var
        if nbytes * 8 == self.vec_isa.bit_width():
            return f"{vec}::loadu({at})"
        # into the low lanes (the conversions that follow read no others), by the ISA's own narrower load
        half = {("avx2", 16): ("_mm256_castsi128_si256", "_mm_loadu_si128", "__m128i"),
                ("avx512", 16): ("_mm512_castsi128_si512", "_mm_loadu_si128", "__m128i"),
                ("avx512", 32): ("_mm512_castsi256_si512", "_mm256_loadu_si256", "__m256i")}.get((str(self.vec_isa),
                                                                                                 nbytes))
        if half is None:
            return load_line(self, var, index, dtype, load_mask)
        widen, load, part = half
        return f"{vec}({widen}({load}(reinterpret_cast<const {part}*>({at}))))"

    cpp.TilingSelect.select_tiling = select_tiling
    cpp.CppVecOverrides.to_dtype_bitcast = staticmethod(to_dtype_bitcast)
    cpp.CppVecKernel._get_vec_load_line = vec_load_line
    try:
        yield
    finally:
        cpp.TilingSelect.select_tiling = select
        cpp.CppVecOverrides.to_dtype_bitcast = staticmethod(bitcast)
        cpp.CppVecKernel._get_vec_load_line = load_line


def compiled_graph(fn: Any) -> Any:
    """The compiled graph object behind ``compile_fx``'s callable (searched through closures and
    ``__wrapped__``) when it exposes its generated ``call`` (``current_callable``) and the indices of the inputs
    it mutates and uses no CUDA graphs; else None (then every call goes through the public wrapper)."""
    try:
        from torch._inductor.output_code import CompiledFxGraph
    except ImportError:
        return None
    todo, seen = [fn], set()
    while todo and len(seen) < 64:
        f = todo.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        if isinstance(f, CompiledFxGraph):
            ok = (callable(getattr(f, "current_callable", None)) and not getattr(f, "cudagraph_info", None)
                  and hasattr(getattr(f, "mutated_input_idxs", None), "__iter__"))
            return f if ok else None
        todo.append(getattr(f, "__wrapped__", None))
        for cell in getattr(f, "__closure__", None) or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
    return None
