"""Scheduler contract beyond the catalogue's lockstep runs: torch's base API, state dicts that
interchange with torch's mid-schedule (and load with ``weights_only=True``), torch's warnings, torch's
exceptions per scheduler, and torch's schedulers driving optimlab's optimizers."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.optim.lr_scheduler as T
from _util import checkpoint_roundtrip

import optimlab.optim as oo
from optimlab.optim import lr_scheduler as L


def sgd(lrs=(0.1,), momentum=0.9):
    return oo.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0],
                  momentum=momentum)


# name -> (kwargs, groups): one representative configuration of every scheduler built from kwargs alone
CONFIGS = {
    "LambdaLR": ({"lr_lambda": lambda t: 0.99**t}, (0.1, 0.01)),
    "MultiplicativeLR": ({"lr_lambda": lambda t: 0.99}, (0.1,)),
    "StepLR": ({"step_size": 7, "gamma": 0.5}, (0.1, 0.3)),
    "MultiStepLR": ({"milestones": [30, 10, 60], "gamma": 0.5}, (0.1,)),
    "ConstantLR": ({"factor": 0.5, "total_iters": 40}, (0.1,)),
    "LinearLR": ({"start_factor": 0.1, "total_iters": 60}, (0.1, 1.0)),
    "ExponentialLR": ({"gamma": 0.97}, (0.1,)),
    "PolynomialLR": ({"total_iters": 90, "power": 2.0}, (0.1,)),
    "CosineAnnealingLR": ({"T_max": 25, "eta_min": 0.001}, (0.1, 0.2)),
    "CyclicLR": ({"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 9, "mode": "triangular2"}, (0.1, 0.2)),
    "OneCycleLR": ({"max_lr": 0.1, "total_steps": 100, "three_phase": True}, (0.1,)),
    "CosineAnnealingWarmRestarts": ({"T_0": 5, "T_mult": 2, "eta_min": 1e-3}, (0.1,)),
}


def _hyper(opt):
    return [(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("direction", ["torch->optimlab", "optimlab->torch"])
def test_state_dict_interchanges_mid_schedule(name, direction):
    """Run one side 37 steps, save, load into the other side's fresh scheduler (over an optimizer in the
    same state), and the two continue identically for 60 steps."""
    kwargs, lrs = CONFIGS[name]
    src_ns, dst_ns = (T, L) if direction == "torch->optimlab" else (L, T)
    o_src, o_dst, o_ref = sgd(lrs), sgd(lrs), sgd(lrs)
    src = getattr(src_ns, name)(o_src, **kwargs)
    ref = getattr(src_ns, name)(o_ref, **kwargs)  # the source kind, continued without interruption
    for _ in range(37):
        o_src.step(), src.step()
        o_ref.step(), ref.step()
    sd = checkpoint_roundtrip(src.state_dict())
    dst = getattr(dst_ns, name)(o_dst, **kwargs)
    assert set(sd) == set(dst.state_dict())
    o_dst.load_state_dict(o_src.state_dict())
    dst.load_state_dict(sd)  # (torch's CyclicLR.load_state_dict pops a key from the dict it is given)
    for _ in range(60):
        o_dst.step(), dst.step()
        o_ref.step(), ref.step()
        assert _hyper(o_dst) == _hyper(o_ref)
        assert dst.get_last_lr() == ref.get_last_lr()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_state_dict_keys_equal_torch(name):
    kwargs, lrs = CONFIGS[name]
    ours, theirs = getattr(L, name)(sgd(lrs), **kwargs), getattr(T, name)(sgd(lrs), **kwargs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert checkpoint_roundtrip(ours.state_dict()).keys() == theirs.state_dict().keys()


def test_composite_and_plateau_state_dicts_interchange():
    def seq(ns, opt):
        return ns.SequentialLR(opt, [ns.LinearLR(opt, 0.1, total_iters=10), ns.ExponentialLR(opt, 0.9)], [10])

    def chain(ns, opt):
        return ns.ChainedScheduler([ns.StepLR(opt, 5, 0.5), ns.ExponentialLR(opt, 0.99)])

    for make in (seq, chain):
        o_t, o_o = sgd(), sgd()
        t, o = make(T, o_t), make(L, o_o)
        for _ in range(15):
            o_t.step(), t.step()
        o.load_state_dict(checkpoint_roundtrip(t.state_dict()))
        o_o.load_state_dict(o_t.state_dict())
        assert checkpoint_roundtrip(o.state_dict()).keys() == t.state_dict().keys()
        for _ in range(20):
            o_t.step(), t.step(), o_o.step(), o.step()
            assert _hyper(o_o) == _hyper(o_t)
    o_t, o_o = sgd((0.1, 0.2)), sgd((0.1, 0.2))
    t, o = T.ReduceLROnPlateau(o_t, patience=1, min_lr=[0.01, 0.001]), L.ReduceLROnPlateau(o_o, patience=1)
    for k in range(7):
        t.step(1.0 + (k % 3))
    o.load_state_dict(checkpoint_roundtrip(t.state_dict()))
    o_o.load_state_dict(o_t.state_dict())
    for k in range(30):
        t.step(1.0 / (1 + k // 4)), o.step(1.0 / (1 + k // 4))
        assert _hyper(o_o) == _hyper(o_t)


def test_callable_object_lambda_state_round_trips():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, t):
            return self.rate**t

    a, b = L.LambdaLR(sgd(), Decay(0.9)), L.LambdaLR(sgd(), Decay(0.5))
    sd = a.state_dict()
    assert sd["lr_lambdas"] == [{"rate": 0.9}]
    b.load_state_dict(sd)
    assert b.lr_lambdas[0].rate == 0.9 and "lr_lambdas" in sd


def test_base_attributes_and_methods(capsys):
    opt = sgd((0.1, 0.5))
    s = L.StepLR(opt, step_size=2, gamma=0.5)
    assert isinstance(s, torch.optim.lr_scheduler.LRScheduler)
    assert s.optimizer is opt and s.base_lrs == [0.1, 0.5] and s.last_epoch == 0
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt.step(), s.step(), opt.step(), s.step()
    assert s.last_epoch == 2 and s.get_last_lr() == [0.05, 0.25]
    with pytest.warns(UserWarning, match="get_last_lr"):
        s.get_lr()
    s.print_lr(True, 1, 0.25, epoch=3)
    assert "group 1 to 2.5000e-01" in capsys.readouterr().out


def test_warnings_match_torch():
    for ns in (T, L):
        opt = sgd()
        s = ns.ExponentialLR(opt, 0.9)
        with pytest.warns(UserWarning, match=r"before `optimizer.step\(\)`"):
            s.step()
        with pytest.warns(UserWarning, match="epoch parameter"):
            s.step(5)
    o_t, o_o = sgd(), sgd()
    t, o = T.MultiplicativeLR(o_t, lambda e: 0.9), L.MultiplicativeLR(o_o, lambda e: 0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in (t, o):
            s.step(4)  # no closed form in torch: the recursive form runs with last_epoch = 4
    assert o_o.param_groups[0]["lr"] == o_t.param_groups[0]["lr"]


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
                                  "PolynomialLR", "CosineAnnealingLR"])
@pytest.mark.parametrize("degenerate", [False, True])
def test_step_with_epoch_uses_torchs_closed_form(name, degenerate):
    kwargs, lrs = CONFIGS[name]
    if degenerate:  # where torch's closed form disagrees with its own stepping, step(epoch) is torch's
        kwargs = {**kwargs, "total_iters": 0} if "total_iters" in kwargs else kwargs
        kwargs = {**kwargs, "milestones": [0, -3, 20]} if "milestones" in kwargs else kwargs
    o_t, o_o = sgd(lrs), sgd(lrs)
    t, o = getattr(T, name)(o_t, **kwargs), getattr(L, name)(o_o, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in (3, 17, 40, 41, 12, 90, 95):
            try:
                t.step(e)
            except ZeroDivisionError:
                with pytest.raises(ZeroDivisionError):
                    o.step(e)
                return
            o.step(e)
            assert _hyper(o_o) == _hyper(o_t)


def test_torch_scheduler_drives_optimlab_optimizer_and_vice_versa():
    o1, o2 = sgd(), torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    t, o = T.OneCycleLR(o1, 0.1, total_steps=50), L.OneCycleLR(o2, 0.1, total_steps=50)
    for _ in range(50):
        o1.step(), t.step(), o2.step(), o.step()
        assert _hyper(o1) == _hyper(o2)


def _raises_like_torch(make):
    try:
        make(T)
    except Exception as e:  # noqa: BLE001 - the type torch raises is what we check
        with pytest.raises(type(e)):
            make(L)
        return type(e)
    raise AssertionError("torch did not raise")


PLAIN = {"params": [torch.zeros(1, requires_grad=True)]}
INVALID = {
    "LambdaLR": [lambda ns: ns.LambdaLR(sgd((0.1, 0.2)), [lambda t: 1.0])],
    "MultiplicativeLR": [lambda ns: ns.MultiplicativeLR(sgd(), 0.5), lambda ns: ns.MultiplicativeLR(object(), 0.5)],
    "StepLR": [lambda ns: ns.StepLR(object(), 3), lambda ns: ns.StepLR(sgd(), 3, last_epoch=4)],
    "MultiStepLR": [lambda ns: ns.MultiStepLR(sgd(), 5), lambda ns: ns.MultiStepLR(sgd(), [3], last_epoch=2)],
    "ConstantLR": [lambda ns: ns.ConstantLR(sgd(), factor=1.01), lambda ns: ns.ConstantLR(sgd(), factor=-1)],
    "LinearLR": [lambda ns: ns.LinearLR(sgd(), start_factor=0), lambda ns: ns.LinearLR(sgd(), end_factor=2)],
    "ExponentialLR": [lambda ns: ns.ExponentialLR(sgd()), lambda ns: ns.ExponentialLR(sgd(), 0.9, last_epoch=3)],
    "PolynomialLR": [lambda ns: ns.PolynomialLR(sgd(), total_iters=3, last_epoch=1)],
    "CosineAnnealingLR": [lambda ns: ns.CosineAnnealingLR(sgd())],
    "SequentialLR": [lambda ns: ns.SequentialLR(sgd(), [], []),
                     lambda ns: ns.SequentialLR((o := sgd()), [ns.StepLR(o, 2)], [1]),
                     lambda ns: ns.SequentialLR((o := sgd()), [ns.StepLR(o, 2), ns.ReduceLROnPlateau(o)], [1]),
                     lambda ns: ns.SequentialLR(sgd(), [ns.StepLR(sgd(), 2)], []),
                     lambda ns: ns.SequentialLR(sgd(), [object()], [])],
    "ChainedScheduler": [lambda ns: ns.ChainedScheduler([]),
                         lambda ns: ns.ChainedScheduler([ns.ReduceLROnPlateau(sgd())]),
                         lambda ns: ns.ChainedScheduler([ns.StepLR(sgd(), 2), ns.StepLR(sgd(), 2)])],
    "ReduceLROnPlateau": [lambda ns: ns.ReduceLROnPlateau(sgd(), factor=1.0),
                          lambda ns: ns.ReduceLROnPlateau(sgd(), mode="avg"),
                          lambda ns: ns.ReduceLROnPlateau(sgd(), threshold_mode="x"),
                          lambda ns: ns.ReduceLROnPlateau(sgd(), min_lr=[0.1, 0.2]),
                          lambda ns: ns.ReduceLROnPlateau(object())],
    "CyclicLR": [lambda ns: ns.CyclicLR(sgd(), 0.01, 0.1, mode="saw"),
                 lambda ns: ns.CyclicLR(sgd(), [0.01, 0.02], 0.1),
                 lambda ns: ns.CyclicLR(torch.optim.Adagrad([PLAIN]), 0.01, 0.1),
                 lambda ns: ns.CyclicLR(object(), 0.01, 0.1)],
    "OneCycleLR": [lambda ns: ns.OneCycleLR(sgd(), 0.1), lambda ns: ns.OneCycleLR(sgd(), 0.1, total_steps=0),
                   lambda ns: ns.OneCycleLR(sgd(), 0.1, total_steps=10.0),
                   lambda ns: ns.OneCycleLR(sgd(), 0.1, epochs=-1, steps_per_epoch=3),
                   lambda ns: ns.OneCycleLR(sgd(), 0.1, epochs=2, steps_per_epoch=0),
                   lambda ns: ns.OneCycleLR(sgd(), 0.1, total_steps=10, pct_start=0.0 - 0.1),
                   lambda ns: ns.OneCycleLR(sgd(), 0.1, total_steps=10, pct_start=1.1),
                   lambda ns: ns.OneCycleLR(sgd(), 0.1, total_steps=10, anneal_strategy="cosine"),
                   lambda ns: ns.OneCycleLR(torch.optim.Adagrad([PLAIN]), 0.1, total_steps=10),
                   lambda ns: ns.OneCycleLR(sgd(), 0.1, total_steps=10, last_epoch=3)],
    "CosineAnnealingWarmRestarts": [lambda ns: ns.CosineAnnealingWarmRestarts(sgd(), 0),
                                    lambda ns: ns.CosineAnnealingWarmRestarts(sgd(), 2.0),
                                    lambda ns: ns.CosineAnnealingWarmRestarts(sgd(), 5, T_mult=0),
                                    lambda ns: ns.CosineAnnealingWarmRestarts(sgd(), 5, T_mult=2.0),
                                    lambda ns: ns.CosineAnnealingWarmRestarts(sgd(), 5, eta_min=None),
                                    lambda ns: ns.CosineAnnealingWarmRestarts(sgd(), 5).step(-1)],
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_arguments_raise_what_torch_raises(name):
    for make in INVALID[name]:
        _raises_like_torch(make)


def test_onecycle_past_total_steps_raises_valueerror():
    def run(ns):
        opt = sgd()
        s = ns.OneCycleLR(opt, 0.1, total_steps=10)
        for _ in range(11):
            opt.step(), s.step()

    assert _raises_like_torch(run) is ValueError


def test_unsorted_and_repeated_milestones_as_torch():
    for ms in ([30, 10, 20], [10, 10, 20], (5, 40, 5)):
        o_t, o_o = sgd(), sgd()
        t, o = T.MultiStepLR(o_t, ms, 0.5), L.MultiStepLR(o_o, ms, 0.5)
        assert o.milestones == t.milestones
        for _ in range(50):
            o_t.step(), t.step(), o_o.step(), o.step()
            assert _hyper(o_o) == _hyper(o_t)


def test_schedulers_do_not_mutate_caller_lists():
    base, top = [0.01, 0.001], [0.1, 0.02]
    L.CyclicLR(sgd((0.1, 0.2)), base, top)
    min_lr = [0.0, 0.1]
    L.ReduceLROnPlateau(sgd((0.1, 0.2)), min_lr=min_lr)
    assert base == [0.01, 0.001] and top == [0.1, 0.02] and min_lr == [0.0, 0.1]


def test_tensor_lr_filled_in_place_like_torch():
    for ns in (T, L):
        opt = oo.SGD([torch.zeros(1, requires_grad=True)], lr=torch.tensor(0.1), momentum=0.9)
        lr = opt.param_groups[0]["lr"]
        s = ns.CosineAnnealingLR(opt, 10)
        for _ in range(5):
            opt.step(), s.step()
        assert opt.param_groups[0]["lr"] is lr
        assert math.isclose(float(lr), 0.05 * (1 + math.cos(math.pi * 5 / 10)), rel_tol=1e-6)
