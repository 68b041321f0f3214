"""Low-precision optimizer state (``state_dtype=``, issue 27) inside the training stacks: DDP, FSDP2
(``fully_shard``, DTensor parameters) with distributed checkpoints, and ``torch.compile``.

The distributed checks reuse the 2-process gloo harness of :mod:`test_stacks_dist` (:mod:`_dist`): one
module-scoped fixture per stack runs a group of checks in one process group; each check returns plain tensors
(its traceback on failure) and the tests compare them in the parent, so a failing comparison never leaves a
rank waiting in a collective. The model is sized so that both weights have compact state (>= ``MIN_NUMEL``
elements, whole int8 blocks) and both biases keep float32 state.

GradScaler with compact state is covered single-process in ``test_optim_lowp.py`` and not repeated here.
"""

from __future__ import annotations

import io
from typing import Any

import _dist
import pytest
import torch
from test_stacks_dist import _checks, _entry, _layout, _local
from torch import nn

import optimlab.optim as oo
from optimlab.parity.optim_compiled import GraphCounter

STEPS = 6
LR = 0.01
KW = {"lr": LR, "weight_decay": 0.05}
MODES = ("bfloat16", "int8")
IN, HIDDEN, OUT = 16, 256, 16  # weights (256, 16) and (16, 256): 4096 elements each, 16 int8 blocks


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # also the rounding counters' seed (torch.initial_seed())
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, OUT))


def _batch(rank: int, step: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Different data on each rank (as a DistributedSampler gives), reproducible anywhere."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(n, IN, generator=g), torch.randn(n, OUT, generator=g)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def _opt(params: Any, mode: str | None) -> torch.optim.Optimizer:
    return oo.AdamW(params, **KW, state_dtype=mode)


def _train(model: nn.Module, opt: torch.optim.Optimizer, rank: int, steps: range) -> None:
    for step in steps:
        opt.zero_grad()
        _loss(model, *_batch(rank, step)).backward()
        opt.step()


def _averaged_run(mode: str | None, world: int, steps: range = range(STEPS)) -> tuple[nn.Module, Any]:
    """The single-process reference of data parallelism: a plain model and optimizer stepped on each rank's
    gradient divided by the world size and summed (what DDP's and FSDP2's gradient reductions compute)."""
    model = _model()
    opt = _opt(model.parameters(), mode)
    for step in steps:
        grads = []
        for r in range(world):
            model.zero_grad()
            _loss(model, *_batch(r, step)).backward()
            grads.append([p.grad / world for p in model.parameters()])
        for p, *gs in zip(model.parameters(), *grads, strict=True):
            total = gs[0]
            for g in gs[1:]:
                total = total + g
            p.grad = total
        opt.step()
    return model, opt


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [_local(p).detach().clone() for p in model.parameters()]


def _state(opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each parameter's state (local shards of DTensors), in parameter order, as plain tensors."""
    out = []
    for p in (p for g in opt.param_groups for p in g["params"]):
        out.append({k: _local(v).detach().clone() if isinstance(v, torch.Tensor) else v
                    for k, v in opt.state[p].items()})
    return out


def _pack(results: dict[str, Any]) -> bytes:
    """A rank's results as ``torch.save`` bytes: tensors put on the harness's queue directly travel as shared
    memory that the child's exit takes away before the parent reads it."""
    buf = io.BytesIO()
    torch.save(results, buf)
    return buf.getvalue()


def _unpack(data: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(data), weights_only=True)


# ---------------------------------------------------------------------------------------------------- DDP


def ddp_lowp(rank: int, world: int) -> dict[str, Any]:
    """DDP + AdamW with each state precision, STEPS steps on per-rank data; and the single-process run of the
    same optimizer on the averaged gradients."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    out: dict[str, Any] = {}
    for mode in (None, *MODES):
        model = DDP(_model())
        opt = _opt(model.parameters(), mode)
        _train(model, opt, rank, range(STEPS))
        ref_model, ref_opt = _averaged_run(mode, world)
        out[str(mode)] = {"params": _params(model.module), "state": _state(opt),
                          "ref_params": _params(ref_model), "ref_state": _state(ref_opt)}
    return out


def _ddp_worker(rank: int, world: int) -> bytes:
    return _pack(_checks(rank, world, [ddp_lowp]))


# -------------------------------------------------------------------------------------------------- FSDP2


def _sharded() -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = _model()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    return fully_shard(model)


def _layouts(opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each state tensor's and its parameter's layout (as text: placements do not load with weights_only)."""
    return [{k: repr(_layout(v)) for k, v in opt.state[p].items()} | {"<param>": repr(_layout(p))}
            for g in opt.param_groups for p in g["params"]]


def fsdp_lowp(rank: int, world: int, *_: Any) -> dict[str, Any]:
    """FSDP2 + AdamW with each state precision, STEPS steps: local shards of the parameters and state, the
    state's layout (DTensor placements, global/local shapes, dtypes), and the unsharded single-process runs'
    parameters (float32 state and the same ``state_dtype``), cut to this rank's shard."""
    out: dict[str, Any] = {}
    for mode in (None, *MODES):
        model = _sharded()
        opt = _opt(model.parameters(), mode)
        _train(model, opt, rank, range(STEPS))
        ref_model, _ = _averaged_run(mode, world)
        ref = [torch.chunk(p.detach(), world, dim=0)[rank].clone() for p in ref_model.parameters()]
        out[str(mode)] = {"params": _params(model), "state": _state(opt), "layout": _layouts(opt), "ref": ref}
    return out


def dcp_lowp(rank: int, world: int, path: str) -> dict[str, Any]:
    """FSDP2 + AdamW(state_dtype=mode): 3 steps, ``get_{model,optimizer}_state_dict`` + ``dcp.save``; a fresh
    model and optimizer ``dcp.load`` + ``set_{model,optimizer}_state_dict`` and 3 more steps. Returns the
    resumed and the uninterrupted 6-step runs' local shards and state, and the state right after loading."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    out: dict[str, Any] = {}
    for mode in MODES:
        whole = _sharded()
        whole_opt = _opt(whole.parameters(), mode)
        _train(whole, whole_opt, rank, range(3))
        at3 = _state(whole_opt)
        _train(whole, whole_opt, rank, range(3, 6))

        model = _sharded()
        opt = _opt(model.parameters(), mode)
        _train(model, opt, rank, range(3))
        ckpt = f"{path}-{mode}"
        dcp.save({"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)},
                 checkpoint_id=ckpt)

        torch.manual_seed(123)  # the resumed run's own seed must not matter: the counters come from the checkpoint
        fresh = _sharded()
        fresh_opt = _opt(fresh.parameters(), mode)
        state = {"model": get_model_state_dict(fresh), "optim": get_optimizer_state_dict(fresh, fresh_opt)}
        dcp.load(state, checkpoint_id=ckpt)
        set_model_state_dict(fresh, state["model"])
        set_optimizer_state_dict(fresh, fresh_opt, state["optim"])
        loaded, loaded_layout = _state(fresh_opt), _layouts(fresh_opt)
        _train(fresh, fresh_opt, rank, range(3, 6))
        out[mode] = {"at3": at3, "loaded": loaded, "loaded_layout": loaded_layout, "layout": _layouts(whole_opt),
                     "whole": _params(whole), "whole_state": _state(whole_opt),
                     "resumed": _params(fresh), "resumed_state": _state(fresh_opt)}
    return out


def _fsdp_worker(rank: int, world: int, path: str) -> bytes:
    return _pack(_checks(rank, world, [fsdp_lowp, dcp_lowp], path))


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ddp() -> list[dict[str, Any]]:
    return [_unpack(r) for r in _dist.run(_ddp_worker)]


@pytest.fixture(scope="module")
def fsdp(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return [_unpack(r) for r in _dist.run(_fsdp_worker, str(tmp_path_factory.mktemp("dcp_lowp") / "ckpt"))]



# ------------------------------------------------------------------------------------------------- checks

#: how far a run with compact state may drift from one with float32 state (or with other rounding draws) in
#: STEPS AdamW steps. Stochastic rounding stores each moment within one bfloat16 spacing (2^-7 relative) of its
#: float32 value, so a step's update lr·m̂/(√v̂+ε) (|m̂/√v̂| ≲ 1 in these first steps) moves by about
#: (2^-7 + 2^-8)·lr per step of carried rounding error; 2^-5·lr per step (4 spacings) covers that with margin.
#: int8 codes are coarser near zero (the signed map's first code is a/127²·1, its spacing grows as 2c+1), so
#: int8 against float32 gets 2^-4·lr per step. A state that is not updated, decoded with a wrong scale or
#: applied to the wrong shard moves parameters by O(lr) per step, STEPS·lr = 0.06 in all.
DRIFT = {"bfloat16": STEPS * LR * 2.0**-5, "int8": STEPS * LR * 2.0**-4}


def _maxdiff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b, strict=True))


def _assert_equal_states(a: list[dict[str, Any]], b: list[dict[str, Any]], where: str) -> None:
    assert len(a) == len(b), where
    for i, (sa, sb) in enumerate(zip(a, b, strict=True)):
        assert set(sa) == set(sb), f"{where} state[{i}]: {sorted(sa)} vs {sorted(sb)}"
        for k, v in sa.items():
            w = sb[k]
            if isinstance(v, torch.Tensor):
                assert v.dtype == w.dtype and torch.equal(v, w), f"{where} state[{i}][{k!r}]"
            else:
                assert v == w, f"{where} state[{i}][{k!r}]"


def _compact_keys(mode: str | None, sharded: bool) -> tuple[dict[str, torch.dtype], set[str]]:
    """The dtypes of AdamW's moments for a parameter with compact state, and the extra keys it carries."""
    if mode is None:
        return {"exp_avg": torch.float32, "exp_avg_sq": torch.float32}, set()
    if mode == "int8" and not sharded:
        return {"exp_avg": torch.int8, "exp_avg_sq": torch.uint8}, {"exp_avg_absmax", "exp_avg_sq_absmax"}
    return {"exp_avg": torch.bfloat16, "exp_avg_sq": torch.bfloat16}, {"rounding_seed"}  # DTensor: bf16 for int8


@pytest.mark.parametrize("mode", [None, *MODES])
def test_ddp_ranks_stay_identical(ddp, mode):
    """DDP + AdamW(state_dtype=mode), STEPS steps on different data per rank: both ranks' parameters and every
    state tensor (codes, scales, bfloat16 moments, rounding counters) are bitwise identical, and the weights'
    state is stored as asked (the biases, < MIN_NUMEL elements, keep float32)."""
    r0, r1 = (r[str(mode)] for r in _entry(ddp, "ddp_lowp"))
    assert all(torch.equal(a, b) for a, b in zip(r0["params"], r1["params"], strict=True))
    _assert_equal_states(r0["state"], r1["state"], "rank 0 vs rank 1")
    dtypes, extra = _compact_keys(mode, sharded=False)
    for i, st in enumerate(r0["state"]):
        big = i % 2 == 0  # weights; the biases are odd
        assert set(st) == {"step"} | set(dtypes) | (extra if big else set()), (i, sorted(st))
        for k, dt in dtypes.items():
            assert st[k].dtype == (dt if big else torch.float32), (i, k, st[k].dtype)


@pytest.mark.parametrize("mode", [None, *MODES])
def test_ddp_equals_the_optimizer_on_averaged_gradients(ddp, mode):
    """DDP's run is bitwise the same optimizer run in one process without DDP, stepped on the per-rank gradients
    divided by the world size and summed (what DDP's all-reduce computes; a single full-batch backward would
    sum in another order and differ in the last bit, which can flip a stochastic rounding or an int8 code).
    And it stays within :data:`DRIFT` of the float32-state DDP run."""
    res = _entry(ddp, "ddp_lowp")
    for rank, r in enumerate(res):
        got = r[str(mode)]
        assert all(torch.equal(a, b) for a, b in zip(got["params"], got["ref_params"], strict=True)), rank
        _assert_equal_states(got["state"], got["ref_state"], f"rank {rank}: DDP vs single process")
        if mode is not None:
            drift = _maxdiff(got["params"], r["None"]["params"])
            assert 0 < drift <= DRIFT[mode], (rank, drift)


@pytest.mark.parametrize("mode", [None, *MODES])
def test_fsdp2_state_is_sharded_like_the_parameters(fsdp, mode):
    """Under FSDP2 each state tensor is a DTensor with its parameter's placements and global/local shapes; the
    weights' moments are bfloat16 for both ``state_dtype`` values (int8 blocks would not line up with a shard,
    as ``_lowp`` documents) with a plain 0-d int64 rounding counter; the biases' are float32."""
    for rank, res in enumerate(_entry(fsdp, "fsdp_lowp")):
        layouts = res[str(mode)]["layout"]
        dtypes, extra = _compact_keys(mode, sharded=True)
        for i, lay in enumerate(layouts):
            big = i % 2 == 0
            assert set(lay) == {"<param>", "step"} | set(dtypes) | (extra if big else set()), (rank, i, sorted(lay))
            param = lay["<param>"]
            assert param.startswith("('DTensor', (Shard(dim=0),)") and param.endswith("torch.float32)"), param
            for k, dt in dtypes.items():
                want = param.replace("torch.float32", str(dt if big else torch.float32))
                assert lay[k] == want, (rank, i, k, lay[k], want)
            if big and mode is not None:
                assert lay["rounding_seed"] == repr(("Tensor", (), torch.int64)), lay["rounding_seed"]


@pytest.mark.parametrize("mode", [None, *MODES])
def test_fsdp2_matches_the_unsharded_run(fsdp, mode):
    """FSDP2's shards against the unsharded single-process runs on the averaged gradients. float32 state:
    bitwise equal. Compact state: each rank draws its stochastic roundings over its local shard (another stream
    than the unsharded tensor's), so equality is not expected; within :data:`DRIFT` of the unsharded run with the
    same ``state_dtype`` and of the float32 one. ``int8`` is stored as bfloat16 under FSDP2, so it is bitwise the
    ``bfloat16`` run."""
    for rank, res in enumerate(_entry(fsdp, "fsdp_lowp")):
        got = res[str(mode)]
        if mode is None:
            assert all(torch.equal(a, b) for a, b in zip(got["params"], got["ref"], strict=True)), rank
            continue
        fp32 = res["None"]["ref"]
        for ref, what in ((got["ref"], f"unsharded {mode}"), (fp32, "unsharded float32")):
            drift = _maxdiff(got["params"], ref)
            assert drift <= DRIFT[mode], (rank, what, drift)
        assert _maxdiff(got["params"], fp32) > 0, "compact state had no effect"
        if mode == "int8":
            assert all(torch.equal(a, b) for a, b in zip(got["params"], res["bfloat16"]["params"], strict=True))
            _assert_equal_states(got["state"], res["bfloat16"]["state"], f"rank {rank}: int8 vs bfloat16")


@pytest.mark.parametrize("mode", MODES)
def test_fsdp2_distributed_checkpoint_resume(fsdp, mode):
    """``dcp.save`` of ``get_optimizer_state_dict`` after 3 steps, ``dcp.load`` + ``set_optimizer_state_dict``
    into a fresh model and optimizer (under another torch seed): the loaded state is the saved one bitwise
    (bfloat16 DTensor moments, rounding counters), laid out as before, and the 3 resumed steps equal the
    uninterrupted run bitwise."""
    for rank, res in enumerate(_entry(fsdp, "dcp_lowp")):
        r = res[mode]
        _assert_equal_states(r["loaded"], r["at3"], f"rank {rank}: loaded vs saved")
        assert r["loaded_layout"] == r["layout"], rank
        assert all(torch.equal(a, b) for a, b in zip(r["resumed"], r["whole"], strict=True)), rank
        _assert_equal_states(r["resumed_state"], r["whole_state"], f"rank {rank}: resumed vs uninterrupted")


# ------------------------------------------------------------------------------------------ torch.compile

SHAPES = [(32, 256), (40,)]  # compact state and float32 state


def _compile_run(mode: str, backend: str | None, fullgraph: bool = False, eager_steps: int = 0,
                 steps: int = STEPS) -> tuple[list[nn.Parameter], torch.optim.Optimizer, list[int]]:
    """AdamW(state_dtype=mode, fused=False) for ``steps`` steps on fixed gradients: the first ``eager_steps``
    eagerly, the rest through ``torch.compile(opt.step)`` (``backend`` None: all eager); the parameters, the
    optimizer and the number of graphs compiled after each step."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]
    opt = oo.AdamW(params, **KW, state_dtype=mode, fused=False)
    counter = GraphCounter(backend) if backend else None
    compiled = torch.compile(opt.step, backend=counter, fullgraph=fullgraph) if counter else opt.step
    graphs = []
    for i in range(steps):
        gg = torch.Generator().manual_seed(100 + i)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gg)
        (opt.step if i < eager_steps else compiled)()
        graphs.append(counter.graphs if counter else 0)
    return params, opt, graphs


def _assert_close_to_eager(ours: tuple, eager: tuple, mode: str) -> None:
    """The compiled step against the eager one. The compiled float32 arithmetic may differ in the last bit (fused
    multiply-adds), which can flip a stochastic rounding (one bfloat16 spacing of a moment, ~lr·2^-8 on the
    parameter) or an int8 code by one: tolerances as ``test_optim_lowp``'s fused-vs-per-tensor test. The integer
    parts (rounding counters, step counts) must be exact."""
    (a, oa, _), (b, ob, _) = ours, eager
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-4)
        sa, sb = oa.state[p], ob.state[q]
        assert set(sa) == set(sb)
        for k, v in sa.items():
            w = sb[k]
            assert v.dtype == w.dtype, (k, v.dtype, w.dtype)
            if k in ("rounding_seed", "step"):
                assert torch.equal(v, w), (k, v, w)
            elif v.dtype in (torch.int8, torch.uint8):
                assert int((v.int() - w.int()).abs().max()) <= 1, k
            else:
                torch.testing.assert_close(v.float(), w.float(), rtol=1e-2, atol=1e-5)
    assert oa.state[a[0]]["exp_avg"].dtype == (torch.int8 if mode == "int8" else torch.bfloat16)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_compiled_step_inductor(mode):
    """``torch.compile(opt.step, fullgraph=True)`` with inductor, after one eager step has created the state:
    one graph, no recompilation in the following steps (the rounding counter advances inside the graph), and
    the run matches the eager one."""
    ours = _compile_run(mode, "inductor", fullgraph=True, eager_steps=1)
    assert ours[2][1:] == [1] * (STEPS - 1), ours[2]
    _assert_close_to_eager(ours, _compile_run(mode, None), mode)


@pytest.mark.parametrize("mode", MODES)
def test_compiled_step_from_the_first_step(mode):
    """``torch.compile(opt.step)`` from the very first step, so the lazy state creation and compaction are traced
    too (``aot_eager``: Dynamo and AOTAutograd's functionalisation of the in-place stores, without inductor's
    minutes of code generation on two cores; the generated kernels are checked above): no graph is added after
    the first two steps (the first creates the state, as torch's compiled steps; the project's criterion in
    ``test_optim_compile``), and the run matches the eager one."""
    ours = _compile_run(mode, "aot_eager")
    assert ours[2][0] >= 1 and ours[2][-1] == ours[2][1], ours[2]
    _assert_close_to_eager(ours, _compile_run(mode, None), mode)


@pytest.mark.parametrize("mode", ["bfloat16", "int8"])
def test_compiled_step_fullgraph_from_the_first_step(mode):
    """``torch.compile(opt.step, fullgraph=True)`` on a fresh optimizer, as ``test_optim_compile`` compiles every
    optimizer: the state creation traces without a graph break (``eager`` backend: tracing only), the rounding
    counter's seed included (read when the optimizer is built)."""
    ours = _compile_run(mode, "eager", fullgraph=True)
    assert ours[2][-1] == ours[2][1], ours[2]
    _assert_close_to_eager(ours, _compile_run(mode, None), mode)


def _muon_run(mode: str, backend: str | None) -> tuple[list[nn.Parameter], torch.optim.Optimizer, list[int]]:
    """Muon(state_dtype=mode) as :func:`_compile_run`, from the first step, on two matrices (compact and float32
    momentum)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(s, generator=g)) for s in [(32, 256), (8, 5)]]
    opt = oo.Muon(params, lr=0.02, state_dtype=mode)
    counter = GraphCounter(backend) if backend else None
    step = torch.compile(opt.step, backend=counter) if counter else opt.step
    graphs = []
    for i in range(4):
        gg = torch.Generator().manual_seed(100 + i)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gg)
        step()
        graphs.append(counter.graphs if counter else 0)
    return params, opt, graphs


@pytest.mark.parametrize("mode", MODES)
def test_muon_stored_momentum_compiled(mode):
    """Muon's stored momentum under ``torch.compile`` (``aot_eager``, from the first step): no graph added after
    the second step, the buffer stays compact, and the run matches the eager one (tolerances as above)."""
    (a, oa, graphs), (b, ob, _) = _muon_run(mode, "aot_eager"), _muon_run(mode, None)
    assert graphs[0] >= 1 and graphs[-1] == graphs[1], graphs
    assert oa.state[a[0]]["momentum_buffer"].dtype == (torch.int8 if mode == "int8" else torch.bfloat16)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-4)
        v, w = oa.state[p]["momentum_buffer"], ob.state[q]["momentum_buffer"]
        if v.dtype == torch.int8:
            assert int((v.int() - w.int()).abs().max()) <= 1
        else:
            torch.testing.assert_close(v.float(), w.float(), rtol=1e-2, atol=1e-5)
