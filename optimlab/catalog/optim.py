"""Catalogue of optimizers: each algorithm and cases covering every constructor flag."""

from __future__ import annotations

from . import Case, Component, FuzzArg


def _sgd_cases() -> tuple[Case, ...]:
    base = {"lr": 0.05}
    flags = {
        "plain": {},
        "momentum": {"momentum": 0.9},
        "dampening": {"momentum": 0.9, "dampening": 0.3},
        "nesterov": {"momentum": 0.9, "nesterov": True},
        "weight_decay": {"weight_decay": 0.01},
        "momentum-wd-maximize": {"momentum": 0.8, "weight_decay": 0.05, "maximize": True},
        "nesterov-wd-maximize": {"momentum": 0.5, "nesterov": True, "weight_decay": 0.1, "maximize": True},
    }
    cases = []
    for name, kw in flags.items():
        for foreach in (False, True):
            cases.append(Case(f"{name}/foreach={foreach}", {**base, **kw, "foreach": foreach}, bitwise=True))
    cases += [
        Case("default-lr", {}, bitwise=True),
        Case("lr-tensor", {"lr": 0.05, "momentum": 0.9}, bitwise=True, extra={"lr_tensor": True}),
        Case("groups", {"lr": 0.05, "momentum": 0.9}, bitwise=True,
             extra={"groups": [{}, {"lr": 0.01, "momentum": 0.5, "nesterov": True}, {"weight_decay": 0.1}]}),
        Case("complex", {"lr": 0.01, "momentum": 0.9}, bitwise=True, extra={"model": "complex"}),
        Case("sparse", {"lr": 0.1}, bitwise=True, extra={"model": "sparse"}),
        Case("closure", {"lr": 0.05, "momentum": 0.9}, bitwise=True, extra={"closure": True}),
        Case("negative-lr", {"lr": -0.1}),
        Case("negative-momentum", {"momentum": -0.5}),
        Case("negative-weight_decay", {"weight_decay": -1.0}),
        Case("nesterov-no-momentum", {"nesterov": True}),
        Case("nesterov-dampening", {"momentum": 0.9, "dampening": 0.1, "nesterov": True}),
        Case("fused-and-foreach", {"fused": True, "foreach": True}),
    ]
    return tuple(cases)


_SGD = Component(
    "optim", "SGD", cases=_sgd_cases(),
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 1.0), "momentum": FuzzArg("float", 0.0, 0.99),
          "dampening": FuzzArg("float", 0.0, 1.0), "weight_decay": FuzzArg("float", 0.0, 0.1),
          "nesterov": FuzzArg("bool"), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

COMPONENTS: list[Component] = [_SGD]
