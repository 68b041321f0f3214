"""Catalogue of losses: each loss module, its functional form, and cases covering every argument."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from . import Case, Component, FuzzArg

HALF = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def randn(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float64, scale: float = 1.0) -> torch.Tensor:
    """Standard normal values drawn in float64 then cast, so every dtype sees the same numbers."""
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def rand_weight(seed: int, *shape: int) -> torch.Tensor:
    """Positive weights in [0, 1), fixed by ``seed``."""
    return torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def pair(*shape_in: int, shape_t: tuple[int, ...] | None = None, scale: float = 1.0, nan: bool = False):
    """Inputs ``(input, target)`` of the given shapes (target defaults to the input's)."""

    def make(g: torch.Generator, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = randn(g, *shape_in, dtype=dtype, scale=scale)
        y = randn(g, *(shape_t or shape_in), dtype=dtype, scale=scale)
        if nan:
            x.view(-1)[0] = float("nan")
        return x, y

    return make


def random_pair(g: torch.Generator, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input, target)`` of a random shape (0 to 4 dimensions of size 0 to 5), for fuzzing."""
    ndim = int(torch.randint(0, 5, (), generator=g))
    shape = tuple(int(s) for s in torch.randint(0, 6, (ndim,), generator=g))
    return randn(g, *shape, dtype=dtype), randn(g, *shape, dtype=dtype)


_MSE = Component(
    "losses", "MSELoss", functional="mse_loss",
    cases=(
        Case("mean", {}, extra={"inputs": pair(4, 5), "grad_args": (0, 1)}, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra={"inputs": pair(4, 5), "grad_args": (0, 1)}, dtypes=HALF),
        Case("none", {"reduction": "none"}, extra={"inputs": pair(4, 5), "grad_args": (0, 1)}, dtypes=HALF),
        Case("scalar", {}, extra={"inputs": pair(), "grad_args": (0, 1)}),
        Case("5d", {}, extra={"inputs": pair(2, 3, 2, 2, 2), "grad_args": (0, 1)}),
        Case("broadcast-target", {}, extra={"inputs": pair(4, 5, shape_t=(4, 1)), "grad_args": (0, 1)}),
        Case("broadcast-input", {"reduction": "none"},
             extra={"inputs": pair(1, 5, shape_t=(3, 5)), "grad_args": (0, 1)}),
        Case("mismatch", {}, extra={"inputs": pair(3, shape_t=(4,))}),
        Case("legacy-size_average", {"size_average": False}, extra={"inputs": pair(4, 5)}),
        Case("legacy-reduce", {"reduce": False}, extra={"inputs": pair(4, 5)}),
        Case("legacy-both", {"size_average": True, "reduce": True}, extra={"inputs": pair(4, 5)}),
        Case("bad-reduction", {"reduction": "max"}, extra={"inputs": pair(4, 5)}),
        Case("weight", {"weight": rand_weight(1, 4, 5)},
             extra={"inputs": pair(4, 5), "grad_args": (0, 1), "module": False}, dtypes=(torch.float64,)),
        Case("weight-sum", {"reduction": "sum", "weight": rand_weight(2, 4, 5)},
             extra={"inputs": pair(4, 5), "module": False}, dtypes=(torch.float64,)),
        Case("weight-wrong-size", {"weight": torch.ones(5, dtype=torch.float64)},
             extra={"inputs": pair(4, 5), "module": False}, dtypes=(torch.float64,)),
        Case("weight-elementwise_mean", {"weight": torch.ones(4, 5, dtype=torch.float64),
                                         "reduction": "elementwise_mean"},  # rejected when weighted
             extra={"inputs": pair(4, 5), "module": False}, dtypes=(torch.float64,)),
        Case("extreme", {"reduction": "none"}, extra={"inputs": pair(4, 5, scale=1e4)}),
        Case("nan", {"reduction": "sum"}, extra={"inputs": pair(4, 5, nan=True)}),
        Case("empty", {}, extra={"inputs": pair(0, 5)}),
    ),
    fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum")),
          "_scale": FuzzArg("choice", options=(1.0, 1e-30, 1e4, 1e30))},
    fuzz_base=Case("fuzz", {}, extra={"inputs": random_pair, "grad_args": (0, 1)}),
)


# ---- losses B: regression and margin losses --------------------------------------------------------------
# Inputs are built from small "specs" ``(g, dtype) -> Tensor`` so every case states its inputs in one line.

Spec = Callable[[torch.Generator, torch.dtype], torch.Tensor]


def fl(*shape: int, scale: float = 1.0) -> Spec:
    """A floating tensor of standard normal values (times ``scale``)."""
    return lambda g, dt: randn(g, *shape, dtype=dt, scale=scale)


def sign(*shape: int, dtype: torch.dtype | None = None) -> Spec:
    """Labels in {-1, 1} (in the input's dtype unless ``dtype`` is given)."""
    return lambda g, dt: (torch.randint(0, 2, shape, generator=g) * 2 - 1).to(dtype or dt)


def bits(*shape: int) -> Spec:
    """Labels in {0, 1} in the input's dtype."""
    return lambda g, dt: torch.randint(0, 2, shape, generator=g).to(dt)


def idx(n_classes: int, *shape: int, lo: int = 0, dtype: torch.dtype = torch.long) -> Spec:
    """Class indices in ``[lo, n_classes)``."""
    return lambda g, dt: torch.randint(lo, n_classes, shape, generator=g).to(dtype)


def const(t: torch.Tensor) -> Spec:
    return lambda g, dt: t.clone()


def typed(spec: Spec, dtype: torch.dtype) -> Spec:
    """``spec``'s values in a fixed dtype (for mixed-dtype and integer-input cases)."""
    return lambda g, dt: spec(g, dt).to(dtype)


def _dtype_cases(grad: bool = True) -> tuple[Case, ...]:
    """Mixed and integer dtypes of an elementwise ``(input, target)`` loss: a float64 target, an int64 target,
    integer inputs (torch: no kernel, or an output dtype that cannot hold the result). ``grad=False`` compares
    the forward only (torch's huber backward raises on mixed dtypes, "Found dtype Long but expected Float";
    ours returns the gradient)."""
    g = {} if grad else {"grad_args": ()}
    return (
        Case("target-float64", {"reduction": "none"}, extra={"inputs": inputs(fl(3, 4, scale=2.0),
                                                                               typed(fl(3, 4), torch.float64)), **g},
             dtypes=(torch.float32,)),
        Case("target-int64", {}, extra={"inputs": inputs(fl(3, 4, scale=2.0), typed(sign(3, 4), torch.long)), **g}),
        Case("input-int64", {}, extra={"inputs": inputs(typed(sign(3, 4), torch.long), typed(sign(3, 4), torch.long))},
             dtypes=(torch.float64,)),
        Case("input-int64-target-float", {"reduction": "none"},
             extra={"inputs": inputs(typed(sign(3, 4), torch.long), fl(3, 4))}, dtypes=(torch.float64,)),
    )


def ml_targets(n: int, c: int) -> Spec:
    """MultiLabelMargin targets ``(n, c)``: distinct labels, then ``-1``, then leftovers the loss must ignore;
    row 0 has every class as a target (no ``-1``), row 1 none (a leading ``-1``)."""

    def make(g: torch.Generator, dt: torch.dtype) -> torch.Tensor:
        rows = []
        for i in range(n):
            perm = torch.randperm(c, generator=g)
            k = c if i == 0 else 0 if i == 1 else int(torch.randint(1, c, (), generator=g))
            row = perm.clone()
            if k < c:
                row[k] = -1
            rows.append(row)
        return torch.stack(rows) if n else torch.zeros(0, c, dtype=torch.long)

    return make


def inputs(*specs: Spec, nan: int | None = None):
    """Forward arguments from specs; ``nan`` puts a NaN into the first element of that argument."""

    def make(g: torch.Generator, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, ...]:
        out = [s(g, dtype) for s in specs]
        if nan is not None:
            out[nan].view(-1)[0] = float("nan")
        return tuple(out)

    return make


def _red_cases(make, grad: tuple[int, ...], dtypes=HALF, dbl: bool = True) -> tuple[Case, ...]:
    """The three reductions plus the legacy size_average/reduce pairs and a bad reduction string."""
    ex = {"inputs": make, "grad_args": grad, "double_backward": dbl}
    return (
        Case("mean", {}, extra=ex, dtypes=dtypes),
        Case("sum", {"reduction": "sum"}, extra=ex, dtypes=dtypes),
        Case("none", {"reduction": "none"}, extra=ex, dtypes=dtypes),
        Case("legacy-size_average", {"size_average": False}, extra=ex),
        Case("legacy-reduce", {"reduce": False}, extra=ex),
        Case("legacy-both", {"size_average": True, "reduce": True}, extra=ex),
        Case("bad-reduction", {"reduction": "max"}, extra=ex),
        Case("elementwise_mean", {"reduction": "elementwise_mean"}, extra=ex),  # torch's deprecated alias
    )


_REDUCTION_FUZZ = {"reduction": FuzzArg("choice", options=("none", "mean", "sum"))}
_SCALE_FUZZ = {"_scale": FuzzArg("choice", options=(1.0, 1e-30, 1e4, 1e30))}  # extreme magnitudes
_RANDOM_SHAPES = Case("fuzz", {}, extra={"inputs": random_pair, "grad_args": (0, 1)})
X = (0, 1)  # differentiate both floating arguments

_L1 = Component(
    "losses", "L1Loss", functional="l1_loss",
    cases=(
        *_red_cases(pair(4, 5), X),
        Case("scalar", {}, extra={"inputs": pair(), "grad_args": X}),
        Case("5d", {}, extra={"inputs": pair(2, 3, 2, 2, 2), "grad_args": X}),
        Case("broadcast-target", {}, extra={"inputs": pair(4, 5, shape_t=(4, 1)), "grad_args": X}),
        Case("ties", {"reduction": "sum"}, extra={"inputs": inputs(const(torch.tensor([0.0, 1.0, -2.0])),
                                                                    const(torch.tensor([0.0, 1.0, 3.0]))),
                                                  "grad_args": X}),
        Case("mismatch", {}, extra={"inputs": pair(3, shape_t=(4,))}),
        Case("weight", {"weight": rand_weight(3, 4, 5)},
             extra={"inputs": pair(4, 5), "grad_args": X, "module": False}, dtypes=(torch.float64,)),
        Case("weight-none", {"reduction": "none", "weight": rand_weight(4, 4, 5)},
             extra={"inputs": pair(4, 5), "grad_args": X, "module": False}, dtypes=(torch.float64,)),
        Case("weight-wrong-size", {"weight": torch.ones(5, dtype=torch.float64)},
             extra={"inputs": pair(4, 5), "module": False}, dtypes=(torch.float64,)),
        Case("weight-elementwise_mean", {"weight": torch.ones(4, 5, dtype=torch.float64),
                                         "reduction": "elementwise_mean"},  # rejected when weighted
             extra={"inputs": pair(4, 5), "module": False}, dtypes=(torch.float64,)),
        Case("extreme", {"reduction": "none"}, extra={"inputs": pair(4, 5, scale=1e4)}),
        Case("nan", {"reduction": "sum"}, extra={"inputs": pair(4, 5, nan=True)}),
        Case("empty", {}, extra={"inputs": pair(0, 5)}),
        *_dtype_cases(),
    ),
    fuzz={**_REDUCTION_FUZZ, **_SCALE_FUZZ},
    fuzz_base=_RANDOM_SHAPES,
)

_HUBER = Component(
    "losses", "HuberLoss", functional="huber_loss",
    cases=(
        Case("mean", {}, extra={"inputs": pair(4, 5, scale=2.0), "grad_args": X}, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra={"inputs": pair(4, 5, scale=2.0), "grad_args": X}, dtypes=HALF),
        Case("none", {"reduction": "none"}, extra={"inputs": pair(4, 5, scale=2.0), "grad_args": X}, dtypes=HALF),
        Case("delta-0.3", {"delta": 0.3}, extra={"inputs": pair(4, 5), "grad_args": X}),
        Case("delta-5", {"delta": 5, "reduction": "none"}, extra={"inputs": pair(4, 5, scale=4.0), "grad_args": X}),
        Case("delta-0", {"delta": 0.0}, extra={"inputs": pair(4, 5)}),
        Case("delta-negative", {"delta": -1.0}, extra={"inputs": pair(4, 5)}),
        Case("delta-not-a-number", {"delta": "1"}, extra={"inputs": pair(4, 5), "functional": False}),
        Case("at-delta", {"reduction": "sum"},
             extra={"inputs": inputs(const(torch.tensor([0.0, 1.0, -1.0, 2.0])), const(torch.zeros(4))),
                    "grad_args": X}),
        Case("scalar", {}, extra={"inputs": pair(), "grad_args": X}),
        Case("4d", {}, extra={"inputs": pair(2, 3, 2, 2), "grad_args": X}),
        Case("broadcast-target", {}, extra={"inputs": pair(4, 5, shape_t=(5,)), "grad_args": X}),
        Case("mismatch", {}, extra={"inputs": pair(3, shape_t=(4,))}),
        Case("bad-reduction", {"reduction": "max"}, extra={"inputs": pair(4, 5)}),
        Case("weight", {"weight": rand_weight(5, 4, 5), "delta": 0.5},
             extra={"inputs": pair(4, 5), "grad_args": X, "module": False}, dtypes=(torch.float64,)),
        Case("weight-sum", {"weight": rand_weight(6, 4, 5), "reduction": "sum"},
             extra={"inputs": pair(4, 5), "grad_args": X, "module": False}, dtypes=(torch.float64,)),
        Case("weight-wrong-size", {"weight": torch.ones(5, dtype=torch.float64)},
             extra={"inputs": pair(4, 5), "module": False}, dtypes=(torch.float64,)),
        Case("extreme", {"reduction": "none"}, extra={"inputs": pair(4, 5, scale=1e4), "grad_args": X}),
        Case("nan", {"reduction": "none"}, extra={"inputs": pair(4, 5, nan=True), "grad_args": X}),
        Case("empty", {"reduction": "sum"}, extra={"inputs": pair(0, 5)}),
        *_dtype_cases(grad=False),
    ),
    fuzz={**_REDUCTION_FUZZ, **_SCALE_FUZZ, "delta": FuzzArg("logfloat", 1e-3, 1e3)},
    fuzz_base=_RANDOM_SHAPES,
)

_SMOOTH_L1 = Component(
    "losses", "SmoothL1Loss", functional="smooth_l1_loss",
    cases=(
        *_red_cases(pair(4, 5, scale=2.0), X),
        Case("beta-0.2", {"beta": 0.2}, extra={"inputs": pair(4, 5), "grad_args": X}),
        Case("beta-3", {"beta": 3.0, "reduction": "none"}, extra={"inputs": pair(4, 5, scale=3.0), "grad_args": X}),
        Case("beta-0", {"beta": 0.0, "reduction": "none"}, extra={"inputs": pair(4, 5), "grad_args": X},
             dtypes=HALF),
        Case("beta-negative", {"beta": -0.5}, extra={"inputs": pair(4, 5)}),
        Case("at-beta", {"reduction": "sum"},
             extra={"inputs": inputs(const(torch.tensor([0.0, 1.0, -1.0, 2.0])), const(torch.zeros(4))),
                    "grad_args": X}),
        Case("scalar", {}, extra={"inputs": pair(), "grad_args": X}),
        Case("4d", {}, extra={"inputs": pair(2, 3, 2, 2), "grad_args": X}),
        Case("broadcast-target", {}, extra={"inputs": pair(4, 5, shape_t=(4, 1)), "grad_args": X}),
        Case("mismatch", {}, extra={"inputs": pair(3, shape_t=(4,))}),
        Case("extreme", {"reduction": "none"}, extra={"inputs": pair(4, 5, scale=1e4), "grad_args": X}),
        Case("nan", {"reduction": "none"}, extra={"inputs": pair(4, 5, nan=True), "grad_args": X}),
        Case("empty", {}, extra={"inputs": pair(0, 5)}),
        *_dtype_cases(),
    ),
    fuzz={**_REDUCTION_FUZZ, **_SCALE_FUZZ, "beta": FuzzArg("choice", options=(0.0, 1e-3, 0.5, 1.0, 10.0))},
    fuzz_base=_RANDOM_SHAPES,
)

_RANKING = Component(
    "losses", "MarginRankingLoss", functional="margin_ranking_loss",
    cases=(
        *_red_cases(inputs(fl(6), fl(6), sign(6)), (0, 1, 2)),
        Case("margin", {"margin": 0.5, "reduction": "none"},
             extra={"inputs": inputs(fl(3, 4), fl(3, 4), sign(3, 4)), "grad_args": (0, 1, 2)}),
        Case("broadcast", {"margin": 0.2},
             extra={"inputs": inputs(fl(3, 4), fl(1, 4), sign(3, 1)), "grad_args": (0, 1, 2)}),
        Case("scalar", {"margin": 0.1}, extra={"inputs": inputs(fl(), fl(), sign()), "grad_args": (0, 1, 2)}),
        Case("ties", {"reduction": "sum"},
             extra={"inputs": inputs(const(torch.tensor([1.0, 2.0])), const(torch.tensor([1.0, 2.0])),
                                     const(torch.tensor([1.0, -1.0]))), "grad_args": (0, 1, 2)}),
        Case("dim-mismatch", {}, extra={"inputs": inputs(fl(3, 4), fl(3, 4), sign(3))}),
        Case("shape-mismatch", {}, extra={"inputs": inputs(fl(3, 4), fl(2, 4), sign(3, 4))}),
        Case("extreme", {"reduction": "none"}, extra={"inputs": inputs(fl(6, scale=1e4), fl(6, scale=1e4), sign(6))}),
        Case("nan", {"reduction": "none"}, extra={"inputs": inputs(fl(6), fl(6), sign(6), nan=0)}),
        Case("empty", {"reduction": "sum"}, extra={"inputs": inputs(fl(0), fl(0), sign(0))}),
    ),
    fuzz={**_REDUCTION_FUZZ, "margin": FuzzArg("float", -1.0, 2.0)},
)

_HINGE = Component(
    "losses", "HingeEmbeddingLoss", functional="hinge_embedding_loss",
    cases=(
        *_red_cases(inputs(fl(4, 5), sign(4, 5)), (0,)),
        Case("margin", {"margin": 0.3, "reduction": "none"}, extra={"inputs": inputs(fl(4, 5), sign(4, 5))}),
        Case("scalar", {}, extra={"inputs": inputs(fl(), sign())}),
        Case("3d", {}, extra={"inputs": inputs(fl(2, 3, 4), sign(2, 3, 4))}),
        Case("long-target", {}, extra={"inputs": inputs(fl(4, 5), sign(4, 5, dtype=torch.long))}),
        Case("other-labels", {"reduction": "none"},  # labels outside {1, -1} get both terms, as in torch
             extra={"inputs": inputs(fl(6), const(torch.tensor([1.0, -1.0, 0.0, 2.0, 1.0, -1.0])))}),
        Case("ties", {"reduction": "sum"},
             extra={"inputs": inputs(const(torch.tensor([1.0, 2.0])), const(torch.tensor([-1.0, -1.0])))}),
        Case("broadcast-target", {}, extra={"inputs": inputs(fl(4, 5), sign(5))}),
        Case("shape-mismatch", {}, extra={"inputs": inputs(fl(4, 5), sign(6))}),
        Case("extreme", {"reduction": "none"}, extra={"inputs": inputs(fl(4, 5, scale=1e4), sign(4, 5))}),
        Case("nan", {"reduction": "none"}, extra={"inputs": inputs(fl(4, 5), sign(4, 5), nan=0)}),
    ),
    fuzz={**_REDUCTION_FUZZ, "margin": FuzzArg("float", -1.0, 3.0)},
)

_ML_MARGIN = Component(
    "losses", "MultiLabelMarginLoss", functional="multilabel_margin_loss",
    cases=(
        # torch has no double backward for this loss (multilabel_margin_loss_backward is not differentiable)
        # and no bfloat16/float16 CPU kernel.
        *_red_cases(inputs(fl(5, 4), ml_targets(5, 4)), (0,), dtypes=(torch.float64, torch.float32), dbl=False),
        Case("unbatched", {"reduction": "none"},
             extra={"inputs": inputs(fl(5), const(torch.tensor([3, 0, -1, 1, 4]))), "double_backward": False}),
        Case("unbatched-mean", {}, extra={"inputs": inputs(fl(5), const(torch.tensor([3, -1, 1, 1, 1]))),
                                          "double_backward": False}),
        Case("scalar", {}, extra={"inputs": inputs(fl(), const(torch.tensor(0))), "double_backward": False}),
        Case("duplicate-labels", {"reduction": "none"},
             extra={"inputs": inputs(fl(2, 4), const(torch.tensor([[1, 1, -1, 0], [2, 0, 2, -1]]))),
                    "double_backward": False}),
        Case("ties", {"reduction": "sum"},
             extra={"inputs": inputs(const(torch.tensor([[1.0, 2.0, 1.0]])), const(torch.tensor([[1, -1, 0]]))),
                    "double_backward": False}),
        Case("wide", {}, extra={"inputs": inputs(fl(8, 30), ml_targets(8, 30)), "double_backward": False}),
        Case("target-out-of-range", {}, extra={"inputs": inputs(fl(2, 4), const(torch.tensor([[0, 4, -1, 0]] * 2)))}),
        Case("target-below-minus-one", {},
             extra={"inputs": inputs(fl(2, 4), const(torch.tensor([[0, -2, -1, 0]] * 2)))}),
        Case("target-out-of-range-after-end", {},
             extra={"inputs": inputs(fl(2, 4), const(torch.tensor([[0, -1, 9, 0]] * 2)))}),
        Case("target-int32", {}, extra={"inputs": inputs(fl(2, 4), idx(4, 2, 4, dtype=torch.int32))}),
        Case("target-float", {}, extra={"inputs": inputs(fl(2, 4), idx(4, 2, 4, dtype=torch.float32))}),
        Case("target-shape", {}, extra={"inputs": inputs(fl(2, 4), idx(4, 2, 3))}),
        Case("target-shape-unbatched", {}, extra={"inputs": inputs(fl(4), idx(4, 3))}),
        Case("input-3d", {}, extra={"inputs": inputs(fl(2, 3, 4), idx(4, 2, 3, 4))}),
        Case("no-classes", {}, extra={"inputs": inputs(fl(2, 0), idx(1, 2, 0))}),
        Case("extreme", {"reduction": "none"},
             extra={"inputs": inputs(fl(5, 4, scale=1e4), ml_targets(5, 4)), "double_backward": False}),
        Case("nan", {"reduction": "none"},  # the kernel skips a NaN term (z > 0 is false), so does ours
             extra={"inputs": inputs(fl(5, 4), ml_targets(5, 4), nan=0), "double_backward": False}),
        Case("empty-batch", {"reduction": "none"}, extra={"inputs": inputs(fl(0, 4), ml_targets(0, 4)),
                                                          "double_backward": False}),
    ),
    fuzz=_REDUCTION_FUZZ,
)

_SOFT_MARGIN = Component(
    "losses", "SoftMarginLoss", functional="soft_margin_loss",
    cases=(
        # torch defines no gradient with respect to the target
        *_red_cases(inputs(fl(4, 5), sign(4, 5)), (0,)),
        Case("scalar", {}, extra={"inputs": inputs(fl(), sign())}),
        Case("3d", {}, extra={"inputs": inputs(fl(2, 3, 4), sign(2, 3, 4))}),
        Case("broadcast-target", {}, extra={"inputs": inputs(fl(4, 5), sign(4, 1))}),
        Case("long-target", {}, extra={"inputs": inputs(fl(4, 5), sign(4, 5, dtype=torch.long))}),
        Case("shape-mismatch", {}, extra={"inputs": inputs(fl(4, 5), sign(3, 5))}),
        Case("target-broadcasts-input", {}, extra={"inputs": inputs(fl(5), sign(4, 5))}),
        Case("moderate", {"reduction": "none"}, extra={"inputs": inputs(fl(4, 5, scale=30.0), sign(4, 5))}),
        Case("extreme", {"reduction": "none"},  # exp overflows to inf (loss inf, gradient NaN) as in torch
             extra={"inputs": inputs(fl(4, 5, scale=1e4), sign(4, 5)), "double_backward": False}),
        Case("nan", {"reduction": "none"}, extra={"inputs": inputs(fl(4, 5), sign(4, 5), nan=0)}),
        *_dtype_cases(),
    ),
    fuzz=_REDUCTION_FUZZ,
)

_ML_SOFT_MARGIN = Component(
    "losses", "MultiLabelSoftMarginLoss", functional="multilabel_soft_margin_loss",
    cases=(
        *_red_cases(inputs(fl(4, 5), bits(4, 5)), X),
        Case("weight", {"weight": rand_weight(7, 5)}, extra={"inputs": inputs(fl(4, 5), bits(4, 5)), "grad_args": X},
             dtypes=(torch.float64,)),
        Case("weight-none", {"weight": rand_weight(8, 5), "reduction": "none"},
             extra={"inputs": inputs(fl(4, 5), bits(4, 5)), "grad_args": X}, dtypes=(torch.float64,)),
        Case("weight-wrong-size", {"weight": torch.ones(4, dtype=torch.float64)},
             extra={"inputs": inputs(fl(4, 5), bits(4, 5))}, dtypes=(torch.float64,)),
        Case("soft-targets", {"reduction": "none"},
             extra={"inputs": inputs(fl(4, 5), lambda g, dt: torch.rand(4, 5, generator=g, dtype=torch.float64)
                                     .to(dt)), "grad_args": X}),
        Case("unbatched", {"reduction": "none"}, extra={"inputs": inputs(fl(5), bits(5)), "grad_args": X}),
        Case("3d", {"reduction": "none"}, extra={"inputs": inputs(fl(2, 3, 5), bits(2, 3, 5)), "grad_args": X}),
        Case("long-target", {}, extra={"inputs": inputs(fl(4, 5), idx(2, 4, 5))}),
        Case("shape-mismatch", {}, extra={"inputs": inputs(fl(4, 5), bits(4, 6))}),
        Case("extreme", {"reduction": "none"}, extra={"inputs": inputs(fl(4, 5, scale=1e4), bits(4, 5)),
                                                      "grad_args": X}),
        Case("nan", {"reduction": "none"}, extra={"inputs": inputs(fl(4, 5), bits(4, 5), nan=0)}),
    ),
    fuzz=_REDUCTION_FUZZ,
)

_COSINE = Component(
    "losses", "CosineEmbeddingLoss", functional="cosine_embedding_loss",
    cases=(
        *_red_cases(inputs(fl(6, 4), fl(6, 4), sign(6)), X),
        Case("margin", {"margin": 0.3, "reduction": "none"},
             extra={"inputs": inputs(fl(6, 4), fl(6, 4), sign(6)), "grad_args": X}),
        Case("negative-margin", {"margin": -0.5}, extra={"inputs": inputs(fl(6, 4), fl(6, 4), sign(6)),
                                                          "grad_args": X}),
        Case("unbatched", {"reduction": "none"}, extra={"inputs": inputs(fl(4), fl(4), sign()), "grad_args": X}),
        Case("long-target", {}, extra={"inputs": inputs(fl(6, 4), fl(6, 4), sign(6, dtype=torch.long))}),
        Case("zero-vector", {"reduction": "none"},  # ε keeps cos = 0 finite for a zero input
             extra={"inputs": inputs(const(torch.zeros(2, 3)), fl(2, 3), sign(2)), "grad_args": X}),
        Case("target-2d", {}, extra={"inputs": inputs(fl(6, 4), fl(6, 4), sign(6, 1))}),
        Case("target-0d-with-2d-inputs", {}, extra={"inputs": inputs(fl(6, 4), fl(6, 4), sign())}),
        Case("target-1d-with-1d-inputs", {}, extra={"inputs": inputs(fl(4), fl(4), sign(4))}),
        Case("batch-mismatch", {}, extra={"inputs": inputs(fl(6, 4), fl(6, 4), sign(5))}),
        Case("feature-mismatch", {}, extra={"inputs": inputs(fl(6, 4), fl(6, 3), sign(6))}),
        Case("extreme", {"reduction": "none"},
             extra={"inputs": inputs(fl(6, 4, scale=1e4), fl(6, 4, scale=1e4), sign(6)), "grad_args": X}),
        Case("nan", {"reduction": "none"}, extra={"inputs": inputs(fl(6, 4), fl(6, 4), sign(6), nan=0)}),
    ),
    fuzz={**_REDUCTION_FUZZ, "margin": FuzzArg("float", -1.0, 1.0)},
)

_MM_NOHALF = (torch.float64, torch.float32)  # torch has no bfloat16/float16 CPU kernel for multi_margin_loss

_MULTI_MARGIN = Component(
    "losses", "MultiMarginLoss", functional="multi_margin_loss",
    cases=(
        # torch has no double backward for this loss (multi_margin_loss_backward is not differentiable)
        *_red_cases(inputs(fl(6, 5), idx(5, 6)), (0,), dtypes=_MM_NOHALF, dbl=False),
        Case("p2", {"p": 2, "reduction": "none"}, extra={"inputs": inputs(fl(6, 5), idx(5, 6)),
                                                         "double_backward": False}),
        Case("margin", {"margin": 0.4}, extra={"inputs": inputs(fl(6, 5), idx(5, 6)), "double_backward": False}),
        Case("weight", {"weight": rand_weight(9, 5), "p": 2, "margin": 2.0, "reduction": "none"},
             extra={"inputs": inputs(fl(6, 5), idx(5, 6)), "double_backward": False}, dtypes=(torch.float64,)),
        Case("weight-sum", {"weight": rand_weight(10, 5), "reduction": "sum"},
             extra={"inputs": inputs(fl(6, 5), idx(5, 6)), "double_backward": False}, dtypes=(torch.float64,)),
        Case("weight-wrong-size", {"weight": torch.ones(4, dtype=torch.float64)},
             extra={"inputs": inputs(fl(6, 5), idx(5, 6))}, dtypes=(torch.float64,)),
        Case("weight-2d", {"weight": torch.ones(1, 5, dtype=torch.float64)},
             extra={"inputs": inputs(fl(6, 5), idx(5, 6))}, dtypes=(torch.float64,)),
        Case("weight-wrong-dtype", {"weight": torch.ones(5, dtype=torch.float64)},
             extra={"inputs": inputs(fl(6, 5), idx(5, 6)), "module": False}, dtypes=(torch.float32,)),
        Case("p3", {"p": 3}, extra={"inputs": inputs(fl(6, 5), idx(5, 6))}),
        Case("unbatched", {"reduction": "none"}, extra={"inputs": inputs(fl(5), idx(5)), "double_backward": False}),
        Case("unbatched-1-element-target", {"reduction": "none"},
             extra={"inputs": inputs(fl(5), idx(5, 1)), "double_backward": False}),
        Case("scalar", {}, extra={"inputs": inputs(fl(), idx(1)), "double_backward": False}),
        Case("ties", {"reduction": "sum"}, extra={"inputs": inputs(const(torch.tensor([[1.0, 2.0, 1.0]])),
                                                                   const(torch.tensor([1]))),
                                                  "double_backward": False}),
        Case("target-out-of-range", {}, extra={"inputs": inputs(fl(6, 5), idx(6, 6, lo=5))}),
        Case("target-negative", {}, extra={"inputs": inputs(fl(6, 5), idx(0, 6, lo=-1))}),
        Case("target-int32", {}, extra={"inputs": inputs(fl(6, 5), idx(5, 6, dtype=torch.int32))}),
        Case("target-float", {}, extra={"inputs": inputs(fl(6, 5), idx(5, 6, dtype=torch.float32))}),
        Case("target-size", {}, extra={"inputs": inputs(fl(6, 5), idx(5, 5))}),
        Case("target-2d", {}, extra={"inputs": inputs(fl(6, 5), idx(5, 6, 1))}),
        Case("input-3d", {}, extra={"inputs": inputs(fl(2, 3, 5), idx(5, 2))}),
        Case("no-classes", {}, extra={"inputs": inputs(fl(3, 0), idx(1, 3))}),
        Case("extreme", {"reduction": "none"}, extra={"inputs": inputs(fl(6, 5, scale=1e4), idx(5, 6)),
                                                      "double_backward": False}),
        Case("nan", {"reduction": "none"},  # the kernel skips a NaN term (z > 0 is false), so does ours
             extra={"inputs": inputs(fl(6, 5), idx(5, 6), nan=0), "double_backward": False}),
        Case("input-int64", {}, extra={"inputs": inputs(typed(fl(6, 5), torch.long), idx(5, 6))},
             dtypes=(torch.float64,)),
    ),
    fuzz={**_REDUCTION_FUZZ, "p": FuzzArg("choice", options=(1, 2)), "margin": FuzzArg("float", -1.0, 3.0)},
)

T3 = (0, 1, 2)

_TRIPLET = Component(
    "losses", "TripletMarginLoss", functional="triplet_margin_loss",
    cases=(
        *_red_cases(inputs(fl(5, 4), fl(5, 4), fl(5, 4)), T3),
        Case("p1", {"p": 1.0, "reduction": "none"}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4)),
                                                           "grad_args": T3}),
        Case("p3-eps", {"p": 3.0, "eps": 1e-3, "margin": 2.0},
             extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4)), "grad_args": T3}),
        Case("swap", {"swap": True, "reduction": "none"},
             extra={"inputs": inputs(fl(8, 4), fl(8, 4), fl(8, 4)), "grad_args": T3}),
        Case("swap-p1", {"swap": True, "p": 1.0, "margin": 0.5},
             extra={"inputs": inputs(fl(8, 4), fl(8, 4), fl(8, 4)), "grad_args": T3}),
        Case("unbatched", {"reduction": "none"}, extra={"inputs": inputs(fl(4), fl(4), fl(4)), "grad_args": T3}),
        Case("3d", {"reduction": "none"}, extra={"inputs": inputs(fl(2, 3, 4), fl(2, 3, 4), fl(2, 3, 4)),
                                                 "grad_args": T3}),
        Case("broadcast", {}, extra={"inputs": inputs(fl(5, 4), fl(1, 4), fl(5, 4)), "grad_args": T3}),
        Case("margin-0", {"margin": 0.0}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4))}),
        Case("dim-mismatch", {}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(4))}),
        Case("shape-mismatch", {}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 3))}),
        Case("extreme", {"reduction": "none"},
             extra={"inputs": inputs(fl(5, 4, scale=1e4), fl(5, 4, scale=1e4), fl(5, 4, scale=1e4)),
                    "grad_args": T3}),
        Case("nan", {"reduction": "none"}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4), nan=0)}),
    ),
    fuzz={**_REDUCTION_FUZZ, "margin": FuzzArg("logfloat", 1e-2, 1e1), "p": FuzzArg("choice", options=(1.0, 2.0, 3.0)),
          "swap": FuzzArg("bool")},
)


def _cosine_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A custom distance for TripletMarginWithDistanceLoss: ``1 - cos(u, v)`` over the last dim."""
    return 1 - (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1))


def _l1_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u - v).abs().sum(-1)


_TRIPLET_DIST = Component(
    "losses", "TripletMarginWithDistanceLoss", functional="triplet_margin_with_distance_loss",
    cases=(
        Case("mean", {}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4)), "grad_args": T3}, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4)), "grad_args": T3},
             dtypes=HALF),
        Case("none", {"reduction": "none"}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4)),
                                                   "grad_args": T3}, dtypes=HALF),
        Case("swap", {"swap": True, "margin": 2.0},
             extra={"inputs": inputs(fl(8, 4), fl(8, 4), fl(8, 4)), "grad_args": T3}),
        Case("cosine-distance", {"distance_function": _cosine_distance, "reduction": "none"},
             extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4)), "grad_args": T3}),
        Case("l1-distance-swap", {"distance_function": _l1_distance, "swap": True, "margin": 3.0},
             extra={"inputs": inputs(fl(8, 4), fl(8, 4), fl(8, 4)), "grad_args": T3}),
        Case("unbatched", {"reduction": "none"}, extra={"inputs": inputs(fl(4), fl(4), fl(4)), "grad_args": T3}),
        Case("3d", {"reduction": "none"}, extra={"inputs": inputs(fl(2, 3, 4), fl(2, 3, 4), fl(2, 3, 4)),
                                                 "grad_args": T3}),
        Case("margin-0", {"margin": 0.0}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4))}),
        Case("bad-reduction", {"reduction": "max"}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4))}),
        Case("dim-mismatch", {}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(4))}),
        Case("extreme", {"reduction": "none"},
             extra={"inputs": inputs(fl(5, 4, scale=1e4), fl(5, 4, scale=1e4), fl(5, 4, scale=1e4)),
                    "grad_args": T3}),
        Case("nan", {"reduction": "none"}, extra={"inputs": inputs(fl(5, 4), fl(5, 4), fl(5, 4), nan=0)}),
    ),
    fuzz={**_REDUCTION_FUZZ, "margin": FuzzArg("logfloat", 1e-2, 1e1), "swap": FuzzArg("bool")},
)

LOSSES_B: list[Component] = [_L1, _HUBER, _SMOOTH_L1, _RANKING, _HINGE, _ML_MARGIN, _SOFT_MARGIN, _ML_SOFT_MARGIN,
                             _COSINE, _MULTI_MARGIN, _TRIPLET, _TRIPLET_DIST]

_MSE = dataclasses.replace(_MSE, cases=(*_MSE.cases, *_dtype_cases()))

COMPONENTS: list[Component] = [_MSE, *LOSSES_B]
