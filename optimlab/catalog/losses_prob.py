"""Catalogue of the likelihood losses (cross entropy, NLL, BCE, BCE with logits, KL divergence, Poisson and
Gaussian NLL) and CTC: cases covering every argument, input form, bad input and extreme value."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import Case, Component, FuzzArg

F64 = (torch.float64,)
HALF = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
Gen = torch.Generator
Maker = Callable[[Gen, torch.dtype, str], tuple]


def _randn(g: Gen, *shape: int, dtype: torch.dtype, scale: float = 1.0) -> torch.Tensor:
    """Normal values drawn in float64 then cast, so every dtype sees the same numbers."""
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def _unit(g: Gen, *shape: int, dtype: torch.dtype, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)).to(dtype)


def _w(seed: int, *shape: int) -> torch.Tensor:
    """Positive float64 weights in [0.2, 1.2), fixed by ``seed``."""
    return 0.2 + torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def classes(shape: tuple[int, ...], *, log_probs: bool = False, scale: float = 1.0, ignore: int | None = None,
            target: Callable[[Gen, tuple[int, ...]], torch.Tensor] | None = None, nan: bool = False,
            target_dtype: torch.dtype = torch.int64) -> Maker:
    """``(input, class-index target)``: input of ``shape`` (classes on dim 1, or dim 0 when 1-D); every third
    target set to ``ignore`` when given; ``target`` overrides the drawn targets."""

    def make(g: Gen, dtype: torch.dtype, device: str) -> tuple:
        x = _randn(g, *shape, dtype=torch.float64, scale=scale)
        if log_probs:
            x = torch.log_softmax(x, 0 if len(shape) == 1 else 1)
        x = x.to(dtype)
        if nan:
            x.view(-1)[1] = float("nan")
        c = shape[0] if len(shape) == 1 else shape[1]
        t_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
        t = torch.randint(0, c, t_shape, generator=g) if target is None else target(g, t_shape)
        if ignore is not None:
            t.view(-1)[::3] = ignore
        return x, t.to(target_dtype)

    return make


def probs(shape: tuple[int, ...], *, scale: float = 1.0) -> Maker:
    """``(logits, class-probability target)`` of the same shape."""

    def make(g: Gen, dtype: torch.dtype, device: str) -> tuple:
        cdim = 0 if len(shape) == 1 else 1
        x = _randn(g, *shape, dtype=dtype, scale=scale)
        return x, torch.softmax(_randn(g, *shape, dtype=torch.float64), cdim).to(dtype)

    return make


def pairs(*makers: Callable[[Gen, torch.dtype], torch.Tensor]) -> Maker:
    """A tuple of tensors, each drawn by one of ``makers``."""

    def make(g: Gen, dtype: torch.dtype, device: str) -> tuple:
        return tuple(m(g, dtype) for m in makers)

    return make


def normal(*shape: int, scale: float = 1.0, nan: bool = False) -> Callable[[Gen, torch.dtype], torch.Tensor]:
    def draw(g: Gen, dtype: torch.dtype) -> torch.Tensor:
        x = _randn(g, *shape, dtype=dtype, scale=scale)
        if nan and x.numel():
            x.view(-1)[0] = float("nan")
        return x

    return draw


def unit(*shape: int, lo: float = 0.0, hi: float = 1.0) -> Callable[[Gen, torch.dtype], torch.Tensor]:
    return lambda g, dtype: _unit(g, *shape, dtype=dtype, lo=lo, hi=hi)


def fixed(values: list, dtype: torch.dtype | None = None) -> Callable[[Gen, torch.dtype], torch.Tensor]:
    return lambda g, dt: torch.tensor(values, dtype=dtype or dt)


def log_softmax(*shape: int, dim: int = -1) -> Callable[[Gen, torch.dtype], torch.Tensor]:
    return lambda g, dt: torch.log_softmax(_randn(g, *shape, dtype=torch.float64), dim).to(dt)


def softmax(*shape: int, dim: int = -1) -> Callable[[Gen, torch.dtype], torch.Tensor]:
    return lambda g, dt: torch.softmax(_randn(g, *shape, dtype=torch.float64), dim).to(dt)


def _const(value: int) -> Callable[[Gen, tuple[int, ...]], torch.Tensor]:
    return lambda g, shape: torch.full(shape, value, dtype=torch.int64)


def _class_cases(loss: str) -> list[Case]:
    """Cases shared by NLLLoss (log-probability input) and CrossEntropyLoss (logits)."""
    lp = loss == "nll"

    def cl(shape: tuple[int, ...], **kw) -> Maker:
        return classes(shape, log_probs=lp, **kw)

    w5 = _w(3, 5)
    return [
        Case("mean", {}, extra={"inputs": cl((8, 5))}, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra={"inputs": cl((8, 5))}, dtypes=HALF),
        Case("none", {"reduction": "none"}, extra={"inputs": cl((8, 5))}, dtypes=HALF),
        Case("unbatched", {}, extra={"inputs": cl((5,))}),
        Case("unbatched-none", {"reduction": "none"}, extra={"inputs": cl((5,))}),
        Case("kdim-3d", {}, extra={"inputs": cl((3, 4, 6))}),
        Case("kdim-4d-none", {"reduction": "none"}, extra={"inputs": cl((2, 4, 3, 3))}),
        Case("kdim-5d-weight", {"weight": _w(4, 4)}, extra={"inputs": cl((2, 4, 2, 3, 2))}, dtypes=F64),
        Case("weight-mean", {"weight": w5}, extra={"inputs": cl((8, 5))}, dtypes=F64),
        Case("weight-sum", {"weight": w5, "reduction": "sum"}, extra={"inputs": cl((8, 5))}, dtypes=F64),
        Case("weight-none", {"weight": w5, "reduction": "none"}, extra={"inputs": cl((8, 5))}, dtypes=F64),
        Case("weight-float32", {"weight": w5.float()}, extra={"inputs": cl((8, 5), ignore=-100)},
             dtypes=(torch.float32,)),
        Case("err-weight-dtype", {"weight": w5}, extra={"inputs": cl((8, 5))}, dtypes=(torch.float32,)),
        Case("ignore-default", {}, extra={"inputs": cl((9, 5), ignore=-100)}),
        Case("ignore-weight", {"weight": w5}, extra={"inputs": cl((9, 5), ignore=-100)}, dtypes=F64),
        Case("ignore-in-range", {"ignore_index": 2, "weight": w5}, extra={"inputs": cl((9, 5), ignore=2)}, dtypes=F64),
        Case("ignore-none", {"ignore_index": 1, "reduction": "none"}, extra={"inputs": cl((9, 5), ignore=1)}),
        Case("all-ignored-mean", {}, extra={"inputs": cl((4, 5), target=_const(-100))}),
        Case("all-ignored-sum", {"reduction": "sum"}, extra={"inputs": cl((4, 5), target=_const(-100))}),
        Case("uint8-target", {}, extra={"inputs": cl((6, 5), target_dtype=torch.uint8)}),
        Case("legacy-size_average", {"size_average": False}, extra={"inputs": cl((6, 5))}),
        Case("legacy-reduce", {"reduce": False}, extra={"inputs": cl((6, 5))}),
        Case("bad-reduction", {"reduction": "max"}, extra={"inputs": cl((6, 5))}),
        Case("err-target-oob", {}, extra={"inputs": cl((4, 5), target=_const(5))}),
        Case("err-target-negative", {}, extra={"inputs": cl((4, 5), target=_const(-1))}),
        Case("err-target-int32", {}, extra={"inputs": cl((4, 5), target_dtype=torch.int32)}),
        Case("err-target-float", {}, extra={"inputs": cl((4, 5), target_dtype=torch.float32)}, dtypes=F64),
        Case("err-batch-mismatch", {}, extra={"inputs": pairs(normal(4, 5), fixed([0, 1, 2], torch.int64))}),
        Case("err-kdim-mismatch", {}, extra={"inputs": pairs(normal(2, 5, 3), fixed([[0, 1], [2, 3]], torch.int64))}),
        Case("err-multi-target", {}, extra={"inputs": pairs(normal(2, 5), fixed([[0, 1], [2, 3]], torch.int64))}),
        Case("err-0d-input", {}, extra={"inputs": pairs(normal(), fixed(0, torch.int64))}),
        Case("err-weight-size", {"weight": _w(5, 4)}, extra={"inputs": cl((4, 5))}),
        Case("err-weight-2d", {"weight": _w(5, 5).view(5, 1)}, extra={"inputs": cl((4, 5))}),
        Case("extreme", {"reduction": "none"}, extra={"inputs": cl((6, 5), scale=1e4)}),
        Case("nan", {"reduction": "none"}, extra={"inputs": cl((6, 5), nan=True)}),
        Case("empty", {}, extra={"inputs": cl((0, 5))}),
    ]


_SCALE = {"_scale": FuzzArg("choice", options=(1.0, 1e-30, 1e4, 1e30))}  # extreme magnitudes of the float inputs
_NLL = Component("losses", "NLLLoss", functional="nll_loss", cases=tuple(_class_cases("nll")),
                 fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum")),
                       "ignore_index": FuzzArg("int", -100, 4), **_SCALE})


def _ce_cases() -> list[Case]:
    w5 = _w(7, 5)
    ls = {"label_smoothing": 0.15}
    return [
        *_class_cases("ce"),
        Case("smoothing", ls, extra={"inputs": classes((8, 5))}, dtypes=HALF),
        Case("smoothing-weight", {**ls, "weight": w5}, extra={"inputs": classes((8, 5))}, dtypes=F64),
        Case("smoothing-weight-ignore", {**ls, "weight": w5},
             extra={"inputs": classes((9, 5), ignore=-100)}, dtypes=F64),
        Case("smoothing-weight-ignore-sum", {**ls, "weight": w5, "reduction": "sum"},
             extra={"inputs": classes((9, 5), ignore=-100)}, dtypes=F64),
        Case("smoothing-ignore-none", {**ls, "reduction": "none", "ignore_index": 3},
             extra={"inputs": classes((9, 5), ignore=3)}),
        Case("smoothing-kdim", {**ls, "weight": _w(8, 4)},
             extra={"inputs": classes((2, 4, 3, 2), ignore=-100)}, dtypes=F64),
        Case("smoothing-unbatched", ls, extra={"inputs": classes((5,))}),
        Case("smoothing-one", {"label_smoothing": 1.0}, extra={"inputs": classes((6, 5))}),
        Case("smoothing-all-ignored", {**ls, "weight": w5},
             extra={"inputs": classes((4, 5), target=_const(-100))}, dtypes=F64),
        Case("err-smoothing-above-one", {"label_smoothing": 1.5}, extra={"inputs": classes((4, 5))}),
        Case("probs", {}, extra={"inputs": probs((6, 5)), "grad_args": (0, 1)}, dtypes=HALF),
        Case("probs-sum", {"reduction": "sum"}, extra={"inputs": probs((6, 5)), "grad_args": (0, 1)}),
        Case("probs-none", {"reduction": "none"}, extra={"inputs": probs((6, 5)), "grad_args": (0, 1)}),
        Case("probs-weight", {"weight": w5}, extra={"inputs": probs((6, 5)), "grad_args": (0, 1)}, dtypes=F64),
        Case("probs-smoothing-weight", {**ls, "weight": w5},
             extra={"inputs": probs((6, 5)), "grad_args": (0, 1)}, dtypes=F64),
        Case("probs-kdim", {**ls}, extra={"inputs": probs((2, 5, 3, 2)), "grad_args": (0, 1)}),
        Case("probs-unbatched", {"reduction": "none"}, extra={"inputs": probs((5,)), "grad_args": (0, 1)}),
        Case("probs-ignore-negative", {"ignore_index": -1}, extra={"inputs": probs((6, 5))}),
        Case("probs-empty", {}, extra={"inputs": probs((0, 5))}),
        Case("err-probs-ignore", {"ignore_index": 1}, extra={"inputs": probs((6, 5))}),
        Case("err-probs-int-target", {}, extra={"inputs": pairs(normal(3, 4), fixed([[0] * 4] * 3, torch.int64))}),
        Case("err-probs-weight-size", {"weight": _w(9, 4)}, extra={"inputs": probs((6, 5))}),
    ]


_CE = Component("losses", "CrossEntropyLoss", functional="cross_entropy", cases=tuple(_ce_cases()),
                fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum")),
                      "label_smoothing": FuzzArg("float", 0.0, 1.0), "ignore_index": FuzzArg("int", -100, 4),
                      **_SCALE},
                fuzz_base=Case("fuzz", {"weight": _w(10, 5)}, extra={"inputs": classes((9, 5), ignore=1)}))

# BCE: probabilities kept inside (0.05, 0.95) where gradients are checked (the double backward has 1/x²(1-x)²).
_P = unit(4, 5, lo=0.05, hi=0.95)
_T = unit(4, 5)
_BCE_IN = {"inputs": pairs(_P, _T), "grad_args": (0, 1)}
_BCE = Component(
    "losses", "BCELoss", functional="binary_cross_entropy",
    cases=(
        Case("mean", {}, extra=_BCE_IN, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra=_BCE_IN, dtypes=HALF),
        Case("none", {"reduction": "none"}, extra=_BCE_IN, dtypes=HALF),
        Case("weight", {"weight": _w(11, 4, 5)}, extra=_BCE_IN),
        Case("weight-broadcast", {"weight": _w(12, 5), "reduction": "sum"}, extra=_BCE_IN),
        Case("scalar", {}, extra={"inputs": pairs(unit(lo=0.1, hi=0.9), unit()), "grad_args": (0, 1)}),
        Case("3d", {}, extra={"inputs": pairs(unit(2, 3, 4, lo=0.05, hi=0.95), unit(2, 3, 4)), "grad_args": (0, 1)}),
        Case("exact-0-and-1", {"reduction": "none"},
             extra={"inputs": pairs(fixed([0.0, 1.0, 0.0, 1.0, 0.5]), fixed([0.0, 1.0, 1.0, 0.0, 0.5])),
                    "grad_args": (0, 1), "double_backward": False}),
        Case("log-clamp", {"reduction": "sum"},
             extra={"inputs": pairs(fixed([1e-60, 1 - 1e-16, 0.3]), fixed([1.0, 0.0, 0.2])), "double_backward": False},
             dtypes=F64),
        Case("legacy-size_average", {"size_average": False}, extra=_BCE_IN),
        Case("legacy-reduce", {"reduce": False}, extra=_BCE_IN),
        Case("bad-reduction", {"reduction": "avg"}, extra=_BCE_IN),
        Case("empty", {}, extra={"inputs": pairs(unit(0, 5), unit(0, 5))}),
        Case("err-size-mismatch", {}, extra={"inputs": pairs(unit(4, 5), unit(4, 1))}),
        Case("err-input-above-one", {}, extra={"inputs": pairs(unit(4, 5, lo=1.0, hi=2.0), _T)}),
        Case("err-target-above-one", {}, extra={"inputs": pairs(_P, unit(4, 5, lo=1.5, hi=2.0))}),
        Case("err-nan-input", {}, extra={"inputs": pairs(fixed([float("nan"), 0.5]), fixed([0.5, 0.5]))}),
        Case("err-target-dtype", {}, extra={"inputs": pairs(_P, fixed([[1] * 5] * 4, torch.int64))}),
        Case("err-weight-shape", {"weight": _w(13, 3)}, extra=_BCE_IN),
    ),
    fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum")), **_SCALE},
)

_X = normal(4, 5, scale=2.0)
_BCEL_IN = {"inputs": pairs(_X, _T), "grad_args": (0, 1)}
_BCEL = Component(
    "losses", "BCEWithLogitsLoss", functional="binary_cross_entropy_with_logits",
    cases=(
        Case("mean", {}, extra=_BCEL_IN, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra=_BCEL_IN, dtypes=HALF),
        Case("none", {"reduction": "none"}, extra=_BCEL_IN, dtypes=HALF),
        Case("weight", {"weight": _w(14, 4, 5)}, extra=_BCEL_IN),
        Case("weight-broadcast", {"weight": _w(15, 5)}, extra=_BCEL_IN),
        Case("pos_weight", {"pos_weight": 3 * _w(16, 5)}, extra=_BCEL_IN),
        Case("pos_weight-and-weight", {"pos_weight": 3 * _w(17, 5), "weight": _w(18, 4, 1), "reduction": "none"},
             extra=_BCEL_IN),
        Case("pos_weight-kdim", {"pos_weight": 2 * _w(19, 3, 1, 1)},
             extra={"inputs": pairs(normal(2, 3, 4, 4), unit(2, 3, 4, 4)), "grad_args": (0, 1)}),
        Case("scalar", {}, extra={"inputs": pairs(normal(), unit()), "grad_args": (0, 1)}),
        Case("extreme", {"reduction": "none", "pos_weight": 2 * _w(20, 5)},
             extra={"inputs": pairs(normal(4, 5, scale=1e4), _T), "grad_args": (0, 1)}),
        Case("nan", {"reduction": "none"}, extra={"inputs": pairs(normal(4, 5, nan=True), _T)}),
        Case("legacy-size_average", {"size_average": False}, extra=_BCEL_IN),
        Case("bad-reduction", {"reduction": "avg"}, extra=_BCEL_IN),
        Case("empty", {}, extra={"inputs": pairs(normal(0, 5), unit(0, 5))}),
        Case("err-size-mismatch", {}, extra={"inputs": pairs(_X, unit(4, 1))}),
        Case("err-pos_weight-shape", {"pos_weight": _w(21, 4)}, extra=_BCEL_IN),
        Case("err-weight-shape", {"weight": _w(22, 4)}, extra=_BCEL_IN),
        Case("err-target-int", {}, extra={"inputs": pairs(_X, fixed([[1] * 5] * 4, torch.int64))}),
    ),
    fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum")), **_SCALE},
)

_KL_IN = {"inputs": pairs(log_softmax(4, 5), softmax(4, 5)), "grad_args": (0, 1)}
_KL_LOG = {"inputs": pairs(log_softmax(4, 5), log_softmax(4, 5)), "grad_args": (0, 1)}
_KL = Component(
    "losses", "KLDivLoss", functional="kl_div",
    cases=(
        Case("mean", {}, extra=_KL_IN, dtypes=HALF),
        Case("batchmean", {"reduction": "batchmean"}, extra=_KL_IN, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra=_KL_IN),
        Case("none", {"reduction": "none"}, extra=_KL_IN),
        Case("log_target", {"log_target": True, "reduction": "batchmean"}, extra=_KL_LOG, dtypes=HALF),
        Case("log_target-none", {"log_target": True, "reduction": "none"}, extra=_KL_LOG),
        Case("zero-target", {"reduction": "sum"},
             extra={"inputs": pairs(log_softmax(3), fixed([0.0, 0.25, 0.75])), "grad_args": (0,)}),
        Case("batchmean-scalar", {"reduction": "batchmean"}, extra={"inputs": pairs(normal(), unit(lo=0.1)),
                                                                    "grad_args": (0, 1)}),
        Case("broadcast-target", {"reduction": "sum"},
             extra={"inputs": pairs(log_softmax(4, 5), softmax(1, 5)), "grad_args": (0, 1)}),
        Case("3d-batchmean", {"reduction": "batchmean"},
             extra={"inputs": pairs(log_softmax(2, 3, 4), softmax(2, 3, 4)), "grad_args": (0, 1)}),
        Case("legacy-size_average", {"size_average": False}, extra=_KL_IN),
        Case("legacy-reduce", {"reduce": False}, extra=_KL_IN),
        Case("bad-reduction", {"reduction": "max"}, extra=_KL_IN),
        Case("nan", {"reduction": "none"}, extra={"inputs": pairs(normal(4, 5, nan=True), softmax(4, 5))}),
        Case("extreme", {"reduction": "sum", "log_target": True},
             extra={"inputs": pairs(normal(4, 5, scale=1e4), log_softmax(4, 5))}),
        Case("err-shape", {"reduction": "sum"}, extra={"inputs": pairs(log_softmax(4, 5), softmax(4, 3))}),
        Case("err-integral", {"reduction": "sum"},
             extra={"inputs": pairs(log_softmax(2, 2), fixed([[1, 0], [0, 1]], torch.int64))}),
    ),
    fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum", "batchmean")),
          "log_target": FuzzArg("bool"), **_SCALE},
)

_POIS_IN = {"inputs": pairs(normal(4, 5), unit(4, 5, hi=4.0)), "grad_args": (0, 1)}
_POIS_RATE = {"inputs": pairs(unit(4, 5, lo=0.1, hi=3.0), unit(4, 5, hi=4.0)), "grad_args": (0, 1)}
_POIS = Component(
    "losses", "PoissonNLLLoss", functional="poisson_nll_loss",
    cases=(
        Case("mean", {}, extra=_POIS_IN, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra=_POIS_IN),
        Case("none", {"reduction": "none"}, extra=_POIS_IN),
        Case("rate-input", {"log_input": False}, extra=_POIS_RATE, dtypes=HALF),
        Case("rate-eps", {"log_input": False, "eps": 0.5}, extra=_POIS_RATE),
        Case("rate-zero-input", {"log_input": False, "reduction": "none"},
             extra={"inputs": pairs(fixed([0.0, 1.0, 2.0]), fixed([1.0, 0.0, 3.0])), "grad_args": (0,)}),
        Case("full", {"full": True},
             extra={"inputs": pairs(normal(4, 5), unit(4, 5, lo=1.1, hi=5.0)), "grad_args": (0, 1)}),
        Case("full-small-targets", {"full": True, "reduction": "none"},
             extra={"inputs": pairs(normal(4, 5), unit(4, 5, hi=3.0)), "grad_args": (0,)}),
        Case("full-rate", {"full": True, "log_input": False},
             extra={"inputs": pairs(unit(4, 5, lo=0.1, hi=3.0), unit(4, 5, lo=1.1, hi=5.0)), "grad_args": (0, 1)}),
        Case("broadcast-target", {"reduction": "sum"}, extra={"inputs": pairs(normal(4, 5), unit(5, hi=4.0))}),
        Case("legacy-size_average", {"size_average": False}, extra=_POIS_IN),
        Case("legacy-reduce", {"reduce": False}, extra=_POIS_IN),
        Case("bad-reduction", {"reduction": "max"}, extra=_POIS_IN),
        Case("nan", {"reduction": "none"}, extra={"inputs": pairs(normal(4, 5, nan=True), unit(4, 5))}),
        Case("err-shape", {}, extra={"inputs": pairs(normal(4, 5), unit(4, 3))}),
    ),
    fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum")), "log_input": FuzzArg("bool"),
          "full": FuzzArg("bool"), "eps": FuzzArg("logfloat", 1e-10, 1.0), **_SCALE},
    fuzz_base=Case("fuzz", {}, extra={"inputs": pairs(unit(4, 5, lo=0.1, hi=3.0), unit(4, 5, hi=4.0))}),
)


def _gauss(var: Callable[[Gen, torch.dtype], torch.Tensor] | float, shape: tuple[int, ...] = (4, 5)) -> dict:
    if isinstance(var, float):
        return {"inputs": pairs(normal(*shape), normal(*shape), lambda g, dt: var), "grad_args": (0, 1)}
    return {"inputs": pairs(normal(*shape), normal(*shape), var), "grad_args": (0, 1, 2)}


_GV = _gauss(unit(4, 5, lo=0.1, hi=2.0))
_GAUSS = Component(
    "losses", "GaussianNLLLoss", functional="gaussian_nll_loss",
    cases=(
        Case("mean", {}, extra=_GV, dtypes=HALF),
        Case("sum", {"reduction": "sum"}, extra=_GV),
        Case("none", {"reduction": "none"}, extra=_GV),
        Case("full", {"full": True}, extra=_GV),
        Case("eps-clamps", {"eps": 0.5, "reduction": "none"}, extra=_GV),
        Case("var-one-dim-smaller", {}, extra=_gauss(unit(4, lo=0.1, hi=2.0))),
        Case("var-broadcast-dim", {}, extra=_gauss(unit(4, 1, lo=0.1, hi=2.0))),
        Case("var-broadcast-channel", {}, extra=_gauss(unit(2, 1, 3, 3, lo=0.1, hi=2.0), (2, 4, 3, 3))),
        Case("var-float", {"reduction": "sum"}, extra=_gauss(0.7)),
        Case("unbatched", {}, extra=_gauss(unit(5, lo=0.1, hi=2.0), (5,))),
        Case("nan", {"reduction": "none"},
             extra={"inputs": pairs(normal(4, 5, nan=True), normal(4, 5), unit(4, 5, lo=0.1))}),
        Case("bad-reduction", {"reduction": "max"}, extra=_GV),
        Case("err-var-negative", {}, extra=_gauss(unit(4, 5, lo=-1.0, hi=-0.1))),
        Case("err-var-float-negative", {}, extra=_gauss(-0.5)),
        Case("err-var-size", {}, extra=_gauss(unit(3, lo=0.1, hi=2.0))),
        Case("err-var-two-dims", {}, extra=_gauss(unit(1, 1, lo=0.1, hi=2.0))),
    ),
    fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum")), "full": FuzzArg("bool"),
          "eps": FuzzArg("logfloat", 1e-8, 1.0), **_SCALE},
)



def ctc(t: int = 12, n: int = 3, c: int = 5, s: int = 4, *, il: list[int] | tuple[int, ...] | None = None,
        tl: list[int] | None = None, blank: int = 0, targets: list | None = None, form: str = "padded",
        lengths: str = "tensor", raw: bool = False, batched: bool = True, length_dtype: torch.dtype = torch.int64,
        target_dtype: torch.dtype = torch.int64) -> Maker:
    """``(log_probs, targets, input_lengths, target_lengths)`` for CTC. ``form``: ``padded`` ``(N, S)`` or
    ``concat`` (1-D); ``lengths``: ``tensor``, ``tuple`` or ``list``; ``raw``: unnormalised log_probs;
    labels are drawn from the classes other than ``blank``."""

    def make(g: Gen, dtype: torch.dtype, device: str) -> tuple:
        x = _randn(g, t, n, c, dtype=torch.float64)
        lp = (x if raw else torch.log_softmax(x, 2)).to(dtype)
        labels = [k for k in range(c) if k != blank]
        if targets is None:
            tg = torch.tensor(labels)[torch.randint(0, len(labels), (n, s), generator=g)]
        else:
            tg = torch.tensor(targets)
        ilen = list(il) if il is not None else [t - k % 3 for k in range(n)]
        tlen = list(tl) if tl is not None else [max(1, s - k) for k in range(n)]
        if form == "concat":
            tg = torch.cat([tg[k, : tlen[k]] for k in range(n)])
        tg = tg.to(target_dtype)
        if not batched:
            lp, tg = lp[:, 0], (tg[0, : tlen[0]] if form == "padded" else tg)
            if lengths == "tensor":
                return lp, tg, torch.tensor(ilen[0], dtype=length_dtype), torch.tensor(tlen[0], dtype=length_dtype)
            return lp, tg, (ilen[0],), (tlen[0],)
        if lengths == "tuple":
            return lp, tg, tuple(ilen), tuple(tlen)
        if lengths == "list":
            return lp, tg, ilen, tlen
        return lp, tg, torch.tensor(ilen, dtype=length_dtype), torch.tensor(tlen, dtype=length_dtype)

    return make


def _ctc_nan(g: Gen, dtype: torch.dtype, device: str) -> tuple:
    """A NaN in sample 0's log-probabilities (sample 1 stays finite)."""
    lp, *rest = ctc()(g, dtype, device)
    lp[3, 0, 1] = float("nan")
    return (lp, *rest)


# torch's ctc_loss has no double backward (aten raises); float32 may pass in accuracy mode (parity.tolerances)
_NO_DBL = {"double_backward": False, "accuracy": True}
_IMPOSSIBLE = [[1, 1, 1, 1], [2, 3, 2, 3], [1, 2, 3, 4]]  # needs ≥ 7 frames for sample 0 (repeats need blanks)
_CTC = Component(
    "losses", "CTCLoss", functional="ctc_loss",
    note="no double backward, like torch; labels outside [0, C) raise IndexError where torch reads out of bounds",
    cases=(
        Case("mean", {}, extra={"inputs": ctc(), **_NO_DBL}),
        Case("sum", {"reduction": "sum"}, extra={"inputs": ctc(), **_NO_DBL}),
        Case("none", {"reduction": "none"}, extra={"inputs": ctc(), **_NO_DBL}),
        Case("concatenated", {"reduction": "none"}, extra={"inputs": ctc(form="concat"), **_NO_DBL}),
        Case("tuple-lengths", {}, extra={"inputs": ctc(lengths="tuple"), **_NO_DBL}),
        Case("list-lengths-concat", {"reduction": "sum"},
             extra={"inputs": ctc(lengths="list", form="concat"), **_NO_DBL}),
        Case("int32", {}, extra={"inputs": ctc(length_dtype=torch.int32, target_dtype=torch.int32), **_NO_DBL}),
        Case("blank-last", {"blank": 4, "reduction": "none"}, extra={"inputs": ctc(blank=4), **_NO_DBL}),
        Case("blank-middle", {"blank": 2}, extra={"inputs": ctc(blank=2, form="concat"), **_NO_DBL}),
        Case("repeated-labels", {"reduction": "none"},
             extra={"inputs": ctc(targets=[[1, 1, 2, 2], [3, 3, 3, 1], [4, 1, 4, 1]]), **_NO_DBL}),
        Case("labels-equal-blank", {"reduction": "none", "blank": 2},  # accepted by torch; its quirks followed
             extra={"inputs": ctc(targets=[[1, 2, 3, 4], [2, 2, 1, 3], [3, 1, 2, 0]], tl=[4, 3, 3]), **_NO_DBL}),
        Case("unnormalised-input", {"reduction": "none"}, extra={"inputs": ctc(raw=True), **_NO_DBL}),
        Case("benchmark-size", {"reduction": "none"},
             extra={"inputs": ctc(t=100, n=16, c=32, s=30, il=[100 - k % 7 for k in range(16)],
                                  tl=[30 - k for k in range(16)]), **_NO_DBL}),
        Case("long", {}, extra={"inputs": ctc(t=40, n=4, c=8, s=12, il=[40, 37, 30, 25], tl=[12, 10, 8, 3]),
                                **_NO_DBL}),
        Case("impossible-inf", {"reduction": "none"},
             extra={"inputs": ctc(targets=_IMPOSSIBLE, il=[6, 12, 12]), **_NO_DBL}),
        Case("impossible-zero_infinity", {"reduction": "none", "zero_infinity": True},
             extra={"inputs": ctc(targets=_IMPOSSIBLE, il=[6, 12, 12]), **_NO_DBL}),
        Case("impossible-zero_infinity-mean", {"zero_infinity": True},
             extra={"inputs": ctc(targets=_IMPOSSIBLE, il=[3, 12, 12]), **_NO_DBL}),
        Case("zero_infinity-possible", {"zero_infinity": True, "reduction": "sum"},
             extra={"inputs": ctc(), **_NO_DBL}),
        Case("empty-target", {"reduction": "none"}, extra={"inputs": ctc(tl=[0, 2, 4]), **_NO_DBL}),
        Case("empty-target-mean", {}, extra={"inputs": ctc(tl=[0, 2, 4], form="concat"), **_NO_DBL}),
        Case("zero-frames", {"reduction": "none"}, extra={"inputs": ctc(il=[0, 0, 12], tl=[0, 2, 4]), **_NO_DBL}),
        Case("unbatched", {"reduction": "none"}, extra={"inputs": ctc(batched=False), **_NO_DBL}),
        Case("unbatched-tuple-mean", {}, extra={"inputs": ctc(batched=False, lengths="tuple"), **_NO_DBL}),
        # float64 only: with log-probabilities of ~-1e4 the posteriors are exp(α + β - lp + nll) of terms ~1e5,
        # whose float32 ulp (~4e-3) makes any two summation orders (ours, torch's) differ by ~0.4%.
        Case("extreme", {"reduction": "none"}, dtypes=F64,
             extra={"inputs": lambda g, dt, dev: (torch.log_softmax(_randn(g, 8, 2, 4, dtype=dt, scale=1e4), 2),
                                                  torch.tensor([[1, 2], [3, 3]]), torch.tensor([8, 8]),
                                                  torch.tensor([2, 2])), **_NO_DBL}),
        Case("nan", {"reduction": "none"}, extra={"inputs": _ctc_nan, **_NO_DBL}),
        Case("bad-reduction", {"reduction": "max"}, extra={"inputs": ctc(), **_NO_DBL}),
        Case("err-input-length-too-long", {}, extra={"inputs": ctc(il=[13, 12, 12]), **_NO_DBL}),
        Case("err-input-length-negative", {}, extra={"inputs": ctc(il=[-1, 12, 12]), **_NO_DBL}),
        Case("err-target-length-negative", {}, extra={"inputs": ctc(tl=[-1, 2, 2]), **_NO_DBL}),
        Case("err-target-length-too-long", {}, extra={"inputs": ctc(tl=[5, 2, 2]), **_NO_DBL}),
        Case("err-concat-length-mismatch", {},
             extra={"inputs": lambda g, dt, dev: ctc(form="concat")(g, dt, dev)[:3] + (torch.tensor([4, 4, 4]),),
                    **_NO_DBL}),
        Case("err-blank-out-of-range", {"blank": 5}, extra={"inputs": ctc(), **_NO_DBL}),
        Case("err-blank-negative", {"blank": -1}, extra={"inputs": ctc(), **_NO_DBL}),
        Case("err-float-lengths", {}, extra={"inputs": ctc(length_dtype=torch.float32), **_NO_DBL}),
        Case("err-lengths-count", {}, extra={"inputs": ctc(il=[12, 12]), **_NO_DBL}),
        Case("err-4d-log_probs", {},
             extra={"inputs": lambda g, dt, dev: (_randn(g, 1, 4, 2, 3, dtype=dt), torch.ones(2, 1, dtype=torch.long),
                                                  torch.tensor([4, 4]), torch.tensor([1, 1])), **_NO_DBL}),
        Case("err-half", {}, extra={"inputs": ctc(), **_NO_DBL}, dtypes=(torch.float16, torch.bfloat16)),
    ),
    fuzz={"reduction": FuzzArg("choice", options=("none", "mean", "sum")), "zero_infinity": FuzzArg("bool"),
          "blank": FuzzArg("int", 0, 4), **_SCALE},
    fuzz_base=Case("fuzz", {}, extra={"inputs": ctc(targets=[[1, 2, 3, 4]] * 3), **_NO_DBL}),
)

COMPONENTS: list[Component] = [_NLL, _CE, _BCE, _BCEL, _KL, _POIS, _GAUSS, _CTC]
