"""Catalogue of ``swa_utils.SWALR`` (a scheduler, checked by the scheduler engine against
``torch.optim.swa_utils.SWALR``). AveragedModel/update_bn are not schedulers; tests/test_swa.py covers them."""

from __future__ import annotations

import importlib
from typing import Any

import torch

from . import Case, Component, FuzzArg

NAMESPACE = ("optimlab.optim.swa_utils", "torch.optim.swa_utils")


def _resumed(last_epoch: int, **kwargs: Any):
    """SWALR built as if resuming at ``last_epoch`` (groups carry ``initial_lr``, as after a load)."""

    def build(ns: Any, opt: Any) -> Any:
        for g in opt.param_groups:
            g.setdefault("initial_lr", g["lr"])
        return ns.SWALR(opt, last_epoch=last_epoch, **kwargs)

    return build


def _after_step_lr(warm: int, **kwargs: Any):
    """The usual SWA recipe: a StepLR decays the lr for ``warm`` steps, then SWALR anneals from there.

    The StepLR is the namespace's own (optimlab's beside optimlab's SWALR, torch's beside torch's)."""

    def build(ns: Any, opt: Any) -> Any:
        sched = importlib.import_module(ns.__name__.replace("swa_utils", "lr_scheduler"))
        first = sched.StepLR(opt, step_size=3, gamma=0.7)
        for _ in range(warm):
            opt.step()
            first.step()
        return ns.SWALR(opt, **kwargs)

    return build


def _chained(**kwargs: Any):
    """ChainedScheduler([ExponentialLR, SWALR]): SWALR's recursive form anneals from an lr another scheduler
    keeps moving (it inverts its previous step from the current lr)."""

    def build(ns: Any, opt: Any) -> Any:
        sched = importlib.import_module(ns.__name__.replace("swa_utils", "lr_scheduler"))
        return sched.ChainedScheduler([sched.ExponentialLR(opt, gamma=0.995), ns.SWALR(opt, **kwargs)])

    return build


_SWALR = Component(
    "sched", "SWALR",
    cases=(
        Case("cos-default", {"swa_lr": 0.05}, bitwise=True),
        Case("linear-20", {"swa_lr": 0.05, "anneal_epochs": 20, "anneal_strategy": "linear"}, bitwise=True),
        Case("anneal-up", {"swa_lr": 0.5, "anneal_epochs": 7}, bitwise=True),
        Case("anneal0", {"swa_lr": 0.01, "anneal_epochs": 0}, bitwise=True),
        Case("anneal0-linear", {"swa_lr": 0.01, "anneal_epochs": 0, "anneal_strategy": "linear"}, bitwise=True),
        Case("anneal1", {"swa_lr": 0.02, "anneal_epochs": 1}, bitwise=True),
        Case("anneal-past-end", {"swa_lr": 1e-4, "anneal_epochs": 1500}, bitwise=True),
        Case("per-group-list", {"swa_lr": [0.05, 0.001, 0.3], "anneal_epochs": 33}, bitwise=True,
             extra={"lrs": (0.1, 0.01, 1.0)}),
        Case("per-group-tuple-linear", {"swa_lr": (0.2, 0.0), "anneal_epochs": 50, "anneal_strategy": "linear"},
             bitwise=True, extra={"lrs": (0.1, 0.03)}),
        Case("scalar-many-groups", {"swa_lr": 0.003, "anneal_epochs": 12}, bitwise=True,
             extra={"lrs": (0.1, 0.01, 1.0)}),
        Case("adam", {"swa_lr": 0.001, "anneal_epochs": 25}, bitwise=True, extra={"optimizer": "Adam"}),
        Case("tensor-swa-lr", {"swa_lr": torch.tensor(0.05), "anneal_epochs": 9}, bitwise=True),
        Case("chained-with-ExponentialLR", {}, bitwise=True, extra={"build": _chained(swa_lr=0.01, anneal_epochs=40)}),
        Case("resume", {}, bitwise=True, extra={"build": _resumed(40, swa_lr=0.01, anneal_epochs=15)}),
        Case("resume-no-initial-lr", {"swa_lr": 0.01, "last_epoch": 10}),
        Case("after-StepLR", {}, bitwise=True,
             extra={"build": _after_step_lr(10, swa_lr=0.01, anneal_epochs=20)}),
        Case("after-StepLR-linear", {}, bitwise=True,
             extra={"build": _after_step_lr(4, swa_lr=0.5, anneal_epochs=9, anneal_strategy="linear")}),
        Case("err-strategy", {"swa_lr": 0.05, "anneal_strategy": "exp"}),
        Case("err-epochs-negative", {"swa_lr": 0.05, "anneal_epochs": -1}),
        Case("err-epochs-float", {"swa_lr": 0.05, "anneal_epochs": 2.5}),
        Case("err-list-length", {"swa_lr": [0.05, 0.01]}),
    ),
    fuzz={"swa_lr": FuzzArg("logfloat", 1e-5, 1.0), "anneal_epochs": FuzzArg("int", 0, 300),
          "anneal_strategy": FuzzArg("choice", options=("cos", "linear"))},
    namespace=NAMESPACE,
)

COMPONENTS: list[Component] = [_SWALR]
