"""Catalogue of losses: each loss module, its functional form, and cases covering every argument."""

from __future__ import annotations

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
        Case("extreme", {"reduction": "none"}, extra={"inputs": pair(4, 5, scale=1e4)}),
        Case("nan", {"reduction": "sum"}, extra={"inputs": pair(4, 5, nan=True)}),
        Case("empty", {}, extra={"inputs": pair(0, 5)}),
    ),
    fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum"))},
)

COMPONENTS: list[Component] = [_MSE]
