"""``state_dtype=`` (bfloat16, int8) and ``param_rounding=``: one step is the float32 rule on the stored state,
stored back within one quantisation step; stochastic rounding is unbiased; runs repeat under one seed;
checkpoints go both ways with torch's float32 format; GradScaler's skipped steps leave everything as it was.

The reference of "one step" is torch's own optimizer, loaded with our state decoded by
:func:`optimlab.optim.fp32_state_dict`: the parameters must then agree to float32 rounding (the rule reads the
same float32 values) and each stored state tensor must decode to torch's new float32 state within one step of
its code map (int8) or one bfloat16 spacing (stochastic rounding picks one of the two neighbours)."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

import optimlab.optim as oo
from optimlab.optim import _lowp
from tests._util import OPTIM_CONFIGS

SHAPES = [(32, 256), (40,)]  # 8192 elements (compact state) and a small one (float32 state)


def _params(seed: int = 0, shapes: list[tuple[int, ...]] = SHAPES, dtype: torch.dtype = torch.float32) -> list:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(s, generator=g).to(dtype)) for s in shapes]


def _grads(params: list, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + seed)
    return [torch.randn(p.shape, generator=g).to(p.dtype) for p in params]


def _steps(opt: torch.optim.Optimizer, params: list, seeds: range) -> None:
    for s in seeds:
        for p, g in zip(params, _grads(params, s), strict=True):
            p.grad = g.clone()
        opt.step()


def _code_step(codes: torch.Tensor, absmax: torch.Tensor) -> torch.Tensor:
    """The distance from the decoded value to either neighbouring code (elementwise, (blocks, BLOCK))."""
    c = codes.reshape(-1, _lowp.BLOCK).float().abs()
    a = absmax.reshape(-1, 1).float()
    if codes.dtype == torch.int8:
        return a * ((c + 1) ** 2 - (c - 1).clamp(min=0) ** 2) / 127**2
    return a * ((c + 1) ** 4 - (c - 1).clamp(min=0) ** 4) / 255**4


def _check_state(st: dict, ref: dict, where: str) -> None:
    for key, want in ref.items():
        got = st[key]
        if not isinstance(want, torch.Tensor) or key == "step" or want.dim() == 0:
            continue
        want = want.float()
        if got.dtype in (torch.int8, torch.uint8):
            decoded = _lowp.dequantize(got.reshape(-1, _lowp.BLOCK), st[key + "_absmax"].view(-1, 1)).view(got.shape)
            bound = _code_step(got, st[key + "_absmax"]).view(got.shape) * 1.0001 + 1e-6 * want.abs() + 1e-30
        elif got.dtype == torch.bfloat16:
            decoded = got.float()
            bound = want.abs() * 2.0**-7 * 1.0001 + 1e-30  # one bfloat16 spacing (8 significant bits)
        else:
            decoded, bound = got.float(), 1e-6 * want.abs() + 1e-7
        err = (decoded - want).abs()
        assert bool((err <= bound).all()), f"{where} {key}: off by {float((err - bound).max()):.3g} beyond one step"


@pytest.mark.parametrize("mode", ["bfloat16", "int8"])
@pytest.mark.parametrize("name", list(OPTIM_CONFIGS))
def test_one_step_is_the_float32_rule_on_the_stored_state(name, mode):
    kw = OPTIM_CONFIGS[name]
    params = _params()
    ours = getattr(oo, name)(params, **kw, state_dtype=mode)
    _steps(ours, params, range(3))
    big = ours.state[params[0]]
    compact = {k: v.dtype for k, v in big.items() if k in type(ours)._lowp_state}
    want = torch.int8 if mode == "int8" else torch.bfloat16
    assert compact and all(d in (want, torch.uint8) if mode == "int8" else d == want for d in compact.values()), compact
    assert all(v.dtype == torch.float32 for k, v in ours.state[params[1]].items() if k in type(ours)._lowp_state)

    ref_params = [nn.Parameter(p.detach().clone()) for p in params]
    ref = getattr(torch.optim, name)(ref_params, **kw)
    ref.load_state_dict(oo.fp32_state_dict(copy.deepcopy(ours.state_dict())))
    _steps(ours, params, range(3, 4))
    _steps(ref, ref_params, range(3, 4))
    for p, q in zip(params, ref_params, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    for p, q in zip(params, ref_params, strict=True):
        _check_state(ours.state[p], ref.state[q], f"{name}/{mode}")


@pytest.mark.parametrize("mode", ["bfloat16", "int8"])
@pytest.mark.parametrize("name", ["AdamW", "SGD"])
def test_fused_matches_the_per_tensor_path(name, mode):
    """The compiled kernel runs the same wrapper: parameters agree to the fused tolerance, codes within one."""
    kw = {**OPTIM_CONFIGS[name], "state_dtype": mode}
    a, b = _params(), _params()
    oa, ob = getattr(oo, name)(a, **kw), getattr(oo, name)(b, **kw, fused=True)
    with torch.no_grad():
        _steps(oa, a, range(4))
        _steps(ob, b, range(4))
    for p, q in zip(a, b, strict=True):
        # the kernel's float32 results may differ in the last bit (FMAs), which can flip a stochastic rounding
        # (one bfloat16 spacing of a moment, ~lr·2⁻⁸ on the parameter) or an int8 code by one
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-4)
        for k, v in oa.state[p].items():
            w = ob.state[q][k]
            if v.dtype in (torch.int8, torch.uint8):
                assert (v.int() - w.int()).abs().max() <= 1, k
            else:
                torch.testing.assert_close(v.float(), w.float(), rtol=1e-2, atol=1e-5)


def test_stochastic_rounding_is_unbiased():
    """x between two bfloat16 neighbours, rounded 2^18 times (one element each, one key, either half of the
    hash): the mean is x within 5 standard errors of a two-point distribution; rounding to nearest would be off
    by far more."""
    n = 1 << 18
    lo = torch.tensor(1.0, dtype=torch.bfloat16).float()
    ulp = 2.0**-7
    for frac in (0.1, 0.37, 0.5, 0.9):
        x = torch.full((n,), float(lo) + frac * ulp)
        for seed, draw in ((0, 0), (12345, 0), (7, 1)):
            r = _lowp._sr_bf16(x, _lowp._draw_bits(x, _lowp._key(torch.tensor(seed)), 0), draw).float()
            assert set(r.unique().tolist()) <= {float(lo), float(lo) + ulp}
            sd = ulp * math.sqrt(frac * (1 - frac) / n)
            assert abs(float(r.double().mean()) - float(x[0])) <= 5 * sd
    near = torch.full((n,), float(lo) + 0.1 * ulp).to(torch.bfloat16).float().mean()
    assert abs(float(near) - (float(lo) + 0.1 * ulp)) > 100 * ulp * math.sqrt(0.09 / n)  # the test can fail


def test_same_seed_same_run_and_the_seed_is_in_the_checkpoint():
    def run(seed: int, steps: int = 4) -> tuple[list, oo.AdamW]:
        torch.manual_seed(seed)
        params = _params()
        opt = oo.AdamW(params, lr=1e-2, state_dtype=torch.bfloat16)
        _steps(opt, params, range(steps))
        return params, opt

    a, oa = run(0)
    b, ob = run(0)
    c, _ = run(1)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])  # another seed rounds elsewhere
    # resume from a checkpoint of step 2: the same steps 3 and 4
    p2, o2 = run(0, 2)
    buf = io.BytesIO()
    torch.save(o2.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(99)  # the resumed run's own seed must not matter
    fresh = [nn.Parameter(p.detach().clone()) for p in p2]
    o3 = oo.AdamW(fresh, lr=1e-2, state_dtype=torch.bfloat16)
    o3.load_state_dict(torch.load(buf, weights_only=True))
    assert o3.state[fresh[0]]["rounding_seed"].dtype == torch.int64
    _steps(o3, fresh, range(2, 4))
    assert all(torch.equal(p, q) for p, q in zip(fresh, a, strict=True))


@pytest.mark.parametrize("mode", ["bfloat16", "int8"])
def test_checkpoints_both_ways_with_torch(mode):
    params = _params()
    ours = oo.AdamW(params, lr=1e-2, state_dtype=mode)
    _steps(ours, params, range(3))
    # low precision -> low precision: identical continuation
    twin = [nn.Parameter(p.detach().clone()) for p in params]
    o2 = oo.AdamW(twin, lr=1e-2, state_dtype=mode)
    o2.load_state_dict(copy.deepcopy(ours.state_dict()))
    for k, v in ours.state[params[0]].items():
        assert o2.state[twin[0]][k].dtype == v.dtype and torch.equal(o2.state[twin[0]][k], v), k
    _steps(ours, params, range(3, 5))
    _steps(o2, twin, range(3, 5))
    assert all(torch.equal(p, q) for p, q in zip(params, twin, strict=True))
    # low precision -> torch float32 (the helper) -> torch continues
    ref_params = [nn.Parameter(p.detach().clone()) for p in params]
    ref = torch.optim.AdamW(ref_params, lr=1e-2)
    ref.load_state_dict(oo.fp32_state_dict(ours.state_dict()))
    assert ref.state[ref_params[0]]["exp_avg"].dtype == torch.float32
    _steps(ref, ref_params, range(5, 6))
    # torch float32 -> low precision: quantised on load, within one step of torch's values
    back = [nn.Parameter(p.detach().clone()) for p in ref_params]
    o3 = oo.AdamW(back, lr=1e-2, state_dtype=mode)
    o3.load_state_dict(copy.deepcopy(ref.state_dict()))
    _check_state(o3.state[back[0]], ref.state[ref_params[0]], f"torch->{mode}")
    # low precision -> optimlab full precision: decoded
    o4 = oo.AdamW([nn.Parameter(p.detach().clone()) for p in params], lr=1e-2)
    o4.load_state_dict(copy.deepcopy(ours.state_dict()))
    assert all(v.dtype == torch.float32 for k, v in o4.state[o4.param_groups[0]["params"][0]].items())
    assert "state_dtype" in ours.state_dict()["param_groups"][0]


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("mode", ["bfloat16", "int8"])
def test_gradscaler_skipped_step_changes_nothing(mode, fused):
    """torch's GradScaler on a step with an inf gradient: the parameters, codes, scales and rounding counters stay
    (fused: the optimizer skips on the device; unfused: GradScaler does not call it); then a finite step moves."""
    params = _params()
    opt = oo.AdamW(params, lr=1e-2, state_dtype=mode, fused=fused)
    with torch.no_grad():
        _steps(opt, params, range(2))
    before = [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict()["state"])
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    for bad in (True, False):
        opt.zero_grad()
        scaler.scale(sum((p * p).sum() for p in params)).backward()
        if bad:
            params[0].grad[0, 0] = float("inf")
        scaler.step(opt)
        scaler.update()
        if bad:
            assert all(torch.equal(p, q) for p, q in zip(params, before[0], strict=True))
            for i, st in opt.state_dict()["state"].items():
                for k, v in st.items():
                    assert torch.equal(v, before[1][i][k]), (i, k)
    assert not torch.equal(params[0], before[0][0])


def test_option_off_changes_nothing_and_bad_values_raise():
    opt = oo.AdamW(_params(), lr=1e-2)
    assert "state_dtype" not in opt.param_groups[0] and "param_rounding" not in opt.param_groups[0]
    with pytest.raises(ValueError, match="state_dtype"):
        oo.AdamW(_params(), state_dtype=torch.float16)
    with pytest.raises(ValueError, match="param_rounding"):
        oo.SGD(_params(), param_rounding="up")
    with pytest.raises(ValueError, match="differentiable"):
        oo.Adam(_params(), state_dtype="int8", differentiable=True)


def test_state_bytes_per_parameter_gpt2_mini():
    """Adam/AdamW on the GPT-2-mini parameter set: int8 <= 2.1 and bfloat16 <= 4.1 bytes per parameter (8 in
    float32). Shapes only: the state is created as on a first step, without a step."""
    from benchmarks import optim_suite

    shapes = optim_suite.gpt2_mini_shapes()
    params = [nn.Parameter(torch.empty(s)) for s in shapes]
    n = sum(p.numel() for p in params)
    for mode, limit in (("int8", 2.1), ("bfloat16", 4.1), (None, 8.01)):
        opt = oo.AdamW(params, state_dtype=mode)
        for p in params:
            opt._init(opt.param_groups[0], opt._init_state, p)
        held = sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
                   if isinstance(t, torch.Tensor))
        assert held / n <= limit, (mode, held / n)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic", "kahan"])
def test_bfloat16_parameters(rounding):
    """Pure-bfloat16 training: many small steps that round to nothing in bfloat16 still move the parameter
    with stochastic rounding or the Kahan buffer (the float32 trajectory's value within a few bfloat16
    spacings), while rounding to nearest stalls."""
    torch.manual_seed(0)
    p32 = nn.Parameter(torch.ones(64, 256))
    p16 = nn.Parameter(torch.ones(64, 256, dtype=torch.bfloat16))
    o32 = oo.SGD([p32], lr=1e-4)
    o16 = oo.SGD([p16], lr=1e-4, param_rounding=rounding)
    for _ in range(200):
        p32.grad = torch.ones_like(p32)
        p16.grad = torch.ones_like(p16)
        o32.step()
        o16.step()
    moved = float(1 - p16.float().mean())
    if rounding == "nearest":
        assert moved == 0.0  # 1e-4 is below half a bfloat16 spacing at 1.0 (2^-8)
    else:
        assert abs(moved - float(1 - p32.mean())) < 2e-3, moved
    if rounding == "kahan":
        assert o16.state[p16]["param_comp"].dtype == torch.bfloat16


def test_rounding_bits_are_the_same_hash_in_32_and_64_bits_eager_and_compiled():
    """The per-element hash runs in int32 (wrapping products); it equals the same hash in int64 with explicit
    masks, eagerly and in an Inductor kernel, so every path draws the same bits."""
    x = torch.randint(0, 2**32, (4099,), dtype=torch.int64, generator=torch.Generator().manual_seed(0))
    as32 = torch.where(x >= 2**31, x - 2**32, x).to(torch.int32)
    want = _lowp._mix(x)
    assert torch.equal(_lowp._mix(as32).to(torch.int64) & 0xFFFFFFFF, want)
    assert torch.equal(torch.compile(_lowp._mix)(as32).to(torch.int64) & 0xFFFFFFFF, want)


def test_lowp_codegen_is_exact_takes_effect_and_is_scoped():
    """:func:`optimlab.optim._compat.wide_lowp_tiles` (the low-precision kernels' code generation): a loop that
    mixes float32-only and bfloat16 statements is tiled as wide as a bfloat16 vector, a float32 ↔ int32 view is
    a register cast (not an element loop through stack buffers) and an int8 tile is one plain load (not ATen's
    counted load through a stack buffer); the kernels' results equal eager's bit for bit (odd sizes: the tail
    too); Inductor is as it was afterwards. On a torch whose code generator moved, an assertion on the code
    fails: the speed-up is then gone, though the results stay exact."""
    from torch._inductor import config as inductor_config
    from torch._inductor.codegen import cpp
    from torch._inductor.cpu_vec_isa import pick_vec_isa
    from torch._inductor.utils import run_and_get_code

    from optimlab.optim import _compat

    def f(x: torch.Tensor, m: torch.Tensor, bits: torch.Tensor, c: torch.Tensor, y: torch.Tensor) -> None:
        m.copy_(((x.view(torch.int32) + (bits & 0xFFFF)) & -65536).view(torch.float32).to(torch.bfloat16))
        x.mul_(0.5)  # a float32-only statement in the same loop
        y.copy_(c.float() * 0.25)

    isa = pick_vec_isa()
    before = (cpp.TilingSelect.select_tiling, cpp.CppVecOverrides.to_dtype_bitcast,
              cpp.CppVecKernel._get_vec_load_line)
    g = torch.Generator().manual_seed(0)
    for n in (4096, 1027):
        x = torch.randn(n, generator=g)
        bits = torch.randint(-2**31, 2**31 - 1, (n,), dtype=torch.int32, generator=g)
        c = torch.randint(-127, 128, (n,), dtype=torch.int8, generator=g)
        x_eager, m_eager, y_eager = x.clone(), torch.empty(n, dtype=torch.bfloat16), torch.empty(n)
        f(x_eager, m_eager, bits, c, y_eager)
        m, y = torch.empty(n, dtype=torch.bfloat16), torch.empty(n)
        torch._dynamo.reset()
        with inductor_config.patch(fx_graph_cache=False), _compat.wide_lowp_tiles():
            _, code = run_and_get_code(torch.compile(f, dynamic=False), x, m, bits, c, y)
        assert (cpp.TilingSelect.select_tiling, cpp.CppVecOverrides.to_dtype_bitcast,
                cpp.CppVecKernel._get_vec_load_line) == before
        assert torch.equal(x, x_eager) and torch.equal(y, y_eager)
        assert torch.equal(m.view(torch.int16), m_eager.view(torch.int16))
        src = "\n".join(code)
        if str(isa) in ("avx2", "avx512"):
            assert f"+=static_cast<int64_t>({isa.nelements(torch.bfloat16)}L)" in src
            assert "c10::bit_cast" not in src
            assert "_mm_loadu_si128" in src if str(isa) == "avx2" else "_mm256_loadu_si256" in src


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("mode", ["bfloat16", "int8"])
def test_muon_momentum_stored(mode, fused):
    """Muon's ``state_dtype=``: the momentum buffer is stored compactly (the small matrix keeps float32), a step
    equals torch's Muon on the decoded buffer, and a checkpoint continues identically."""
    shapes = [(32, 256), (8, 5)]
    params = _params(shapes=shapes)
    kw = {"lr": 0.02, "nesterov": mode == "int8", "fused": fused or None}
    ours = oo.Muon(params, **kw, state_dtype=mode)
    _steps(ours, params, range(3))
    stored = ours.state[params[0]]["momentum_buffer"].dtype
    assert stored == (torch.int8 if mode == "int8" else torch.bfloat16)
    assert ours.state[params[1]]["momentum_buffer"].dtype == torch.float32
    twin = [nn.Parameter(p.detach().clone()) for p in params]
    o2 = oo.Muon(twin, **kw, state_dtype=mode)
    o2.load_state_dict(copy.deepcopy(ours.state_dict()))
    ref_params = [nn.Parameter(p.detach().clone()) for p in params]
    ref = torch.optim.Muon(ref_params, lr=0.02, nesterov=kw["nesterov"])
    ref.load_state_dict(oo.fp32_state_dict(copy.deepcopy(ours.state_dict())))
    for opt, ps in ((ours, params), (o2, twin), (ref, ref_params)):
        _steps(opt, ps, range(3, 4))
    assert all(torch.equal(p, q) for p, q in zip(params, twin, strict=True))
    # the kernel's float32 momentum may differ from eager's in the last bit, flipping one bfloat16 rounding of
    # the Newton–Schulz input (~lr·2⁻⁸ on the parameter); the per-tensor path reads the same float32 values
    for p, q in zip(params, ref_params, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-4 if fused else 1e-6)
        _check_state(ours.state[p], ref.state[q], f"Muon/{mode}")
