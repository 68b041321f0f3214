"""Catalogue of optimizers: each algorithm and cases covering every constructor flag.

Every elementwise algorithm gets the same matrix (built by :func:`_cases`): its own flag
combinations, each on the per-tensor and the multi-tensor path, plus lr as a tensor, several param
groups, complex parameters, ``step(closure)``, capturable (which torch rejects on CPU), fused where
torch has it, and invalid hyperparameters (which must raise torch's exception type).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from . import Case, Component, FuzzArg

F64 = (torch.float64,)
F32 = (torch.float32,)
BOTH = (torch.float64, torch.float32)


def _cases(base: Mapping[str, Any], flags: Mapping[str, Mapping[str, Any]], *, errors: Mapping[str, Mapping[str, Any]],
           groups: list[dict[str, Any]], bitwise: bool = True, foreach_bitwise: bool | None = None,
           fused: bool = False, ours_fused: tuple[torch.dtype, ...] = (), capturable: bool = True,
           complex_: bool = True, lr_tensor: bool = True, sparse: bool = False) -> tuple[Case, ...]:
    """The standard matrix for one optimizer. ``bitwise`` says whether our per-tensor path equals
    torch's bit for bit; ``foreach_bitwise`` whether torch's foreach path rounds like its for-loop
    (ours runs the same rule on both paths, so where torch's foreach reorders ops we are within
    tolerance of it instead). ``ours_fused``: torch has no fused variant, ours does; every flag
    combination then also runs with ``fused=True`` against torch's for-loop in these dtypes (each one
    a compile; the fused tolerance of :mod:`optimlab.parity.tolerances`). Where a dtype is left out:
    RMSprop float32: over the report's 50 steps the centered momentum buffer (g/√(E[g²]−E[g]²), a
    cancellation) amplifies one-ulp differences until torch's own float32 for-loop is ~8e-6 from
    float64 and ours ~1.2e-5, past the fused float32 row (tests/test_optim_fused.py checks 10 steps);
    NAdam float64: the fused state keeps Π in float32 (torch's fused checkpoint format) and the rule's
    tensor form computes 1 − Π in it, ~5e-8 relative from the for-loop's float64 coefficient.
    """
    fb = bitwise if foreach_bitwise is None else foreach_bitwise
    out: list[Case] = []
    for name, kw in flags.items():
        for foreach in (False, True):
            out.append(Case(f"{name}/foreach={foreach}", {**base, **kw, "foreach": foreach},
                            bitwise=fb if foreach else bitwise))
        if ours_fused:
            out.append(Case(f"{name}/fused", {**base, **kw, "fused": True}, dtypes=ours_fused,
                            extra={"ref_drop": ("fused",), "tolerance": "fused"}))
    out += [
        Case("defaults", {}, bitwise=bitwise),
        Case("groups", dict(base), bitwise=bitwise, extra={"groups": groups}),
        Case("groups/foreach=True", {**base, "foreach": True}, bitwise=fb, extra={"groups": groups}),
        Case("closure", dict(base), bitwise=bitwise, extra={"closure": True}),
    ]
    if lr_tensor:
        out.append(Case("lr-tensor", dict(base), bitwise=bitwise, extra={"lr_tensor": True}))
    if complex_:
        out += [Case(f"complex/foreach={f}", {**base, "foreach": f}, bitwise=fb if f else bitwise,
                     extra={"model": "complex"}) for f in (False, True)]
    if sparse:
        out += [Case(f"sparse/foreach={f}", {**base, "foreach": f}, bitwise=bitwise, extra={"model": "sparse"})
                for f in (False, True)]
    else:  # torch rejects sparse gradients with a RuntimeError at step time
        out.append(Case("sparse-rejected", dict(base), dtypes=F64, extra={"model": "sparse"}))
    if capturable:
        out.append(Case("capturable-on-cpu", {**base, "capturable": True}, dtypes=F64))
    if fused:
        # torch's fused CPU kernels evaluate the same formula in another order (vectorised, with
        # the bias corrections in double): tolerance, not bitwise.
        out += [Case("fused", {**base, "fused": True}),
                Case("fused-maximize-wd", {**base, "fused": True, "maximize": True, "weight_decay": 0.05}, dtypes=F64),
                Case("fused-and-foreach", {**base, "fused": True, "foreach": True}, dtypes=F64),
                Case("fused-differentiable", {**base, "fused": True, "differentiable": True}, dtypes=F64),
                Case("fused-complex", {**base, "fused": True}, dtypes=F64, extra={"model": "complex"})]
    out += [Case(f"invalid-{name}", kw, dtypes=F64) for name, kw in errors.items()]
    return tuple(out)


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
        Case("fused", {"lr": 0.05, "momentum": 0.9, "fused": True}),
        Case("fused-nesterov-wd-maximize",
             {"lr": 0.05, "momentum": 0.5, "nesterov": True, "weight_decay": 0.1, "maximize": True, "fused": True}),
        Case("negative-lr", {"lr": -0.1}),
        Case("negative-momentum", {"momentum": -0.5}),
        Case("negative-weight_decay", {"weight_decay": -1.0}),
        Case("nesterov-no-momentum", {"nesterov": True}),
        Case("nesterov-dampening", {"momentum": 0.9, "dampening": 0.1, "nesterov": True}),
        Case("fused-and-foreach", {"fused": True, "foreach": True}),
        Case("fused-differentiable", {"fused": True, "differentiable": True}, dtypes=F64),
    ]
    return tuple(cases)


_SGD = Component(
    "optim", "SGD", cases=_sgd_cases(),
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 1.0), "momentum": FuzzArg("float", 0.0, 0.99),
          "dampening": FuzzArg("float", 0.0, 1.0), "weight_decay": FuzzArg("float", 0.0, 0.1),
          "nesterov": FuzzArg("bool"), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_BETA_ERRORS = {"lr": {"lr": -1e-3}, "eps": {"eps": -1e-8}, "beta1": {"betas": (1.0, 0.999)},
                "beta2": {"betas": (0.9, -0.1)}, "weight_decay": {"weight_decay": -0.1}}

_ADAM_FLAGS = {
    "plain": {},
    "amsgrad": {"amsgrad": True},
    "weight_decay": {"weight_decay": 0.05},
    "decoupled": {"weight_decay": 0.05, "decoupled_weight_decay": True},
    "amsgrad-maximize-wd": {"amsgrad": True, "maximize": True, "weight_decay": 0.05},
    "amsgrad-decoupled-maximize": {"amsgrad": True, "maximize": True, "weight_decay": 0.1,
                                   "decoupled_weight_decay": True},
}

_ADAM = Component(
    "optim", "Adam",
    cases=_cases({"lr": 0.01, "betas": (0.8, 0.99)}, _ADAM_FLAGS, fused=True,
                 groups=[{}, {"lr": 0.003, "amsgrad": True}, {"weight_decay": 0.1, "betas": (0.5, 0.9)}],
                 errors={**_BETA_ERRORS, "fused-and-foreach": {"fused": True, "foreach": True},
                         "lr-tensor-foreach": {"lr": torch.tensor(0.01), "foreach": True},
                         "betas-mixed": {"betas": (torch.tensor(0.9), 0.99)}}),
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "weight_decay": FuzzArg("float", 0.0, 0.1),
          "amsgrad": FuzzArg("bool"), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool"),
          "decoupled_weight_decay": FuzzArg("bool"), "eps": FuzzArg("logfloat", 1e-10, 1e-2)},
)

_ADAMW = Component(
    "optim", "AdamW",
    cases=_cases({"lr": 0.01}, {k: v for k, v in _ADAM_FLAGS.items() if "decoupled" not in k}, fused=True,
                 groups=[{}, {"lr": 0.003, "amsgrad": True}, {"weight_decay": 0.0}],
                 errors={**_BETA_ERRORS, "fused-and-foreach": {"fused": True, "foreach": True}}),
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "weight_decay": FuzzArg("float", 0.0, 0.2),
          "amsgrad": FuzzArg("bool"), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_ADAMAX = Component(
    "optim", "Adamax",
    cases=_cases({"lr": 0.01}, {"plain": {}, "weight_decay": {"weight_decay": 0.05},
                                "maximize-wd": {"maximize": True, "weight_decay": 0.05, "betas": (0.5, 0.9)}},
                 groups=[{}, {"lr": 0.003}, {"weight_decay": 0.1, "betas": (0.5, 0.9)}], ours_fused=BOTH,
                 errors=_BETA_ERRORS),
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "weight_decay": FuzzArg("float", 0.0, 0.1),
          "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_NADAM = Component(
    "optim", "NAdam",
    cases=_cases({"lr": 0.01}, {"plain": {}, "weight_decay": {"weight_decay": 0.05},
                                "decoupled": {"weight_decay": 0.05, "decoupled_weight_decay": True},
                                "momentum_decay": {"momentum_decay": 0.02, "betas": (0.8, 0.99)},
                                "decoupled-maximize": {"weight_decay": 0.1, "decoupled_weight_decay": True,
                                                       "maximize": True}},
                 foreach_bitwise=False,
                 groups=[{}, {"lr": 0.003, "momentum_decay": 0.01}, {"weight_decay": 0.1}],
                 ours_fused=F32,
                 errors={**_BETA_ERRORS, "momentum_decay": {"momentum_decay": -0.1}}),
    fuzz_base=Case("fuzz-base", {"lr": 0.01}),  # tolerance: torch's foreach path reorders ops
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "weight_decay": FuzzArg("float", 0.0, 0.1),
          "momentum_decay": FuzzArg("float", 0.0, 0.05), "decoupled_weight_decay": FuzzArg("bool"),
          "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_RADAM = Component(
    "optim", "RAdam",
    cases=_cases({"lr": 0.01}, {"plain": {}, "weight_decay": {"weight_decay": 0.05},
                                "decoupled": {"weight_decay": 0.05, "decoupled_weight_decay": True},
                                "maximize-wd": {"maximize": True, "weight_decay": 0.05, "betas": (0.8, 0.9)}},
                 foreach_bitwise=False,
                 groups=[{}, {"lr": 0.003}, {"weight_decay": 0.1, "decoupled_weight_decay": True}],
                 ours_fused=BOTH,
                 errors=_BETA_ERRORS),
    fuzz_base=Case("fuzz-base", {"lr": 0.01}),  # tolerance: torch's foreach path reorders ops
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "weight_decay": FuzzArg("float", 0.0, 0.1),
          "decoupled_weight_decay": FuzzArg("bool"), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_ADAGRAD = Component(
    "optim", "Adagrad",
    cases=_cases({"lr": 0.05}, {"plain": {}, "lr_decay": {"lr_decay": 0.01},
                                "initial_accumulator": {"initial_accumulator_value": 0.1},
                                "weight_decay": {"weight_decay": 0.05},
                                "maximize-wd-decay": {"maximize": True, "weight_decay": 0.05, "lr_decay": 0.02}},
                 groups=[{}, {"lr": 0.01, "lr_decay": 0.05}, {"weight_decay": 0.1}],
                 fused=True, capturable=False, sparse=True,
                 errors={"lr": {"lr": -0.1}, "lr_decay": {"lr_decay": -0.1}, "weight_decay": {"weight_decay": -0.1},
                         "initial_accumulator": {"initial_accumulator_value": -1.0}, "eps": {"eps": -1e-10},
                         "fused-and-foreach": {"fused": True, "foreach": True}}),
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.5), "lr_decay": FuzzArg("float", 0.0, 0.1),
          "initial_accumulator_value": FuzzArg("float", 0.0, 1.0), "weight_decay": FuzzArg("float", 0.0, 0.1),
          "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_ADADELTA = Component(
    "optim", "Adadelta",
    cases=_cases({"lr": 0.5}, {"plain": {}, "rho": {"rho": 0.5}, "weight_decay": {"weight_decay": 0.05},
                               "maximize-wd": {"maximize": True, "weight_decay": 0.05, "eps": 1e-4}},
                 groups=[{}, {"lr": 0.1, "rho": 0.95}, {"weight_decay": 0.1}],
                 ours_fused=BOTH,
                 errors={"lr": {"lr": -0.1}, "rho": {"rho": 1.5}, "eps": {"eps": -1e-6},
                         "weight_decay": {"weight_decay": -0.1}}),
    fuzz={"lr": FuzzArg("logfloat", 1e-3, 2.0), "rho": FuzzArg("float", 0.0, 1.0),
          "weight_decay": FuzzArg("float", 0.0, 0.1), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_RMSPROP = Component(
    "optim", "RMSprop",
    cases=_cases({"lr": 0.01}, {"plain": {}, "centered": {"centered": True}, "momentum": {"momentum": 0.9},
                                "centered-momentum": {"centered": True, "momentum": 0.5},
                                "wd-maximize": {"weight_decay": 0.05, "maximize": True, "alpha": 0.9},
                                "centered-momentum-wd-maximize": {"centered": True, "momentum": 0.9,
                                                                  "weight_decay": 0.05, "maximize": True}},
                 groups=[{}, {"lr": 0.003, "centered": True}, {"momentum": 0.5, "weight_decay": 0.1}],
                 ours_fused=F64,
                 errors={"lr": {"lr": -0.1}, "eps": {"eps": -1e-8}, "momentum": {"momentum": -0.5},
                         "weight_decay": {"weight_decay": -0.1}, "alpha": {"alpha": -0.5}}),
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "alpha": FuzzArg("float", 0.5, 0.999),
          "momentum": FuzzArg("float", 0.0, 0.95), "centered": FuzzArg("bool"),
          "weight_decay": FuzzArg("float", 0.0, 0.1), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_RPROP = Component(
    "optim", "Rprop",
    cases=_cases({"lr": 0.01}, {"plain": {}, "etas": {"etas": (0.3, 1.5)},
                                "step_sizes": {"step_sizes": (1e-3, 0.02)},
                                "maximize-etas": {"maximize": True, "etas": (0.6, 1.1)}},
                 groups=[{}, {"lr": 0.003, "etas": (0.4, 1.3)}, {"step_sizes": (1e-4, 0.05)}],
                 ours_fused=BOTH,
                 errors={"lr": {"lr": -0.1}, "eta-minus": {"etas": (1.5, 1.2)}, "eta-plus": {"etas": (0.5, 0.9)}}),
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

_ASGD = Component(
    "optim", "ASGD",
    cases=_cases({"lr": 0.05}, {"plain": {}, "averaging": {"t0": 10.0}, "weight_decay": {"weight_decay": 0.05},
                                "lambd-alpha-maximize": {"lambd": 0.01, "alpha": 0.5, "maximize": True, "t0": 5.0}},
                 foreach_bitwise=False,
                 groups=[{}, {"lr": 0.01, "t0": 3.0}, {"weight_decay": 0.1, "lambd": 0.001}],
                 ours_fused=BOTH,
                 errors={"lr": {"lr": -0.1}, "weight_decay": {"weight_decay": -0.1}}),
    fuzz_base=Case("fuzz-base", {"lr": 0.05}),  # tolerance: torch's foreach path reorders ops
    fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "lambd": FuzzArg("float", 0.0, 0.01),
          "alpha": FuzzArg("float", 0.0, 1.0), "t0": FuzzArg("float", 0.0, 60.0),
          "weight_decay": FuzzArg("float", 0.0, 0.1), "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")},
)

COMPONENTS: list[Component] = [_SGD, _ADAM, _ADAMW, _ADAMAX, _NADAM, _RADAM, _ADAGRAD, _ADADELTA, _RMSPROP, _RPROP,
                               _ASGD]
