"""Catalogue of the non-elementwise optimizers: LBFGS, Muon, Adafactor, SparseAdam.

Every case runs in lockstep with torch (50 steps by default) and is bit-for-bit equal on CPU: the
rules follow torch's op order. (The ``fused=True`` cases, optimlab's extension, are compared at the
fused tolerance.) Cases whose construction or step raises in torch check that optimlab
raises the same exception type.
"""

from __future__ import annotations

import torch

from . import Case, Component, FuzzArg, torch_has

_CLOSURE = {"closure": True}
_HALF = (torch.bfloat16, torch.float16)  # half-precision parameters: still bit for bit with torch


def _lbfgs_cases() -> tuple[Case, ...]:
    # Few inner iterations and short histories on the mlp keep 50 lockstep steps cheap; the full
    # defaults (20 iterations, history 100) run on the 2-parameter Rosenbrock model.
    run = {
        "lr": ({"lr": 0.1, "max_iter": 4, "history_size": 5}, {}),
        "history_size": ({"history_size": 2, "max_iter": 5}, {}),
        "max_iter-max_eval": ({"max_iter": 6, "max_eval": 4, "history_size": 5}, {}),
        "tolerances": ({"tolerance_grad": 1e-3, "tolerance_change": 1e-4, "max_iter": 5, "history_size": 5}, {}),
        "strong_wolfe": ({"line_search_fn": "strong_wolfe", "max_iter": 5, "history_size": 5}, {}),
        "strong_wolfe-max_eval": ({"line_search_fn": "strong_wolfe", "max_iter": 5, "max_eval": 6,
                                   "history_size": 3}, {}),
        "strong_wolfe-tolerances": ({"line_search_fn": "strong_wolfe", "tolerance_grad": 1e-4,
                                     "tolerance_change": 1e-6, "max_iter": 5, "history_size": 5}, {}),
        "lr-tensor": ({"lr": 0.5, "max_iter": 4, "history_size": 5}, {"lr_tensor": True}),
        "default": ({}, {"model": "rosenbrock"}),
        "rosenbrock": ({"lr": 0.5, "history_size": 10}, {"model": "rosenbrock"}),
        "rosenbrock-strong_wolfe": ({"line_search_fn": "strong_wolfe"}, {"model": "rosenbrock"}),
        "complex": ({"max_iter": 4, "history_size": 4}, {"model": "complex"}),
        "sparse": ({"max_iter": 4, "history_size": 4, "line_search_fn": "strong_wolfe"}, {"model": "sparse"}),
    }
    cases = [Case(name, kw, bitwise=True, extra={**_CLOSURE, **ex}) for name, (kw, ex) in run.items()]
    # maximize= is new in torch 2.14 (offered here on every torch; compared where torch has it), on the mlp
    # with bounded outputs: maximizing the plain mlp's loss runs off to inf within the 50 steps
    bounded = {**_CLOSURE, "model": "bounded"}
    cases += [
        Case("maximize", {"lr": 0.1, "max_iter": 4, "history_size": 5, "maximize": True}, bitwise=True,
             extra=bounded, since="2.14"),
        Case("maximize-strong_wolfe", {"line_search_fn": "strong_wolfe", "max_iter": 5, "history_size": 5,
                                       "maximize": True}, bitwise=True, extra=bounded, since="2.14"),
        Case("maximize-false", {"lr": 0.1, "max_iter": 4, "history_size": 5, "maximize": False}, bitwise=True,
             extra=bounded, since="2.14"),
    ]
    cases += [
        Case("half", {"lr": 0.5, "max_iter": 4, "history_size": 3}, bitwise=True, dtypes=_HALF, extra=_CLOSURE),
        Case("negative-lr", {"lr": -1.0}, extra=_CLOSURE),
        Case("lr-tensor-2-elements", {"lr": [0.1, 0.2]}, extra={**_CLOSURE, "lr_tensor": True}),
        Case("param-groups", {}, extra={**_CLOSURE, "groups": [{}, {"lr": 0.1}]}),
        Case("unknown-line-search", {"line_search_fn": "armijo"}, extra=_CLOSURE),
        Case("no-closure", {}),  # step() without its required closure: TypeError in both
    ]
    return tuple(cases)


def _muon_cases() -> tuple[Case, ...]:
    mat = {"model": "matrix"}
    run = {
        "default": {},
        "no-nesterov": {"lr": 0.02, "nesterov": False},
        "no-momentum-no-wd": {"lr": 0.02, "momentum": 0.0, "weight_decay": 0.0},
        "adjust-original": {"lr": 0.02, "adjust_lr_fn": "original"},
        "adjust-match_rms_adamw": {"lr": 0.02, "adjust_lr_fn": "match_rms_adamw", "nesterov": False},
        "ns-coefficients-steps-eps": {"lr": 0.02, "ns_coefficients": (2.0, -1.5, 0.5), "ns_steps": 2, "eps": 1e-3},
        "momentum-wd": {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.3},
    }
    cases = [Case(name, kw, bitwise=True, extra=mat) for name, kw in run.items()]
    # "spectral_unclamped" is new in torch 2.14 (√(A/B), unclamped: the matrix model has tall and wide weights)
    spectral = {"lr": 0.02, "adjust_lr_fn": "spectral_unclamped"}
    cases += [Case("adjust-spectral_unclamped", spectral, bitwise=True, extra=mat, since="2.14"),
              Case("adjust-spectral_unclamped/no-nesterov-wd", {**spectral, "nesterov": False, "weight_decay": 0.3},
                   bitwise=True, extra=mat, since="2.14")]
    # fused=True (ours only: the momentum and the update compiled around the eager Newton–Schulz, each
    # distinct momentum/nesterov/weight_decay a compile) against torch's Muon, at the fused tolerance.
    # On CPU the kernels round as eager does: float32 and bfloat16 runs are bit for bit (as
    # tests/test_optim_fused_muon.py checks), float64 ~1e-11 relative (no FMA emulation there); the
    # tolerance is also for other devices' compilers
    fused = {"ref_drop": ("fused",), "tolerance": "fused"}
    cases += [Case(f"{name}/fused", {**run[name], "fused": True}, extra={**mat, **fused})
              for name in ("default", "no-nesterov", "adjust-match_rms_adamw", "momentum-wd")]
    cases.append(Case("adjust-spectral_unclamped/fused", {**spectral, "fused": True}, extra={**mat, **fused},
                      since="2.14"))
    cases += [
        Case("lr-tensor/fused", {"lr": 0.02, "fused": True}, dtypes=(torch.float32,),
             extra={**mat, **fused, "lr_tensor": True}),
        Case("half/fused", {"lr": 0.02, "fused": True}, dtypes=(torch.bfloat16,), extra={**mat, **fused}),
        Case("lr-tensor", {"lr": 0.02}, bitwise=True, extra={**mat, "lr_tensor": True}),
        Case("groups", {"lr": 0.02}, bitwise=True,
             extra={**mat, "groups": [{}, {"lr": 0.01, "nesterov": False, "adjust_lr_fn": "match_rms_adamw"}]}),
        Case("closure", {"lr": 0.02}, bitwise=True, extra={**mat, **_CLOSURE}),
        Case("half", {"lr": 0.02}, bitwise=True, dtypes=_HALF, extra=mat),
        Case("non-2d-params", {}),  # the mlp has biases: ValueError at construction
        Case("sparse-grad", {}, extra={"model": "sparse"}),  # RuntimeError at step
        Case("negative-lr", {"lr": -0.1}, extra=mat),
        Case("negative-momentum", {"momentum": -0.5}, extra=mat),
        Case("negative-weight_decay", {"weight_decay": -1.0}, extra=mat),
        Case("bad-adjust_lr_fn", {"adjust_lr_fn": "sqrt"}, extra=mat),
        Case("ns_steps-100", {"ns_steps": 100}, extra=mat),  # ValueError at step
        Case("ns_coefficients-2", {"ns_coefficients": (3.0, -3.0)}, extra=mat),  # ValueError at step
        Case("foreach", {"foreach": True}, extra=mat),  # not a Muon argument: TypeError
    ]
    return tuple(cases)


def _adafactor_cases() -> tuple[Case, ...]:
    flags = {
        "plain": {},
        "lr": {"lr": 0.05},
        "weight_decay": {"weight_decay": 0.1},
        "maximize": {"maximize": True},
        "beta2_decay": {"beta2_decay": -0.5},
        "eps": {"eps": (1e-20, 1e-2)},
        "d": {"d": 1.5, "lr": 0.2},
        "wd-maximize-d": {"weight_decay": 0.05, "maximize": True, "d": 2.0, "lr": 0.1},
    }
    cases = []
    for name, kw in flags.items():
        for foreach in (False, True):
            cases.append(Case(f"{name}/foreach={foreach}", {**kw, "foreach": foreach}, bitwise=True))
        # fused=True (ours only; each one a compile) against torch's for-loop, in float64: in float32 the
        # compiled tensor-step form (ρ, α, the clip kept as tensors) drifts from the for-loop's Python
        # numbers past the fused row within the report's 50 steps (col_var 3.3e-5 relative at step 36);
        # tests/test_optim_fused.py compares float32 over 10 steps
        if name in ("plain", "wd-maximize-d"):
            cases.append(Case(f"{name}/fused", {**kw, "fused": True}, dtypes=(torch.float64,),
                              extra={"ref_drop": ("fused",), "tolerance": "fused"}))
    cases += [
        Case("default", {}, bitwise=True),
        Case("lr-tensor", {"lr": 0.05, "weight_decay": 0.1}, bitwise=True, extra={"lr_tensor": True}),
        Case("groups", {"lr": 0.05}, bitwise=True,
             extra={"groups": [{}, {"lr": 0.01, "weight_decay": 0.1}, {"maximize": True, "d": 2.0}]}),
        Case("closure", {"lr": 0.05}, bitwise=True, extra=_CLOSURE),
        Case("half/foreach=True", {"lr": 0.05, "weight_decay": 0.1, "foreach": True}, bitwise=True, dtypes=_HALF),
        Case("half/foreach=False", {"lr": 0.05, "weight_decay": 0.1}, bitwise=True, dtypes=_HALF),
        Case("complex", {}, extra={"model": "complex"}),  # RuntimeError at step
        Case("sparse", {}, extra={"model": "sparse"}),  # RuntimeError at step
        Case("negative-lr", {"lr": -0.1}),
        Case("positive-beta2_decay", {"beta2_decay": 0.5}),
        Case("negative-eps1", {"eps": (-1e-3, 1e-3)}),
        Case("negative-eps2", {"eps": (None, -1e-3)}),
        Case("d-below-1", {"d": 0.5}),
        Case("negative-weight_decay", {"weight_decay": -0.1}),
    ]
    return tuple(cases)


def _sparse_adam_cases() -> tuple[Case, ...]:
    sp = {"model": "sparse"}
    run = {
        "default": {},
        "betas-eps": {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-3},
        "maximize": {"lr": 0.05, "maximize": True},
    }
    cases = [Case(name, kw, bitwise=True, extra=sp) for name, kw in run.items()]
    cases += [
        Case("lr-tensor", {"lr": 0.05}, bitwise=True, extra={**sp, "lr_tensor": True}),
        Case("closure", {"lr": 0.05}, bitwise=True, extra={**sp, **_CLOSURE}),
        Case("half", {"lr": 0.05}, bitwise=True, dtypes=_HALF, extra=sp),
        Case("dense-gradients", {}),  # the mlp's gradients are dense: RuntimeError at step
        Case("complex-params", {}, extra={"model": "complex"}),  # ValueError at construction
        Case("zero-lr", {"lr": 0.0}, extra=sp),
        Case("zero-eps", {"eps": 0.0}, extra=sp),
        Case("beta1-1", {"betas": (1.0, 0.999)}, extra=sp),
        Case("negative-beta2", {"betas": (0.9, -0.1)}, extra=sp),
    ]
    return tuple(cases)


_LBFGS = Component("optim", "LBFGS", cases=_lbfgs_cases(),
                   fuzz={"lr": FuzzArg("logfloat", 1e-2, 1.0), "history_size": FuzzArg("int", 1, 10),
                         "max_iter": FuzzArg("int", 1, 5), "line_search_fn": FuzzArg("choice",
                                                                                     options=(None, "strong_wolfe")),
                         # torch 2.14's option, drawn where the installed torch has it to compare against
                         **({"maximize": FuzzArg("bool")} if torch_has("2.14") else {})},
                   fuzz_base=Case("fuzz", {}, extra={**_CLOSURE, "model": "bounded"}))
_MUON = Component("optim", "Muon", cases=_muon_cases(),
                  fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "momentum": FuzzArg("float", 0.0, 0.99),
                        "weight_decay": FuzzArg("float", 0.0, 0.3), "nesterov": FuzzArg("bool"),
                        "adjust_lr_fn": FuzzArg("choice", options=(None, "original", "match_rms_adamw")
                                                + (("spectral_unclamped",) if torch_has("2.14") else ()))},
                  fuzz_base=Case("fuzz", {}, extra={"model": "matrix"}))
_ADAFACTOR = Component("optim", "Adafactor", cases=_adafactor_cases(),
                       fuzz={"lr": FuzzArg("logfloat", 1e-4, 1.0), "beta2_decay": FuzzArg("float", -1.0, 0.0),
                             "d": FuzzArg("float", 1.0, 3.0), "weight_decay": FuzzArg("float", 0.0, 0.1),
                             "maximize": FuzzArg("bool"), "foreach": FuzzArg("bool")})
_SPARSE_ADAM = Component("optim", "SparseAdam", cases=_sparse_adam_cases(),
                         fuzz={"lr": FuzzArg("logfloat", 1e-4, 0.1), "eps": FuzzArg("logfloat", 1e-10, 1e-3),
                               "maximize": FuzzArg("bool")},
                         fuzz_base=Case("fuzz", {}, extra={"model": "sparse"}))

COMPONENTS: list[Component] = [_LBFGS, _MUON, _ADAFACTOR, _SPARSE_ADAM]
