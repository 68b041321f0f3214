"""Catalogue of LR schedulers: every scheduler of ``torch.optim.lr_scheduler`` with cases covering
every argument, several param groups, resumption (``last_epoch``), compositions, and the invalid
arguments torch rejects (a case passes when both raise the same exception type).

Extra keys are read by :mod:`optimlab.parity.sched`.
"""

from __future__ import annotations

import math
from typing import Any

from . import Case, Component, FuzzArg

G3 = {"lrs": (0.1, 0.01, 1.0)}  # three param groups with different lrs
G2 = {"lrs": (0.1, 0.03)}


def resume(name: str, last_epoch: int, **kwargs: Any):
    """Build ``name`` as if resuming at ``last_epoch`` (groups carry ``initial_lr``, as after a load)."""

    def build(ns: Any, opt: Any) -> Any:
        for g in opt.param_groups:
            g.setdefault("initial_lr", g["lr"])
        return getattr(ns, name)(opt, last_epoch=last_epoch, **kwargs)

    return build


def resume_after(name: str, last_epoch: int, **kwargs: Any):
    """Build ``name`` fresh (so the groups carry every key it records), then again resuming at ``last_epoch``."""

    def build(ns: Any, opt: Any) -> Any:
        getattr(ns, name)(opt, **kwargs)
        return getattr(ns, name)(opt, last_epoch=last_epoch, **kwargs)

    return build


def build(fn):
    """A ``build`` extra from ``fn(ns, opt)``: lets a case compose schedulers from the same namespace."""
    return {"build": fn}


def plateau_metric(step: int) -> float:
    """A loss that improves, stalls on plateaus of growing length, and jitters: exercises patience,
    cooldown and thresholds (deterministic, so both sides see the same sequence)."""
    block = int(math.isqrt(step))
    return 1.0 / (1 + block) + 1e-5 * ((step * 7919) % 13)


METRICS = tuple(plateau_metric(k) for k in range(1, 401))
NEG_METRICS = tuple(-m for m in METRICS)


class Halving:
    """A callable object (its ``__dict__`` is what torch's state_dict keeps for lr_lambda / scale_fn)."""

    def __init__(self, every: int = 100) -> None:
        self.every = every

    def __call__(self, x: float) -> float:
        return 0.5 ** (x // self.every)


_LAMBDA = Component(
    "sched", "LambdaLR",
    cases=(
        Case("inverse-sqrt", {"lr_lambda": lambda t: 1 / math.sqrt(t + 1)}, bitwise=True),
        Case("per-group", {"lr_lambda": [lambda t: 0.99**t, lambda t: 1 + math.sin(t / 10)]}, bitwise=True,
             extra=G2),
        Case("callable-object", {"lr_lambda": Halving(50)}, bitwise=True, extra=G3),
        Case("wrong-count", {"lr_lambda": [lambda t: 1.0]}, extra=G2),
        Case("resume", {}, bitwise=True, extra=build(resume("LambdaLR", 20, lr_lambda=lambda t: 0.995**t))),
    ),
)

_MULT = Component(
    "sched", "MultiplicativeLR",
    cases=(
        Case("0.995", {"lr_lambda": lambda t: 0.995}, bitwise=True),
        Case("per-group", {"lr_lambda": [lambda t: 0.999, lambda t: 1.0 if t % 10 else 0.9]}, bitwise=True,
             extra=G2),
        Case("not-callable", {"lr_lambda": 0.9}),
        Case("resume", {}, bitwise=True, extra=build(resume("MultiplicativeLR", 7, lr_lambda=lambda t: 0.99))),
    ),
)

_STEP = Component(
    "sched", "StepLR",
    cases=(
        Case("step3-gamma0.5", {"step_size": 3, "gamma": 0.5}, bitwise=True),
        Case("default-gamma", {"step_size": 30}, bitwise=True),
        Case("step1-gamma0.99", {"step_size": 1, "gamma": 0.99}, bitwise=True),
        Case("groups", {"step_size": 7, "gamma": 0.7}, bitwise=True, extra={"lrs": (0.1, 0.01, 1.0)}),
        Case("lr0.3", {"step_size": 5, "gamma": 0.9}, bitwise=True, extra={"lrs": (0.3,)}),
        Case("resume", {}, bitwise=True, extra={"build": resume("StepLR", 10, step_size=4, gamma=0.5)}),
        Case("resume-no-initial-lr", {"step_size": 4, "last_epoch": 10}),
        Case("step0", {"step_size": 0}),  # ZeroDivisionError at the first step, in both
    ),
    fuzz={"step_size": FuzzArg("int", 1, 50), "gamma": FuzzArg("float", 0.01, 1.0)},
)

_MULTISTEP = Component(
    "sched", "MultiStepLR",
    cases=(
        Case("sorted", {"milestones": [100, 300, 600], "gamma": 0.5}, bitwise=True),
        Case("unsorted", {"milestones": [600, 100, 300]}, bitwise=True),
        Case("repeated", {"milestones": [50, 50, 400], "gamma": 0.3}, bitwise=True, extra=G3),
        Case("tuple-range", {"milestones": range(10, 1000, 90), "gamma": 0.9}, bitwise=True),
        Case("zero-and-negative", {"milestones": [0, -5, 10], "gamma": 0.5}, bitwise=True),
        Case("resume", {}, bitwise=True, extra=build(resume("MultiStepLR", 150, milestones=[100, 200]))),
    ),
    fuzz={"gamma": FuzzArg("float", 0.01, 1.0)},
    fuzz_base=Case("fuzz", {"milestones": [5, 9]}),
)

_CONSTANT = Component(
    "sched", "ConstantLR",
    cases=(
        Case("default", {}, bitwise=True),
        Case("half-50", {"factor": 0.5, "total_iters": 50}, bitwise=True, extra=G3),
        Case("factor-1", {"factor": 1.0, "total_iters": 3}, bitwise=True),
        Case("total-iters-0", {"factor": 0.5, "total_iters": 0}, bitwise=True),
        Case("factor-0", {"factor": 0.0, "total_iters": 3}),  # ZeroDivisionError at total_iters, in both
        Case("factor-above-1", {"factor": 1.5}),
        Case("factor-negative", {"factor": -0.1}),
        Case("resume", {}, bitwise=True, extra=build(resume("ConstantLR", 2, factor=0.25, total_iters=10))),
    ),
    fuzz={"factor": FuzzArg("float", 0.01, 1.0), "total_iters": FuzzArg("int", 0, 20)},
)

_LINEAR = Component(
    "sched", "LinearLR",
    cases=(
        Case("default", {}, bitwise=True),
        Case("warmup-100", {"start_factor": 0.01, "total_iters": 100}, bitwise=True, extra=G3),
        Case("decay-800", {"start_factor": 1.0, "end_factor": 0.05, "total_iters": 800}, bitwise=True),
        Case("to-zero", {"start_factor": 0.5, "end_factor": 0.0, "total_iters": 400}, bitwise=True),
        Case("total-iters-0", {"start_factor": 0.5, "total_iters": 0}, bitwise=True),
        Case("start-0", {"start_factor": 0.0}),
        Case("start-above-1", {"start_factor": 1.2}),
        Case("end-above-1", {"end_factor": 1.5}),
        Case("end-negative", {"end_factor": -0.5}),
        Case("resume", {}, bitwise=True, extra=build(resume("LinearLR", 3, start_factor=0.1, total_iters=30))),
    ),
    fuzz={"start_factor": FuzzArg("float", 0.01, 1.0), "end_factor": FuzzArg("float", 0.0, 1.0),
          "total_iters": FuzzArg("int", 0, 30)},
)

_EXP = Component(
    "sched", "ExponentialLR",
    cases=(
        Case("0.99", {"gamma": 0.99}, bitwise=True),
        Case("0.999-groups", {"gamma": 0.999}, bitwise=True, extra=G3),
        Case("growing", {"gamma": 1.001}, bitwise=True),
        Case("resume", {}, bitwise=True, extra=build(resume("ExponentialLR", 40, gamma=0.98))),
    ),
    fuzz={"gamma": FuzzArg("float", 0.5, 1.0)},
)

_POLY = Component(
    "sched", "PolynomialLR",
    cases=(
        Case("default", {}, bitwise=True),
        Case("quadratic-800", {"total_iters": 800, "power": 2.0}, bitwise=True, extra=G3),
        Case("sqrt-1000", {"total_iters": 1000, "power": 0.5}, bitwise=True),
        Case("total-iters-0", {"total_iters": 0}, bitwise=True),
        Case("resume", {}, bitwise=True, extra=build(resume("PolynomialLR", 100, total_iters=500, power=1.5))),
    ),
    fuzz={"total_iters": FuzzArg("int", 0, 30), "power": FuzzArg("float", 0.1, 4.0)},
)

_COS = Component(
    "sched", "CosineAnnealingLR",
    cases=(
        Case("T100-periodic", {"T_max": 100}, bitwise=True),
        Case("T1000-eta", {"T_max": 1000, "eta_min": 1e-3}, bitwise=True, extra=G3),
        Case("T37-eta", {"T_max": 37, "eta_min": 0.01}, bitwise=True, extra=G2),
        Case("resume", {}, bitwise=True, extra=build(resume("CosineAnnealingLR", 30, T_max=200, eta_min=1e-4))),
    ),
    fuzz={"T_max": FuzzArg("int", 1, 40), "eta_min": FuzzArg("float", 0.0, 0.05)},
)


def _seq(kind: str):
    def make(ns: Any, opt: Any) -> Any:
        if kind == "warmup-cosine":
            return ns.SequentialLR(opt, [ns.LinearLR(opt, start_factor=0.01, total_iters=100),
                                         ns.CosineAnnealingLR(opt, T_max=900, eta_min=1e-4)], milestones=[100])
        if kind == "three":
            return ns.SequentialLR(opt, [ns.ConstantLR(opt, factor=0.1, total_iters=5), ns.ExponentialLR(opt, 0.99),
                                         ns.StepLR(opt, step_size=50, gamma=0.5)], milestones=[20, 300])
        if kind == "linear-multistep":
            return ns.SequentialLR(opt, [ns.LinearLR(opt, total_iters=10), ns.MultiStepLR(opt, [100, 400])],
                                   milestones=[50])
        if kind == "poly-lambda-cyclic":
            return ns.SequentialLR(opt, [ns.PolynomialLR(opt, total_iters=100, power=2.0),
                                         ns.LambdaLR(opt, lambda t: 1 / (1 + t)),
                                         ns.CyclicLR(opt, 0.001, 0.1, step_size_up=50)], milestones=[200, 500])
        if kind in ("chained-first", "chained-later"):  # torch: shifted (first) / NotImplementedError (later)
            chained = ns.ChainedScheduler([ns.ConstantLR(opt, factor=0.5, total_iters=30),
                                           ns.ExponentialLR(opt, 0.995)])
            mult = ns.MultiplicativeLR(opt, lambda t: 0.99)
            order = [chained, mult] if kind == "chained-first" else [mult, chained]
            return ns.SequentialLR(opt, order, milestones=[100])
        if kind == "nested-first":  # pytorch issue 196243: torch shifts the inner schedule by one step
            inner = ns.SequentialLR(opt, [ns.ConstantLR(opt, factor=0.5, total_iters=2),
                                          ns.ConstantLR(opt, factor=0.2, total_iters=10)], milestones=[2])
            return ns.SequentialLR(opt, [inner], milestones=[])
        if kind == "nested-later":  # torch raises NotImplementedError at the milestone
            inner = ns.SequentialLR(opt, [ns.ConstantLR(opt, factor=0.5, total_iters=2),
                                          ns.ExponentialLR(opt, 0.9)], milestones=[2])
            return ns.SequentialLR(opt, [ns.StepLR(opt, 10), inner], milestones=[30])
        if kind == "unsorted-milestones":  # not validated by torch: bisect on an unsorted list, reproduced
            return ns.SequentialLR(opt, [ns.ConstantLR(opt, 0.5, 10), ns.ExponentialLR(opt, 0.99),
                                         ns.StepLR(opt, 30, 0.5)], milestones=[300, 100])
        if kind == "empty":
            return ns.SequentialLR(opt, [], milestones=[])
        if kind == "milestone-count":
            return ns.SequentialLR(opt, [ns.StepLR(opt, 3), ns.StepLR(opt, 5)], milestones=[3, 6])
        if kind == "plateau-child":
            return ns.SequentialLR(opt, [ns.StepLR(opt, 3), ns.ReduceLROnPlateau(opt)], milestones=[3])
        if kind == "other-optimizer":
            import torch

            from ..optim import SGD

            other = SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
            return ns.SequentialLR(opt, [ns.StepLR(opt, 3), ns.StepLR(other, 5)], milestones=[3])
        if kind == "resume":
            for g in opt.param_groups:
                g.setdefault("initial_lr", g["lr"])
            children = [ns.ExponentialLR(opt, 0.99, last_epoch=5), ns.StepLR(opt, 10, last_epoch=5)]
            return ns.SequentialLR(opt, children, milestones=[40], last_epoch=5)
        raise KeyError(kind)

    return make


_SEQ = Component(
    "sched", "SequentialLR",
    cases=tuple(
        Case(k, {}, bitwise=True, extra={"build": _seq(k), **(G2 if k in ("three", "resume") else {})})
        for k in ("warmup-cosine", "three", "linear-multistep", "poly-lambda-cyclic", "chained-first", "chained-later",
                  "nested-first", "nested-later",
                  "unsorted-milestones", "empty", "milestone-count", "plateau-child", "other-optimizer",
                  "resume")
    ),
)


def _chain(kind: str):
    def make(ns: Any, opt: Any) -> Any:
        if kind == "constant-exp":
            return ns.ChainedScheduler([ns.ConstantLR(opt, factor=0.1, total_iters=20), ns.ExponentialLR(opt, 0.995)])
        if kind == "step-linear-multistep":
            return ns.ChainedScheduler([ns.StepLR(opt, 100, 0.5), ns.LinearLR(opt, 0.2, total_iters=50),
                                        ns.MultiStepLR(opt, [300, 700], 0.3)], optimizer=opt)
        if kind == "cosine-exp":
            return ns.ChainedScheduler([ns.CosineAnnealingLR(opt, T_max=300, eta_min=1e-3),
                                        ns.ExponentialLR(opt, 0.999)])
        if kind == "poly-mult-lambda":
            return ns.ChainedScheduler([ns.PolynomialLR(opt, 900, 1.5), ns.MultiplicativeLR(opt, lambda t: 0.9995),
                                        ns.LambdaLR(opt, lambda t: 1 / (1 + t / 100))])
        if kind == "empty":
            return ns.ChainedScheduler([])
        if kind == "plateau-child":
            return ns.ChainedScheduler([ns.StepLR(opt, 3), ns.ReduceLROnPlateau(opt)])
        raise KeyError(kind)

    return make


_CHAIN = Component(
    "sched", "ChainedScheduler",
    cases=tuple(
        Case(k, {}, bitwise=True, extra={"build": _chain(k), **(G3 if k == "cosine-exp" else {})})
        for k in ("constant-exp", "step-linear-multistep", "cosine-exp", "poly-mult-lambda", "empty", "plateau-child")
    ),
)

_PLATEAU_M = {"metrics": METRICS}
_PLATEAU = Component(
    "sched", "ReduceLROnPlateau",
    cases=(
        Case("default", {}, bitwise=True, extra=_PLATEAU_M),
        Case("min-rel-patience3", {"patience": 3, "factor": 0.5}, bitwise=True, extra=_PLATEAU_M),
        Case("min-abs-cooldown", {"threshold_mode": "abs", "threshold": 1e-3, "patience": 2, "cooldown": 5,
                                  "factor": 0.7}, bitwise=True, extra=_PLATEAU_M),
        Case("max-rel", {"mode": "max", "patience": 4, "factor": 0.5}, bitwise=True, extra={"metrics": NEG_METRICS}),
        Case("max-abs-patience0", {"mode": "max", "threshold_mode": "abs", "threshold": 1e-4, "patience": 0,
                                   "factor": 0.9}, bitwise=True, extra={"metrics": NEG_METRICS}),
        Case("min-lr-scalar", {"patience": 1, "factor": 0.5, "min_lr": 1e-3}, bitwise=True, extra={**G3, **_PLATEAU_M}),
        Case("min-lr-list", {"patience": 1, "factor": 0.5, "min_lr": [1e-2, 1e-4, 0.2]}, bitwise=True,
             extra={**G3, **_PLATEAU_M}),
        Case("eps-large", {"patience": 1, "factor": 0.5, "eps": 0.01}, bitwise=True, extra=_PLATEAU_M),
        Case("threshold-0", {"patience": 2, "threshold": 0.0}, bitwise=True, extra=_PLATEAU_M),
        Case("factor-1", {"factor": 1.0}, extra=_PLATEAU_M),
        Case("bad-mode", {"mode": "median"}, extra=_PLATEAU_M),
        Case("bad-threshold-mode", {"threshold_mode": "pct"}, extra=_PLATEAU_M),
        Case("min-lr-count", {"min_lr": [0.1, 0.2]}, extra=_PLATEAU_M),
    ),
    fuzz={"patience": FuzzArg("int", 0, 10), "factor": FuzzArg("float", 0.05, 0.95),
          "cooldown": FuzzArg("int", 0, 5), "threshold": FuzzArg("logfloat", 1e-6, 1e-1),
          "mode": FuzzArg("choice", options=("min", "max")),
          "threshold_mode": FuzzArg("choice", options=("rel", "abs"))},
)

_CYCLIC = Component(
    "sched", "CyclicLR",
    cases=(
        Case("triangular", {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 100}, bitwise=True),
        Case("triangular2-asym", {"base_lr": 0.01, "max_lr": 1.0, "step_size_up": 50, "step_size_down": 150,
                                  "mode": "triangular2"}, bitwise=True),
        Case("exp_range", {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 40, "mode": "exp_range", "gamma": 0.998},
             bitwise=True),
        Case("scale_fn-cycle", {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 30,
                                "scale_fn": lambda x: 1 / (1 + x)}, bitwise=True),
        Case("scale_fn-iterations", {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 30, "scale_fn": Halving(250),
                                     "scale_mode": "iterations"}, bitwise=True),
        Case("no-momentum", {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 60, "cycle_momentum": False},
             bitwise=True),
        Case("adam-betas", {"base_lr": 1e-4, "max_lr": 1e-2, "step_size_up": 80, "base_momentum": 0.85,
                            "max_momentum": 0.95}, bitwise=True, extra={"optimizer": "Adam"}),
        Case("per-group", {"base_lr": [0.001, 0.0001], "max_lr": [0.1, 0.02], "step_size_up": 25,
                           "base_momentum": [0.8, 0.7], "max_momentum": [0.9, 0.99]}, bitwise=True, extra=G2),
        Case("plain-optimizer", {"base_lr": 0.001, "max_lr": 0.1}, extra={"optimizer": "plain"}),
        Case("plain-no-momentum", {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 10, "cycle_momentum": False},
             bitwise=True, extra={"optimizer": "plain"}),
        Case("bad-mode", {"base_lr": 0.001, "max_lr": 0.1, "mode": "sawtooth"}),
        Case("max-lr-count", {"base_lr": 0.001, "max_lr": [0.1, 0.2, 0.3]}, extra=G2),
        Case("resume", {}, bitwise=True,
             extra=build(resume_after("CyclicLR", 77, base_lr=0.001, max_lr=0.1, step_size_up=20))),
    ),
    fuzz={"step_size_up": FuzzArg("int", 1, 20), "step_size_down": FuzzArg("int", 1, 20),
          "mode": FuzzArg("choice", options=("triangular", "triangular2", "exp_range")),
          "gamma": FuzzArg("float", 0.9, 1.0)},
)

_ONECYCLE = Component(
    "sched", "OneCycleLR",
    cases=(
        Case("cos", {"max_lr": 0.1, "total_steps": 1000}, bitwise=True),
        Case("linear", {"max_lr": 0.1, "total_steps": 1000, "anneal_strategy": "linear"}, bitwise=True),
        Case("three-phase", {"max_lr": 0.1, "total_steps": 1000, "three_phase": True, "pct_start": 0.25},
             bitwise=True),
        Case("epochs-x-steps", {"max_lr": 1.0, "epochs": 10, "steps_per_epoch": 100, "div_factor": 10.0,
                                "final_div_factor": 100.0}, bitwise=True),
        Case("adam-betas", {"max_lr": 0.01, "total_steps": 1000, "base_momentum": 0.8, "max_momentum": 0.9},
             bitwise=True, extra={"optimizer": "Adam"}),
        Case("per-group", {"max_lr": [0.1, 0.05], "total_steps": 1000, "base_momentum": [0.8, 0.85],
                           "max_momentum": [0.9, 0.99]}, bitwise=True, extra=G2),
        Case("no-momentum", {"max_lr": 0.1, "total_steps": 1000, "cycle_momentum": False}, bitwise=True,
             extra={"optimizer": "plain"}),
        Case("past-total-steps", {"max_lr": 0.1, "total_steps": 500}),  # ValueError at step 501, in both
        Case("total-steps-0", {"max_lr": 0.1, "total_steps": 0}),
        Case("total-steps-float", {"max_lr": 0.1, "total_steps": 100.0}),
        Case("no-length", {"max_lr": 0.1}),
        Case("epochs-0", {"max_lr": 0.1, "epochs": 0, "steps_per_epoch": 10}),
        Case("steps-per-epoch-float", {"max_lr": 0.1, "epochs": 3, "steps_per_epoch": 2.5}),
        Case("pct-start-above-1", {"max_lr": 0.1, "total_steps": 100, "pct_start": 1.5}),
        Case("pct-start-int", {"max_lr": 0.1, "total_steps": 100, "pct_start": 1}),
        Case("bad-anneal", {"max_lr": 0.1, "total_steps": 100, "anneal_strategy": "exp"}),
        Case("plain-optimizer", {"max_lr": 0.1, "total_steps": 100}, extra={"optimizer": "plain"}),
        Case("resume", {}, bitwise=True, extra=build(resume_after("OneCycleLR", 300, max_lr=0.1, total_steps=1400))),
    ),
    fuzz={"pct_start": FuzzArg("float", 0.05, 0.95), "three_phase": FuzzArg("bool"),
          "anneal_strategy": FuzzArg("choice", options=("cos", "linear")), "div_factor": FuzzArg("float", 2.0, 100.0)},
    fuzz_base=Case("fuzz", {"max_lr": 0.1, "total_steps": 20}),
)

_WARM = Component(
    "sched", "CosineAnnealingWarmRestarts",
    cases=(
        Case("T10", {"T_0": 10}, bitwise=True),
        Case("T7-mult2-eta", {"T_0": 7, "T_mult": 2, "eta_min": 1e-3}, bitwise=True, extra=G3),
        Case("T5-mult3", {"T_0": 5, "T_mult": 3}, bitwise=True),
        Case("fractional-epochs", {"T_0": 3, "T_mult": 2, "eta_min": 0.001}, bitwise=True,
             extra={"epochs": lambda k: k / 7}),
        Case("epoch-jumps", {"T_0": 10}, bitwise=True, extra={"epochs": lambda k: (k * 13) % 97 + 0.5}),
        Case("interleaved", {"T_0": 4, "T_mult": 2}, bitwise=True,
             extra={"epochs": lambda k: None if k % 3 else k / 3}),
        Case("T0-zero", {"T_0": 0}),
        Case("T0-float", {"T_0": 2.5}),
        Case("Tmult-zero", {"T_0": 5, "T_mult": 0}),
        Case("Tmult-float", {"T_0": 5, "T_mult": 1.5}),
        Case("eta-min-str", {"T_0": 5, "eta_min": "0"}),
        Case("negative-epoch", {"T_0": 5}, extra={"epochs": lambda k: -1.0}),
        Case("resume", {}, bitwise=True, extra=build(resume("CosineAnnealingWarmRestarts", 12, T_0=10, T_mult=2))),
    ),
    fuzz={"T_0": FuzzArg("int", 1, 20), "T_mult": FuzzArg("int", 1, 4), "eta_min": FuzzArg("float", 0.0, 0.05)},
    fuzz_base=Case("fuzz", {"T_0": 5}),
)

COMPONENTS: list[Component] = [_LAMBDA, _MULT, _STEP, _MULTISTEP, _CONSTANT, _LINEAR, _EXP, _POLY, _COS, _SEQ,
                               _CHAIN, _PLATEAU, _CYCLIC, _ONECYCLE, _WARM]
