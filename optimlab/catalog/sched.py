"""Catalogue of LR schedulers: each scheduler and cases covering every argument."""

from __future__ import annotations

from typing import Any

from . import Case, Component, FuzzArg


def resume(name: str, last_epoch: int, **kwargs: Any):
    """Build ``name`` as if resuming at ``last_epoch`` (groups carry ``initial_lr``, as after a load)."""

    def build(ns: Any, opt: Any) -> Any:
        for g in opt.param_groups:
            g.setdefault("initial_lr", g["lr"])
        return getattr(ns, name)(opt, last_epoch=last_epoch, **kwargs)

    return build


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
    ),
    fuzz={"step_size": FuzzArg("int", 1, 50), "gamma": FuzzArg("float", 0.01, 1.0)},
)

COMPONENTS: list[Component] = [_STEP]
