"""The family-wide ``set_fixed`` switch: torch's known scheduler bugs are reproduced by default
(parity) and corrected when it is on; and WarmupCosineLR equals the composition it replaces."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.optim.lr_scheduler as T

import optimlab.optim as oo
from optimlab.optim import lr_scheduler as L


def sgd(lrs=(0.1,)):
    return oo.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0],
                  momentum=0.9)


def lrs_of(opt, sched, n, metric=None):
    out = []
    for _ in range(n):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def inner_seq(ns, opt):
    return ns.SequentialLR(opt, [ns.ConstantLR(opt, factor=0.5, total_iters=2),
                                 ns.ConstantLR(opt, factor=0.2, total_iters=10)], milestones=[2])


def inner_chain(ns, opt):
    return ns.ChainedScheduler([ns.ConstantLR(opt, factor=0.5, total_iters=3), ns.ExponentialLR(opt, 0.9)])


def test_switch_and_context_manager_restore():
    assert not L.is_fixed()
    with L.fixed():
        assert L.is_fixed()
        with L.fixed(False):
            assert not L.is_fixed()
        assert L.is_fixed()
    assert not L.is_fixed()
    assert L.set_fixed(True) is False and L.set_fixed(False) is True


@pytest.mark.parametrize("inner", [inner_seq, inner_chain])
def test_nested_first_reproduces_torch_by_default_and_is_transparent_when_fixed(inner):
    """pytorch issue 196243: wrapping a composite in SequentialLR([inner], []) shifts it in torch."""
    o1 = sgd()
    alone = lrs_of(o1, inner(L, o1), 25)
    o_t, o_d = sgd(), sgd()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's extra step also warns about step order
        torch_nested = lrs_of(o_t, T.SequentialLR(o_t, [inner(T, o_t)], milestones=[]), 25)
        default = lrs_of(o_d, L.SequentialLR(o_d, [inner(L, o_d)], milestones=[]), 25)
    assert default == torch_nested
    assert torch_nested != alone  # the bug is real
    with L.fixed():
        o_f = sgd()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and the spurious step-order warning is gone
            s = L.SequentialLR(o_f, [inner(L, o_f)], milestones=[])
        fixed = lrs_of(o_f, s, 25)
    assert fixed == alone
    for t in range(25):  # lr_at gives the corrected schedule
        assert s.lr_at(t) == pytest.approx(alone[t], rel=1e-14)


@pytest.mark.parametrize("inner", [inner_seq, inner_chain])
def test_nested_later_raises_like_torch_by_default_and_restarts_when_fixed(inner):
    def outer(ns, opt):
        return ns.SequentialLR(opt, [ns.StepLR(opt, 4, 0.5), inner(ns, opt)], milestones=[10])

    for ns in (T, L):
        o = sgd()
        with pytest.raises(NotImplementedError):
            lrs_of(o, outer(ns, o), 15)
    with L.fixed():
        o = sgd()
        s = outer(L, o)
        got = lrs_of(o, s, 40)
        o2 = sgd()
        alone = lrs_of(o2, inner(L, o2), 30)
    o3 = sgd()
    head = lrs_of(o3, L.StepLR(o3, 4, 0.5), 10)
    assert got[:10] == head and got[10:] == alone


def test_onecycle_past_total_steps():
    o = sgd()
    s = L.OneCycleLR(o, 0.1, total_steps=20)
    lrs_of(o, s, 20)
    with pytest.raises(ValueError, match="Tried to step 21 times"):
        o.step(), s.step()
    with pytest.raises(ValueError):
        s.lr_at(21)
    with L.fixed():
        o = sgd()
        s = L.OneCycleLR(o, 0.1, total_steps=20)
        seq = lrs_of(o, s, 60)
        moms = s.momentum_at(59)
        assert s.lr_at(1000) == s.lr_at(19)
    final = o.param_groups[0]["min_lr"]
    assert seq[19][0] == pytest.approx(final, rel=1e-15) and all(v == seq[19] for v in seq[19:])
    assert moms == [o.param_groups[0]["max_momentum"]]


def test_warm_restarts_epoch_at_cycle_boundary():
    """torch finds the cycle with a floating log: log(1000, 10) = 2.999..., so step(111) with T_0=1,
    T_mult=10 lands at the *end* of cycle 2 (lr = eta_min) instead of the start of cycle 3 (lr = base)."""
    def at(ns, epoch):
        o = sgd()
        s = ns.CosineAnnealingWarmRestarts(o, T_0=1, T_mult=10, eta_min=0.001)
        s.step(epoch)
        return o.param_groups[0]["lr"]

    assert at(L, 111) == at(T, 111) == pytest.approx(0.001)
    o = sgd()
    stepped = lrs_of(o, L.CosineAnnealingWarmRestarts(o, T_0=1, T_mult=10, eta_min=0.001), 112)[111][0]
    assert stepped == 0.1
    with L.fixed():
        assert at(L, 111) == stepped
        assert at(L, 111.5) == pytest.approx(0.001 + 0.099 * (1 + math.cos(math.pi * 0.5 / 1000)) / 2)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("lrs", [(0.1,), (0.1, 0.02)])
def test_warmup_cosine_equals_the_composition_it_replaces(strategy, lrs):
    W, total, s0, eta = 50, 1000, 0.01, 1e-4
    o_t = sgd(lrs)
    if strategy == "cos":
        decay = T.CosineAnnealingLR(o_t, T_max=total - W, eta_min=eta)
    else:
        decay = T.LambdaLR(o_t, [lambda t, b=b: 1 + (eta / b - 1) * min(t, total - W) / (total - W) for b in lrs])
    ref = T.SequentialLR(o_t, [T.LinearLR(o_t, start_factor=s0, total_iters=W), decay], milestones=[W])
    o = sgd(lrs)
    ours = L.WarmupCosineLR(o, W, total, start_factor=s0, eta_min=eta, anneal_strategy=strategy)
    for t in range(total + 1):
        if t:
            o_t.step(), ref.step(), o.step(), ours.step()
        for g, g_t, closed in zip(o.param_groups, o_t.param_groups, ours.lr_at(t), strict=True):
            assert g["lr"] == closed
            assert math.isclose(g["lr"], g_t["lr"], rel_tol=1e-12, abs_tol=1e-15), t
    for _ in range(10):  # held at eta_min past total_steps
        o.step(), ours.step()
        assert all(g["lr"] == pytest.approx(eta, rel=1e-15) for g in o.param_groups)


def test_warmup_cosine_rejects_bad_arguments():
    with pytest.raises(ValueError):
        L.WarmupCosineLR(sgd(), 10, 10)
    with pytest.raises(ValueError):
        L.WarmupCosineLR(sgd(), -1, 10)
    with pytest.raises(ValueError):
        L.WarmupCosineLR(sgd(), 1, 10, start_factor=0.0)
    with pytest.raises(ValueError):
        L.WarmupCosineLR(sgd(), 1, 10, anneal_strategy="exp")
