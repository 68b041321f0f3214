"""optimlab inside torch.distributed, against the same runs with torch's classes: DDP, FSDP2
(``fully_shard``, DTensor parameters), ZeroRedundancyOptimizer and distributed checkpoints.

Each module-scoped fixture starts one real 2-process gloo group on 127.0.0.1 (:mod:`_dist`) and runs a
group of checks in it; every check returns its largest difference (or its traceback), and one test per
check reads its entry. Inside a worker all collectives run before any comparison, so a failing check
cannot leave the other rank waiting in a collective.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import _dist
import pytest
import torch
from _util import OPTIM_CONFIGS, checkpoint_roundtrip
from torch import nn

from optimlab.parity import compare

STEPS = 6


def _checks(rank: int, world: int, fns: list[Callable[..., float]], *args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fn in fns:
        try:
            out[fn.__name__] = ("ok", fn(rank, world, *args))
        except Exception:  # noqa: BLE001 - reported by the test that reads this entry
            out[fn.__name__] = ("error", traceback.format_exc())
    return out


def _model(seed: int = 0, bias: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16, bias=bias), nn.Tanh(), nn.Linear(16, 4, bias=bias))


def _batch(rank: int, step: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Different data on each rank (as a DistributedSampler gives), the same on both sides."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(n, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - nn.functional.one_hot(y, 4).to(out.dtype)) ** 2).mean()


def _merge(diff: compare.Diff, d: compare.Diff) -> None:
    diff.merge(d)
    assert diff.ok, diff.what


def _state_diff(ours: dict, ref: dict, where: str) -> compare.Diff:
    """Every tensor of two optimizer state dicts (``state`` entries), keys and types equal."""
    diff = compare.Diff()
    assert set(ours) == set(ref), f"{where}: state for {sorted(ours)} vs torch's {sorted(ref)}"
    for k, st_r in ref.items():
        st_o = ours[k]
        assert set(st_o) == set(st_r), f"{where}: state[{k}] keys {sorted(st_o)} vs {sorted(st_r)}"
        for key, v_r in st_r.items():
            v_o = st_o[key]
            if isinstance(v_r, torch.Tensor):
                _merge(diff, compare.tensors(v_o, v_r, f"{where} state[{k}][{key!r}]"))
            else:
                assert v_o == pytest.approx(v_r, rel=1e-12), f"{where} state[{k}][{key!r}]: {v_o} vs {v_r}"
    return diff


# ---------------------------------------------------------------------------------------------- DDP


def ddp_adamw_onecycle_cross_entropy(rank: int, world: int) -> float:
    """DDP-wrapped model, cross-entropy loss, AdamW and OneCycleLR: optimlab's classes vs torch's."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    import optimlab.nn as onn
    import optimlab.optim as oo

    runs = []
    for nn_ns, optim_ns in ((onn, oo), (torch.nn, torch.optim)):
        model = DDP(_model())
        loss_fn = nn_ns.CrossEntropyLoss(label_smoothing=0.1)
        opt = optim_ns.AdamW(model.parameters(), lr=0.01, weight_decay=0.05, amsgrad=True)
        sched = optim_ns.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)
        losses, lrs = [], []
        for step in range(STEPS):
            x, y = _batch(rank, step)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
            lrs.append(sched.get_last_lr()[0])
        runs.append((model.module, opt, torch.stack(losses), lrs))
    (m_o, o_o, l_o, lr_o), (m_r, o_r, l_r, lr_r) = runs
    diff = compare.Diff()
    _merge(diff, compare.tensors(l_o, l_r, "losses"))
    assert lr_o == pytest.approx(lr_r, rel=1e-12, abs=1e-15)
    for (name, p_o), p_r in zip(m_o.named_parameters(), m_r.parameters(), strict=True):
        _merge(diff, compare.tensors(p_o, p_r, f"param {name}"))
    _merge(diff, _state_diff(o_o.state_dict()["state"], o_r.state_dict()["state"], "AdamW"))
    assert o_o.state_dict()["param_groups"] == o_r.state_dict()["param_groups"]
    return diff.max_abs


# --------------------------------------------------------------------------------------------- ZeRO

ZERO_CONFIGS = {"AdamW": {"lr": 0.01, "weight_decay": 0.05}, "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True}}


def _zero_steps(model: nn.Module, opt: torch.optim.Optimizer, rank: int, steps: range) -> None:
    for step in steps:
        x, y = _batch(rank, step)
        opt.zero_grad()
        _mse(model(x), y).backward()
        opt.step()


def _zero(name: str, rank: int, world: int) -> float:
    """ZeroRedundancyOptimizer(optimizer_class=optimlab's) vs (torch's) under DDP; then
    ``consolidate_state_dict``: optimlab's consolidated checkpoint (through torch.save /
    torch.load(weights_only=True)) loads into a plain torch optimizer and torch's into a plain optimlab
    one, which continue in lockstep; and each consolidated checkpoint loads back into a ZeRO of the other
    class, which continues equal to the uninterrupted run."""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    import optimlab.optim as oo

    kw = ZERO_CONFIGS[name]
    sides = []
    for cls in (getattr(oo, name), getattr(torch.optim, name)):
        model = DDP(_model())
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls, **kw)
        _zero_steps(model, opt, rank, range(STEPS))
        sides.append((model, opt))
    (m_o, z_o), (m_r, z_r) = sides
    diff = compare.Diff()
    for (n, p_o), p_r in zip(m_o.module.named_parameters(), m_r.module.parameters(), strict=True):
        _merge(diff, compare.tensors(p_o, p_r, f"{name} param {n}"))
    _merge(diff, _state_diff(z_o.optim.state_dict()["state"], z_r.optim.state_dict()["state"], f"{name} shard"))

    z_o.consolidate_state_dict(to=0)
    z_r.consolidate_state_dict(to=0)
    objs = [z_o.state_dict(), z_r.state_dict()] if rank == 0 else [None, None]
    dist_broadcast(objs)
    sd_o, sd_r = (checkpoint_roundtrip(sd) for sd in objs)
    _merge(diff, _state_diff(sd_o["state"], sd_r["state"], f"{name} consolidated"))
    assert sd_o["param_groups"] == sd_r["param_groups"]

    # the consolidated checkpoints into plain (non-ZeRO) optimizers of the other implementation
    plain = []
    for cls, sd in ((getattr(torch.optim, name), sd_o), (getattr(oo, name), sd_r)):
        model = _model()
        model.load_state_dict(m_o.module.state_dict())
        opt = cls(model.parameters(), **kw)
        opt.load_state_dict(checkpoint_roundtrip(sd))
        _zero_steps(model, opt, rank, range(STEPS, STEPS + 3))
        plain.append(model)
    for (n, p_a), p_b in zip(plain[0].named_parameters(), plain[1].parameters(), strict=True):
        _merge(diff, compare.tensors(p_a, p_b, f"{name} plain resumed param {n}"))

    # and back: torch's consolidated checkpoint into a ZeRO of optimlab's class (and the reverse)
    resumed = []
    for cls, sd in ((getattr(oo, name), sd_r), (getattr(torch.optim, name), sd_o)):
        model = DDP(_model())
        model.module.load_state_dict(m_r.module.state_dict())
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls, **kw)
        opt.load_state_dict(checkpoint_roundtrip(sd))
        _zero_steps(model, opt, rank, range(STEPS, STEPS + 3))
        resumed.append(model.module)
    _zero_steps(m_r, z_r, rank, range(STEPS, STEPS + 3))  # torch's uninterrupted run
    for m in resumed:
        for (n, p_a), p_b in zip(m.named_parameters(), m_r.module.parameters(), strict=True):
            _merge(diff, compare.tensors(p_a, p_b, f"{name} ZeRO resumed param {n}"))
    return diff.max_abs


def dist_broadcast(objs: list[Any]) -> None:
    import torch.distributed as dist

    dist.broadcast_object_list(objs, src=0)


def zero_adamw(rank: int, world: int) -> float:
    return _zero("AdamW", rank, world)


def zero_sgd(rank: int, world: int) -> float:
    return _zero("SGD", rank, world)


def _ddp_zero_worker(rank: int, world: int) -> dict[str, Any]:
    return _checks(rank, world, [ddp_adamw_onecycle_cross_entropy, zero_adamw, zero_sgd])


# -------------------------------------------------------------------------------------------- FSDP2

# Every optimizer torch steps under FSDP2, with the paths it runs there (on CPU; gloo). Not listed:
# Rprop (torch's per-tensor step needs index_put_ on a DTensor and its foreach step _foreach_copy_, neither
# has a sharding rule), Adafactor (its row/column factoring of a sharded matrix needs a placement change
# torch refuses), SparseAdam (sparse gradients), fused SGD/Adagrad (no sharding rule for torch's kernels).
FSDP_PATHS: dict[str, tuple[dict[str, Any], ...]] = {
    **{n: ({}, {"foreach": True}) for n in ("SGD", "Adamax", "NAdam", "RAdam", "Adagrad", "Adadelta", "RMSprop",
                                            "ASGD")},
    "Adam": ({}, {"foreach": True}, {"fused": True}),
    "AdamW": ({}, {"foreach": True}, {"fused": True}),
    "Muon": ({},),
    "LBFGS": ({},),
}
FSDP_KW = {**OPTIM_CONFIGS, "Muon": {"lr": 0.02, "weight_decay": 0.01}, "LBFGS": {"lr": 0.5, "history_size": 4}}


def _sharded(seed: int = 0, bias: bool = True) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = _model(seed, bias)
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    return fully_shard(model)


def _local(t: Any) -> Any:
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def _layout(t: Any) -> Any:
    from torch.distributed.tensor import DTensor

    if isinstance(t, DTensor):
        return ("DTensor", t.placements, tuple(t.shape), tuple(t.to_local().shape), t.dtype)
    return (type(t).__name__, tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor) else type(t).__name__


def _fsdp_run(cls: type, kw: dict[str, Any], rank: int, steps: range, model: nn.Module | None = None,
              opt: torch.optim.Optimizer | None = None) -> tuple[nn.Module, torch.optim.Optimizer]:
    name = cls.__name__
    model = model or _sharded(bias=name != "Muon")  # Muon takes 2-D parameters only
    opt = opt or cls(model.parameters(), **kw)
    for step in steps:
        x, y = _batch(rank, step)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = _mse(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)
    return model, opt


def _fsdp_compare(ours: tuple[nn.Module, Any], ref: tuple[nn.Module, Any], what: str, diff: compare.Diff) -> None:
    """Local shards of every parameter and state tensor equal, with the same sharding (placements, global
    and local shapes) as torch's; no collective is needed."""
    (m_o, o_o), (m_r, o_r) = ours, ref
    for (n, p_o), p_r in zip(m_o.named_parameters(), m_r.parameters(), strict=True):
        assert _layout(p_o) == _layout(p_r), f"{what} param {n}"
        _merge(diff, compare.tensors(_local(p_o), _local(p_r), f"{what} param {n}"))
    s_o, s_r = o_o.state_dict()["state"], o_r.state_dict()["state"]
    assert set(s_o) == set(s_r), f"{what}: state for {sorted(s_o)} vs torch's {sorted(s_r)}"
    for k, st_r in s_r.items():
        assert set(s_o[k]) == set(st_r), f"{what}: state[{k}] keys {sorted(s_o[k])} vs {sorted(st_r)}"
        for key, v_r in st_r.items():
            v_o = s_o[k][key]
            where = f"{what} state[{k}][{key!r}]"
            if isinstance(v_r, list):  # LBFGS histories
                assert len(v_o) == len(v_r), where
                pairs = list(zip(v_o, v_r, strict=True))
            elif isinstance(v_r, torch.Tensor):
                pairs = [(v_o, v_r)]
            else:
                assert v_o == pytest.approx(v_r, rel=1e-10), where
                continue
            for a, b in pairs:
                assert _layout(a) == _layout(b), f"{where}: {_layout(a)} vs torch's {_layout(b)}"
                _merge(diff, compare.tensors(_local(a), _local(b), where))


def fsdp2_optimizers(rank: int, world: int, *_: Any) -> dict[str, float]:
    """Every optimizer and path of :data:`FSDP_PATHS`, optimlab's vs torch's, STEPS steps each."""
    import optimlab.optim as oo

    worst: dict[str, float] = {}
    for name, paths in FSDP_PATHS.items():
        for path in paths:
            kw = {**FSDP_KW[name], **path}
            label = f"{name}{path or ''}"
            ours = _fsdp_run(getattr(oo, name), kw, rank, range(STEPS))
            ref = _fsdp_run(getattr(torch.optim, name), kw, rank, range(STEPS))
            diff = compare.Diff()
            _fsdp_compare(ours, ref, label, diff)
            worst[label] = diff.max_abs
    return worst


def dcp_resume(rank: int, world: int, path: str) -> float:
    """FSDP2 + optimlab AdamW: 3 steps, ``get_{model,optimizer}_state_dict`` + ``dcp.save``; a fresh model
    and optimizer ``dcp.load`` + ``set_{model,optimizer}_state_dict`` and run 3 more steps: equal to an
    uninterrupted 6-step run. The same checkpoint loaded into torch's AdamW continues equal too."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    import optimlab.optim as oo

    kw = {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True}
    whole = _fsdp_run(oo.AdamW, kw, rank, range(2 * 3))
    model, opt = _fsdp_run(oo.AdamW, kw, rank, range(3))
    dcp.save({"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)},
             checkpoint_id=path)
    diff = compare.Diff()
    for cls in (oo.AdamW, torch.optim.AdamW):
        fresh = _sharded()
        fresh_opt = cls(fresh.parameters(), **kw)
        state = {"model": get_model_state_dict(fresh), "optim": get_optimizer_state_dict(fresh, fresh_opt)}
        dcp.load(state, checkpoint_id=path)
        set_model_state_dict(fresh, state["model"])
        set_optimizer_state_dict(fresh, fresh_opt, state["optim"])
        resumed = _fsdp_run(cls, kw, rank, range(3, 6), fresh, fresh_opt)
        _fsdp_compare(resumed, whole, f"resumed into {cls.__module__}.AdamW", diff)
    return diff.max_abs


def _fsdp_worker(rank: int, world: int, path: str) -> dict[str, Any]:
    return _checks(rank, world, [fsdp2_optimizers, dcp_resume], path)


# -------------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def ddp_zero() -> list[dict[str, Any]]:
    return _dist.run(_ddp_zero_worker)


@pytest.fixture(scope="module")
def fsdp(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _dist.run(_fsdp_worker, str(tmp_path_factory.mktemp("dcp") / "ckpt"))


def _entry(results: list[dict[str, Any]], check: str) -> list[Any]:
    out = []
    for rank, res in enumerate(results):
        status, value = res[check]
        assert status == "ok", f"rank {rank}:\n{value}"
        out.append(value)
    return out


def test_ddp(ddp_zero):
    """DDP: optimlab's CrossEntropyLoss, AdamW (amsgrad) and OneCycleLR vs torch's, 6 steps: losses,
    lrs, parameters and optimizer state (checked inside the worker, float32 tolerance)."""
    print("DDP max abs diff", _entry(ddp_zero, "ddp_adamw_onecycle_cross_entropy"))


@pytest.mark.parametrize("name", ["zero_adamw", "zero_sgd"])
def test_zero_redundancy_optimizer(ddp_zero, name):
    print(name, "max abs diff", _entry(ddp_zero, name))


def test_fsdp2_every_optimizer(fsdp):
    worst = _entry(fsdp, "fsdp2_optimizers")
    print("FSDP2 max abs diff per optimizer/path, rank 0:", worst[0])
    assert set(worst[0]) == {f"{n}{p or ''}" for n, ps in FSDP_PATHS.items() for p in ps}


def test_fsdp2_distributed_checkpoint_resume(fsdp):
    print("DCP resume max abs diff", _entry(fsdp, "dcp_resume"))
