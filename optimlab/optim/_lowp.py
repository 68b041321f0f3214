"""Low-precision optimizer state (``state_dtype=``) and bfloat16 parameters (``param_rounding=``): the one
quantise/dequantise layer.

An algorithm's rule is not touched. :func:`wrap` turns it into a rule over the *stored* tensors: it loads each
compact state tensor as float32, runs the rule, and stores the results back, so the per-tensor path and the
compiled ``fused=True`` path (:mod:`._fused` traces the wrapped rule like any other) run the same code.

Storage, per state tensor that the algorithm names in ``_lowp_state`` (``True``: signed, a first moment;
``False``: non-negative, a second moment), for parameters with at least :data:`MIN_NUMEL` elements:

* ``"bfloat16"``: the tensor in bfloat16, stored with **stochastic rounding**: x's float32 bits plus 16 random
  bits, truncated, so E[round(x)] = x and small updates are not lost.
* ``"int8"`` (contiguous parameters whose size is a multiple of :data:`BLOCK`): **block-wise 8-bit codes** with
  one float32 scale per block of :data:`BLOCK` elements, the block's absolute maximum a (Dettmers et al. 2022).
  The code map is a companding power law, evaluated in closed form in the kernel (no table lookup):
  signed, ``x = a · c·|c| / 127²`` for ``c ∈ [-127, 127]`` (int8); non-negative, ``x = a · (c / 255)⁴`` for
  ``c ∈ [0, 255]`` (uint8), and a positive x never stores as 0 (its code is at least 1), so a second moment
  never vanishes under its first. Relative precision is finest near a and coarser toward 0, as in the dynamic
  map; quantisation is to the nearest code. The scales are ``<name>_absmax``.

Random bits come from a counter-based hash of (element index, a per-parameter 64-bit counter): the counter is
the state's ``rounding_seed`` (drawn from torch's default generator when the state is created, advanced every
step), so two runs with the same ``torch.manual_seed`` are identical and a checkpoint resumes the sequence.

``param_rounding`` (bfloat16/float16 parameters): the rule updates a float32 copy, stored back to the parameter
to the nearest value (``"nearest"``), stochastically (``"stochastic"``), or with a compensation buffer
``param_comp`` holding what rounding lost (``"kahan"``, Zamirai et al. 2020).
"""

from __future__ import annotations

import functools
import inspect
import operator
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ._rule import spec_of

__all__ = ["BLOCK", "MIN_NUMEL", "fp32_state_dict", "options"]

#: elements per int8 block (one float32 scale each)
BLOCK = 256
#: parameters smaller than this keep full-precision state (biases, norms)
MIN_NUMEL = 4096
_STATE_DTYPES = {None: None, torch.bfloat16: "bfloat16", "bfloat16": "bfloat16", "bf16": "bfloat16",
                 "int8": "int8", torch.int8: "int8"}
_ROUNDINGS = (None, "nearest", "stochastic", "kahan")
#: the group keys of the options (present only when set)
KEYS = ("state_dtype", "param_rounding")
_CODES = (torch.int8, torch.uint8)
_PLAIN = (Tensor, torch.nn.Parameter)
_M32 = 0xFFFFFFFF
_HASH = 0x45D9F3B
_RECOMPUTE = {"realize_reads_threshold": 1 << 12, "realize_opcount_threshold": 1 << 14,
              "realize_acc_reads_threshold": 1 << 12}  # (< 2**31: products of 32-bit values stay inside int64)


def options(state_dtype: Any, param_rounding: str | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """The group keys for the constructor's low-precision options (none when both are off, so the defaults and
    checkpoints stay torch's). Not with ``differentiable=True`` (the stored state has no gradient to carry)."""
    if state_dtype not in _STATE_DTYPES:
        raise ValueError(f"Invalid state_dtype: {state_dtype!r} (expected None, torch.bfloat16 or 'int8')")
    if param_rounding not in _ROUNDINGS:
        raise ValueError(f"Invalid param_rounding: {param_rounding!r} (expected one of {list(_ROUNDINGS)})")
    if (state_dtype is not None or param_rounding is not None) and defaults.get("differentiable"):
        raise ValueError("state_dtype/param_rounding do not support differentiable=True")
    out: dict[str, Any] = {}
    if state_dtype is not None:
        out["state_dtype"] = _STATE_DTYPES[state_dtype]
    if param_rounding is not None:
        out["param_rounding"] = param_rounding
    return out


def enabled(group: dict[str, Any]) -> bool:
    return group.get("state_dtype") is not None or group.get("param_rounding") is not None


def _low_param(p: Tensor) -> bool:
    return p.dtype in (torch.bfloat16, torch.float16)


def _int8_ok(p: Tensor) -> bool:
    """int8 blocks need a plain contiguous tensor of whole blocks (a DTensor shard's blocks would not line up
    with its global layout: sharded parameters take bfloat16 state instead)."""
    return type(p) in _PLAIN and p.is_contiguous() and p.numel() % BLOCK == 0


def _local(t: Any) -> Any:
    """A DTensor's local shard (the rule then runs on plain tensors, in place on the shard); else ``t``."""
    return t.to_local() if isinstance(t, Tensor) and type(t) not in _PLAIN and hasattr(t, "to_local") else t


# ------------------------------------------------------------------------------------------- state layout
def base_seed(opt: Any) -> int:
    """The optimizer's stochastic-rounding seed: ``torch.initial_seed()`` when it was built (or unpickled)."""
    seed = opt.__dict__.get("_lowp_seed")
    if seed is None:
        seed = opt._lowp_seed = 0 if torch.compiler.is_compiling() else torch.initial_seed()
    return seed


def compact(st: dict[str, Any], p: Tensor, group: dict[str, Any], kinds: dict[str, bool], index: int,
            seed: int) -> None:
    """Turn ``p``'s full-precision state tensors named in ``kinds`` into the group's storage (in place in
    ``st``), add the rounding counter (seeded by ``p``'s ``index`` among the optimizer's parameters) and the
    Kahan buffer where needed. Already compact tensors stay."""
    if not enabled(group) or p.is_complex() or not p.is_floating_point():
        return
    mode = group.get("state_dtype")
    stochastic = False
    if mode is not None and p.numel() >= MIN_NUMEL:
        for key, signed in kinds.items():
            t = st.get(key)
            if not isinstance(t, Tensor) or t.dim() == 0 or t.dtype in _CODES or t.dtype == torch.bfloat16 \
                    or t.shape != p.shape:
                continue
            if mode == "int8" and _int8_ok(p):
                st[key], st[key + "_absmax"] = quantize(t.reshape(-1, BLOCK).float(), signed)
                st[key] = st[key].view(p.shape)
                st[key + "_absmax"] = st[key + "_absmax"].view(-1)
            elif mode == "bfloat16" or mode == "int8" and (_low_param(p) or type(p) not in _PLAIN):
                st[key] = t.to(torch.bfloat16)
                stochastic = True
    rounding = group.get("param_rounding") if _low_param(p) else None
    if rounding == "kahan" and "param_comp" not in st:
        st["param_comp"] = torch.zeros_like(p)
    if (stochastic or rounding == "stochastic") and "rounding_seed" not in st:
        # from torch.manual_seed's seed and the parameter's position, without drawing from (moving) the generator
        mixed = (seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) % 2**62
        st["rounding_seed"] = torch.tensor(mixed, dtype=torch.int64, device=p.device)


class _Expanded:
    """One group's stored-state argument lists, kept while the parameters (object and storage) and state
    tensors are the same objects (new views each step would make :mod:`._fused` re-plan every step)."""

    __slots__ = ("refs", "ptrs", "blocked", "lists", "rule", "sharded", "low", "plain")

    def __init__(self, refs: list[tuple[Any, ...]], ptrs: list[int], blocked: list[bool], lists: list[list[Any]],
                 rule: Callable[..., Any], low: list[int], plain: list[int]) -> None:
        self.refs, self.ptrs, self.blocked, self.lists, self.rule = refs, ptrs, blocked, lists, rule
        #: the parameters with stored state, counters or Kahan buffers (the wrapped rule), and the others
        self.low, self.plain = low, plain
        #: some parameter is a tensor subclass (FSDP2's DTensor): the rule runs on local shards
        self.sharded = any(type(p) not in _PLAIN for p in lists[0])

    def fits(self, refs: list[tuple[Any, ...]], params: Sequence[Tensor]) -> bool:
        return (len(refs) == len(self.refs) and all(len(a) == len(b) and all(map(operator.is_, a, b))
                                                    for a, b in zip(refs, self.refs, strict=True))
                and [p.data_ptr() for p in params] == self.ptrs)


_expanded: weakref.WeakKeyDictionary[Any, dict[tuple[int, Any], _Expanded]] = weakref.WeakKeyDictionary()


def expand(opt: Any, group: dict[str, Any], rule: Callable[..., Any],
           lists: Sequence[Sequence[Any]]) -> list[tuple[Callable[..., Any], list[list[Any]], list[int]]]:
    """``lists`` split into (rule, argument lists, parameter indices) parts: the parameters whose state is all
    full precision keep ``rule`` (and its float32 kernels), the others take its stored-state form (:func:`wrap`)
    with an int8 parameter's tensors as (blocks, BLOCK) views, each state position's scales as (blocks, 1) (None
    where not int8), then the rounding counters and Kahan buffers."""
    refs = [tuple(x) for j, x in enumerate(lists) if j != 1]
    tracing = torch.compiler.is_compiling()  # (Dynamo: no cache across calls; the views are made in the graph)
    cache = {} if tracing else _expanded.setdefault(opt, {})
    done = cache.get((id(group), rule))
    if done is None or not done.fits(refs, lists[0]):
        index = {id(p): i for i, p in enumerate(p for g in opt.param_groups for p in g["params"])}
        for p in lists[0]:  # state that the algorithm does not create (SGD without momentum): counters, buffers
            compact(opt.state[p], p, group, opt._lowp_state, index.get(id(p), 0), base_seed(opt))
        done = cache[id(group), rule] = _expand(opt.state, rule, lists, refs)
    parts = []
    if done.plain:
        parts.append((rule, [[x[i] for i in done.plain] for x in lists], done.plain))
    if done.low:
        out = [list(x) for x in done.lists]
        out[1] = [g.reshape(-1, BLOCK) if b else g
                  for g, b in zip((lists[1][i] for i in done.low), done.blocked, strict=True)]
        if done.sharded:
            out = [[_local(t) for t in x] for x in out]
        parts.append((done.rule, out, done.low))
    return parts


def _expand(state: Any, rule: Callable[..., Any], lists: Sequence[Sequence[Any]],
            refs: list[tuple[Any, ...]]) -> _Expanded:
    prms = inspect.signature(rule).parameters
    names = list(prms)
    n = sum(prm.kind in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD) for prm in prms.values())
    outputs = spec_of(rule).outputs
    state_pos = tuple(j for j in range(2, n) if names[j] != "step" and names[j] not in outputs)
    low, plain = [], []
    for i, p in enumerate(lists[0]):
        st = state[p]
        stored = any(isinstance(lists[j][i], Tensor) and (lists[j][i].dtype in _CODES or (
            lists[j][i].dtype == torch.bfloat16 and lists[j][i].dim())) for j in state_pos)
        (low if stored or "rounding_seed" in st or "param_comp" in st or _low_param(p) else plain).append(i)
    out = [[x[i] for i in low] for x in lists]
    scales: list[list[Any]] = [[None] * len(low) for _ in state_pos]
    seeds: list[Any] = [None] * len(low)
    comps: list[Any] = [None] * len(low)
    blocked = [False] * len(low)
    for k, i in enumerate(low):
        p = lists[0][i]
        st = state[p]
        seed = st.get("rounding_seed")
        comps[k] = st.get("param_comp")
        for s, j in enumerate(state_pos):
            t = lists[j][i]
            if isinstance(t, Tensor) and t.dtype in _CODES:
                name = next(key for key, v in st.items() if v is t)
                scales[s][k] = st[name + "_absmax"].view(-1, 1)
                blocked[k] = True
        if blocked[k]:
            for j, x in enumerate(out):
                t = x[k]
                if j != 1 and isinstance(t, Tensor) and t.dim() and t.numel() == p.numel():
                    x[k] = t.view(-1, BLOCK)
        if seed is not None:  # with the parameter's rank: a 0-d integer input of a compiled CPU graph is a number
            seeds[k] = seed.view((1,) * out[0][k].dim())
    return _Expanded(refs, [p.data_ptr() for p in lists[0]], blocked, out + scales + [seeds, comps],
                     (wrap.__wrapped__ if torch.compiler.is_compiling() else wrap)(rule, n, state_pos), low, plain)


@functools.cache
def wrap(rule: Callable[..., Any], n: int, state_pos: tuple[int, ...]) -> Callable[..., Any]:
    """``rule`` over stored tensors: ``(*rule's positional args, *scales, seed, comp, **hyper)``."""
    spec = spec_of(rule)

    def lowp_rule(*args: Any, **hyper: Any) -> None:
        items = list(args[:n])
        scales = args[n:n + len(state_pos)]
        seed, comp = args[n + len(state_pos):]
        p = items[0]
        low_p = isinstance(p, Tensor) and _low_param(p)
        stores: list[tuple[Tensor, Tensor, Any]] = []
        for j, scale in zip(state_pos, scales, strict=True):
            t = items[j]
            if not isinstance(t, Tensor):
                continue
            if scale is not None:
                items[j] = dequantize(t, scale)
                stores.append((t, items[j], scale))
            elif t.dtype == torch.bfloat16:
                items[j] = t.float()
                stores.append((t, items[j], None))
        if low_p:
            items[0] = p.float() if comp is None else p.float() + comp.float()
        rule(*items, **hyper)
        key = None if seed is None else _key(seed)
        drawn: dict[int, Tensor] = {}

        def sr(x: Tensor, draw: int) -> Tensor:  # two draws share one hash (the state is shaped like p)
            assert key is not None
            bits = drawn.get(draw // 2)
            if bits is None:
                bits = drawn[draw // 2] = _draw_bits(x, key, draw // 2)
            return _sr_bf16(x, bits, draw)

        draws = 0
        for stored, full, scale in stores:
            if scale is not None:
                codes, absmax = quantize(full, stored.dtype == torch.int8)
                stored.copy_(codes)
                scale.copy_(absmax)
            else:
                stored.copy_(sr(full, draws) if key is not None else full)
                draws += 1
        if low_p:
            new = items[0]
            if comp is not None:
                p.copy_(new)
                comp.copy_(new - p.float())
            elif key is not None:
                p.copy_(sr(new, draws) if p.dtype == torch.bfloat16 else new)
            else:
                p.copy_(new)
        if seed is not None:
            seed.add_(1)

    sig = inspect.signature(rule)
    prms = list(sig.parameters.values())
    extra = [inspect.Parameter(f"_scale{j}", inspect.Parameter.POSITIONAL_OR_KEYWORD) for j in state_pos]
    extra += [inspect.Parameter(x, inspect.Parameter.POSITIONAL_OR_KEYWORD) for x in ("_seed", "_comp")]
    lowp_rule.__signature__ = sig.replace(parameters=prms[:n] + extra + prms[n:])  # type: ignore[attr-defined]
    lowp_rule.__name__ = f"lowp_{rule.__name__}"
    lowp_rule.__qualname__ = lowp_rule.__name__
    # shaped: int8 tensors come as (blocks, BLOCK) with (blocks, 1) scales; fewer slots: each compiles longer
    # recompute rather than store the new float32 moments that both the block maximum and the codes read: a
    # stored one is a full-size scratch buffer per call (allocation, page faults, memory traffic)
    lowp_rule.fused_spec = replace(spec, shaped=True, slots=min(spec.slots or 8, 2),  # type: ignore[attr-defined]
                                   inductor={**spec.inductor, **_RECOMPUTE}, wide_tiles=True)
    lowp_rule.per_tensor = True  # type: ignore[attr-defined]
    return lowp_rule


# ------------------------------------------------------------------------------------------------- codecs
def dequantize(codes: Tensor, absmax: Tensor) -> Tensor:
    """float32 values of (blocks, BLOCK) codes with (blocks, 1) scales: a·c|c|/127² (int8), a·(c/255)⁴ (uint8)."""
    c = codes.float()
    if codes.dtype == torch.int8:
        return c * c.abs() * (absmax * (1.0 / 127**2))
    c2 = c * c
    return c2 * c2 * (absmax * (1.0 / 255**4))


def quantize(x: Tensor, signed: bool) -> tuple[Tensor, Tensor]:
    """Nearest codes and per-block scales of (blocks, BLOCK) float32 values (the inverse maps of
    :func:`dequantize`; a positive non-negative value gets a code of at least 1)."""
    absmax = x.abs().amax(dim=-1, keepdim=True)
    inv = torch.where(absmax > 0, 1.0 / absmax, 0.0)
    u = x.abs() * inv
    if signed:
        return (u.sqrt() * 127).round().copysign(x).to(torch.int8), absmax
    c = (u.sqrt().sqrt() * 255).round()
    return torch.where(x > 0, c.clamp(min=1), c).to(torch.uint8), absmax


def _mix(x: Tensor) -> Tensor:
    """A 32-bit integer hash (two xor-shift-multiply rounds): int64 values below 2³², or int32 values as their bit
    patterns (products wrap; the shifts are made logical by masking), hash alike."""
    if x.dtype == torch.int32:
        x = ((x >> 16) & 0xFFFF ^ x) * _HASH
        x = ((x >> 16) & 0xFFFF ^ x) * _HASH
        return (x >> 16) & 0xFFFF ^ x
    x = ((x >> 16) ^ x) * _HASH & _M32
    x = ((x >> 16) ^ x) * _HASH & _M32
    return (x >> 16) ^ x


def _key(seed: Tensor) -> Tensor:
    """This step's stream key (int64 below 2³²) from the 64-bit rounding counter: one hash of its low half and
    an odd multiple of its high half (nesting hashes would multiply the expression that a compiler inlines into
    every element: each round reads its input twice)."""
    return _mix((seed & _M32) ^ ((seed >> 32) * 0x9E3779B1 & _M32))


def _draw_bits(like: Tensor, key: Tensor, pair: int) -> Tensor:
    """32 random bits per element of ``like`` (int32): a hash of (element index, key), in 32-bit integers
    (vector multiplies on every CPU). Draws ``2·pair`` and ``2·pair + 1`` take its low and high halves."""
    idx = torch.arange(like.numel(), device=like.device, dtype=torch.int32).view(like.shape)
    salt = (key + pair * 0x9E3779B9) & _M32
    return _mix(idx ^ torch.where(salt >= 2**31, salt - 2**32, salt).to(torch.int32))


def _sr_bf16(x: Tensor, bits: Tensor, draw: int) -> Tensor:
    """``x`` (float32) rounded stochastically to bfloat16: its bits plus 16 random bits (draw ``draw`` of
    :func:`_draw_bits`), truncated."""
    r = bits & 0xFFFF if draw % 2 == 0 else (bits >> 16) & 0xFFFF
    return ((x.contiguous().view(torch.int32) + r) & -65536).view(torch.float32).to(torch.bfloat16)


# --------------------------------------------------------------------------------------------- checkpoints
def fp32_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy of an optimizer ``state_dict`` with low-precision state in torch's float32 format: int8 codes and
    their ``*_absmax`` scales decoded, bfloat16 state widened, ``rounding_seed``/``param_comp`` and the
    ``state_dtype``/``param_rounding`` group keys dropped. torch's own optimizer then loads it."""
    state = {}
    for pid, st in state_dict["state"].items():
        new = {}
        for k, v in st.items():
            if k.endswith("_absmax") or k in ("rounding_seed", "param_comp"):
                continue
            if isinstance(v, Tensor) and v.dtype in _CODES and k + "_absmax" in st:
                full = dequantize(v.reshape(-1, BLOCK), st[k + "_absmax"].view(-1, 1).float())
                v = full.view(v.shape)
            elif isinstance(v, Tensor) and v.dtype == torch.bfloat16 and v.dim():
                v = v.float()
            new[k] = v
        state[pid] = new
    groups = [{k: v for k, v in g.items() if k not in KEYS}
              for g in state_dict["param_groups"]]
    return {"state": state, "param_groups": groups}


def conform(opt: Any, saved: dict[int, dict[str, Tensor]]) -> None:
    """After ``load_state_dict``: put back the stored tensors that torch's loader cast to the parameter's dtype
    (codes, counters: ``saved``, by parameter), and bring every state to its group's storage: torch float32
    state is quantised, low-precision state loaded into a full-precision group is decoded."""
    kinds = opt._lowp_state
    index = -1
    for group in opt.param_groups:
        for p in group["params"]:
            index += 1
            st = opt.state.get(p)
            if not st:
                continue
            for k, v in saved.get(id(p), {}).items():
                if k in st:
                    st[k] = v.to(p.device)
            if not enabled(group):
                decoded = fp32_state_dict({"state": {0: st}, "param_groups": []})["state"][0]
                st.clear()
                st.update({k: v.to(p.dtype) if isinstance(v, Tensor) and v.is_floating_point() and v.dim()
                           else v for k, v in decoded.items()})
            else:
                compact(st, p, group, kinds, index, base_seed(opt))
