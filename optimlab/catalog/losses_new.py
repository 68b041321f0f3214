"""Catalogue of torch's two parameterised loss modules: AdaptiveLogSoftmaxWithLoss and LinearCrossEntropyLoss
(module cases run through :func:`optimlab.parity.modules.run_module_case`: same seed, torch's state_dict loaded,
outputs and input/parameter gradients compared) with ``linear_cross_entropy``'s functional cases through the generic
loss path. The detection and focal losses have no torch twin: their identities against torch live in
``IDENTITIES`` below (run by tests/test_losses_detection.py), not in the parity report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import Case, Component
from .losses import rand_weight, randn


def _run(*args: Any, **kw: Any) -> Any:
    from ..parity.modules import run_module_case  # lazy: reading the catalogue imports no engine

    return run_module_case(*args, **kw)


def _labels(g: torch.Generator, n_classes: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, n_classes, shape, generator=g)


def xt(n: int | None, d: int, n_classes: int, *target_shape: int, probs: bool = False, fill: int | None = None,
       scale: float = 1.0) -> Callable[..., tuple]:
    """``(input (n, d) or (d,), target)``: class indices (``target_shape`` defaults to ``(n,)``), or
    probabilities ``(n, C, *target_shape)``; ``fill`` sets every other target (to an ignored or out-of-range one)."""

    def make(g: torch.Generator, dtype: torch.dtype, device: str) -> tuple:
        batch = () if n is None else (n,)
        x = randn(g, *batch, d, dtype=dtype, scale=scale)
        if probs:
            t = torch.softmax(randn(g, *batch, n_classes, *target_shape), 1 if batch else 0).to(dtype)
        else:
            t = _labels(g, n_classes, *(target_shape or batch))
            if fill is not None:
                t.view(-1)[::2] = fill
        return x, t

    return make


def xwt(n: int | None, d: int, n_classes: int, *out_features: int, probs: bool = False,
        fill: int | None = None) -> Callable[..., tuple]:
    """``(input, linear_weight (C, *out_features, d), target)`` for the functional form."""
    inner = xt(n, d, n_classes, *(((n,) if n is not None else ()) + out_features if not probs else out_features),
               probs=probs, fill=fill)

    def make(g: torch.Generator, dtype: torch.dtype, device: str) -> tuple:
        x, t = inner(g, dtype, device)
        w = randn(g, n_classes, *out_features, d, dtype=dtype, scale=0.5)
        return x, w, t

    return make


_M = {"run": _run, "grad_args": (0,)}
_F = {"module": False, "grad_args": (0, 1)}
_ALS = {"in_features": 16, "n_classes": 20, "cutoffs": [4, 10, 15]}

_ADAPTIVE = Component(
    "losses", "AdaptiveLogSoftmaxWithLoss",
    cases=(
        Case("three-clusters", _ALS, extra={**_M, "inputs": xt(13, 16, 20)}),
        Case("head-bias-div2", {**_ALS, "div_value": 2.0, "head_bias": True}, extra={**_M, "inputs": xt(13, 16, 20)}),
        Case("one-cluster", {"in_features": 8, "n_classes": 10, "cutoffs": [3]}, extra={**_M, "inputs": xt(9, 8, 10)}),
        Case("unbatched", _ALS, extra={**_M, "inputs": xt(None, 16, 20)}),
        Case("batch-of-one", _ALS, extra={**_M, "inputs": xt(1, 16, 20)}),
        Case("empty-batch", _ALS, extra={**_M, "inputs": xt(0, 16, 20)}),
        Case("log_prob", _ALS, extra={**_M, "inputs": lambda g, dt, dev: xt(13, 16, 20)(g, dt, dev)[:1],
                                      "method": "log_prob"}),
        Case("predict", _ALS, extra={**_M, "inputs": lambda g, dt, dev: xt(64, 16, 20, scale=4.0)(g, dt, dev)[:1],
                                     "method": "predict"}),
        Case("target-out-of-range", _ALS, extra={**_M, "inputs": xt(6, 16, 20, fill=20)}),
        Case("negative-target", _ALS, extra={**_M, "inputs": xt(6, 16, 20, fill=-1)}),
        Case("2d-target", _ALS, extra={**_M, "inputs": xt(6, 16, 20, 6, 2)}),
        Case("batch-mismatch", _ALS, extra={**_M, "inputs": xt(6, 16, 20, 5)}),
        Case("1d-target-1d-input", _ALS, extra={**_M, "inputs": lambda g, dt, dev: (randn(g, 16, dtype=dt),
                                                                                  _labels(g, 20, 1))}),
        Case("cutoffs-empty", {**_ALS, "cutoffs": []}, extra={**_M, "inputs": xt(4, 16, 20)}),
        Case("cutoffs-unsorted", {**_ALS, "cutoffs": [10, 4]}, extra={**_M, "inputs": xt(4, 16, 20)}),
        Case("cutoffs-too-large", {**_ALS, "cutoffs": [4, 20]}, extra={**_M, "inputs": xt(4, 16, 20)}),
        Case("cutoffs-repeated", {**_ALS, "cutoffs": [4, 4]}, extra={**_M, "inputs": xt(4, 16, 20)}),
    ),
    note="forward returns (output, loss); parameters and the double backward compared too",
)

_LCE = {"in_features": 8, "num_classes": 11}

_LINEAR_CE = Component(
    "losses", "LinearCrossEntropyLoss", functional="linear_cross_entropy",
    cases=(
        Case("module-mean", _LCE, extra={**_M, "inputs": xt(12, 8, 11)}),
        Case("module-bias-sum", {**_LCE, "bias": True, "reduction": "sum"}, extra={**_M, "inputs": xt(12, 8, 11)}),
        Case("module-none-weight", {**_LCE, "reduction": "none", "weight": rand_weight(3, 11) + 0.1},
             extra={**_M, "inputs": xt(12, 8, 11)}),
        Case("module-ignore-smoothing", {**_LCE, "ignore_index": 3, "label_smoothing": 0.2, "bias": True},
             extra={**_M, "inputs": xt(12, 8, 11, fill=3)}),
        Case("module-kdim", {**_LCE, "out_features": (3, 2), "bias": True},
             extra={**_M, "inputs": xt(5, 8, 11, 5, 3, 2)}),
        Case("module-probs-smoothing", {**_LCE, "label_smoothing": 0.1, "weight": rand_weight(4, 11) + 0.1},
             extra={**_M, "inputs": xt(6, 8, 11, probs=True)}),
        Case("module-unbatched", _LCE, extra={**_M, "inputs": xt(None, 8, 11)}),
        Case("module-weight-wrong-size", {**_LCE, "weight": torch.ones(3, dtype=torch.float64)},
             extra={**_M, "inputs": xt(4, 8, 11)}),
        Case("module-smoothing-above-1", {**_LCE, "label_smoothing": 2.0}, extra={**_M, "inputs": xt(4, 8, 11)}),
        Case("mean", {}, extra={**_F, "inputs": xwt(16, 8, 11)}),
        Case("sum-weight", {"reduction": "sum", "weight": rand_weight(5, 11)}, extra={**_F, "inputs": xwt(16, 8, 11)}),
        Case("none-ignore", {"reduction": "none", "ignore_index": 2}, extra={**_F, "inputs": xwt(16, 8, 11, fill=2)}),
        Case("mean-all-ignored", {"ignore_index": -100}, extra={**_F, "inputs": xwt(1, 8, 11, fill=-100)}),
        Case("ignore-out-of-range", {"ignore_index": 16}, extra={**_F, "inputs": xwt(16, 8, 11, fill=16)}),
        Case("smoothing-weight", {"label_smoothing": 0.3, "weight": rand_weight(6, 11)},
             extra={**_F, "inputs": xwt(16, 8, 11)}),
        Case("kdim", {"reduction": "none"}, extra={**_F, "inputs": xwt(4, 8, 11, 3, 2)}),
        Case("probs", {"reduction": "sum"}, extra={**_F, "inputs": xwt(5, 8, 11, probs=True)}),
        Case("probs-weight", {"weight": rand_weight(7, 11)}, extra={**_F, "inputs": xwt(5, 8, 11, probs=True)},
             dtypes=(torch.float64,)),  # a float64 weight: torch promotes float32 input, we keep the input's dtype
        Case("unbatched", {}, extra={**_F, "inputs": xwt(None, 8, 11)}),
        Case("empty", {}, extra={**_F, "inputs": xwt(0, 8, 11)}),
        Case("extreme", {"reduction": "sum"}, extra={**_F, "inputs": lambda g, dt, dev: tuple(
            a * 30 if a.is_floating_point() else a for a in xwt(8, 8, 11)(g, dt, dev))}),
        Case("target-out-of-range", {}, extra={**_F, "inputs": xwt(8, 8, 11, fill=11)}),
        Case("ignore-with-probs", {"ignore_index": -100}, extra={**_F, "inputs": xwt(5, 8, 11, probs=True)}),
        Case("int-probs", {}, extra={**_F, "inputs": lambda g, dt, dev: (randn(g, 4, 3, dtype=dt),
                                                                        randn(g, 2, 3, dtype=dt),
                                                                        torch.zeros(4, 2, dtype=torch.long))}),
        Case("in-features-mismatch", {}, extra={**_F, "inputs": lambda g, dt, dev: (randn(g, 4, 5, dtype=dt),
                                                                                    randn(g, 2, 3, dtype=dt),
                                                                                    _labels(g, 2, 4))}),
        Case("3d-input", {}, extra={**_F, "inputs": lambda g, dt, dev: (
            randn(g, 2, 4, 3, dtype=dt), randn(g, 2, 3, dtype=dt), _labels(g, 2, 2, 4))}),
        Case("bad-reduction", {"reduction": "max"}, extra={**_F, "inputs": xwt(4, 8, 11)}),
    ),
    note="chunked: the (N, C) logits are never materialised",
)

COMPONENTS = [_ADAPTIVE, _LINEAR_CE]


# ---- identities for the losses without a torch twin (checked by tests/test_losses_detection.py) ----------------

def _focal_inputs(g: torch.Generator, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return randn(g, 6, 5, 3, dtype=dtype, scale=2.0), _labels(g, 5, 6, 3)


IDENTITIES: list[tuple[str, str, dict[str, Any], str, dict[str, Any]]] = [
    # (optimlab functional, its kwargs, torch functional, its kwargs): equal on the same (input, target)
    ("softmax_focal_loss", {"gamma": 0.0}, "cross_entropy", {}),
    ("softmax_focal_loss", {"gamma": 0.0, "reduction": "sum", "ignore_index": 2}, "cross_entropy",
     {"reduction": "sum", "ignore_index": 2}),
    ("softmax_focal_loss", {"gamma": 0.0, "reduction": "none", "weight": "w"}, "cross_entropy",
     {"reduction": "none", "weight": "w"}),
    ("softmax_focal_loss", {"gamma": 0.0, "weight": "w", "ignore_index": 1}, "cross_entropy",
     {"weight": "w", "ignore_index": 1}),
    ("sigmoid_focal_loss", {"alpha": -1, "gamma": 0, "reduction": "mean"}, "binary_cross_entropy_with_logits", {}),
    ("sigmoid_focal_loss", {"alpha": -1, "gamma": 0, "reduction": "none"}, "binary_cross_entropy_with_logits",
     {"reduction": "none"}),
]
