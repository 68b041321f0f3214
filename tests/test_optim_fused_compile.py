"""``fused=True`` under an outer ``torch.compile`` (issue 25): every optimizer that accepts it, with every flag
combination the catalogue lists for it, under ``torch.compile(opt.step)`` and inside a compiled training step
(forward, backward and step in one compiled function), against torch's *eager* run (torch's fused optimizer where
torch has one, else its for-loop). Allowed: :data:`~optimlab.parity.tolerances.COMPILED_FACTOR` times torch's own
compiled drift on the same run, never less than :func:`~optimlab.parity.tolerances.compiled_floor` (1e-5 in
float32), as :mod:`optimlab.parity.optim_compiled` rules; torch's compiled run is only made where ours exceeds the
floor. No graph may be added after the warm-up steps.

The flag combinations are data: every catalogued configuration of the optimizer that torch's own optimizer
accepts and steps (no extras besides the model), each as one parameter group of a single optimizer (one small
``Linear`` each), so that one compile covers all of them.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch import nn

import optimlab.optim as oo
from optimlab.catalog import components, get
from optimlab.parity.optim_compiled import WARMUP_STEPS, GraphCounter
from optimlab.parity.tolerances import COMPILED_FACTOR, compiled_floor

NAMES = ["SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "ASGD", "NAdam", "RAdam", "RMSprop", "Rprop",
         "Adafactor", "Muon"]
TORCH_FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}
STEPS = 3
#: in the default run: the issue's case (Adam: amsgrad with weight decay) and one optimizer with 0-d state and
#: tensor-step math (NAdam). The others compile 40-90 s each on 2 cores with all their groups (Inductor's time
#: grows with the groups): marked slow, they still run in CI's full suite, which deselects nothing.
FAST = {"Adam", "NAdam"}


def combos(name: str) -> list[dict[str, Any]]:
    """The catalogue's flag combinations of ``name`` that torch's optimizer takes (constructs and steps)."""
    out: list[dict[str, Any]] = []
    for case in get("optim", name).cases:
        if set(case.extra) - {"model"} or any(case.kwargs.get(k) for k in ("foreach", "capturable", "differentiable")):
            continue
        kw = {k: v for k, v in case.kwargs.items() if k not in ("foreach", "fused")}
        p = nn.Parameter(torch.ones(2, 2))
        p.grad = torch.ones(2, 2)
        try:
            getattr(torch.optim, name)([p], **kw).step()
        except (ValueError, TypeError, RuntimeError):  # an invalid-hyperparameter case
            continue
        if kw not in out:
            out.append(kw)
    return out


def _build(ns: Any, name: str, fused: bool) -> tuple[nn.ModuleList, torch.optim.Optimizer]:
    torch.manual_seed(0)
    # torch's Adagrad fills every accumulator from its constructor's initial_accumulator_value, not the group's
    # (optimlab's takes the group's): that combination goes first, so the constructor gets it
    kws = sorted(combos(name), key=lambda kw: "initial_accumulator_value" not in kw)
    layers = nn.ModuleList(nn.Linear(6, 5, bias=name != "Muon") for _ in kws)  # Muon: 2-D parameters only
    extra = {"fused": True} if fused else {}
    groups = [{"params": list(layer.parameters()), **kw, **extra} for layer, kw in zip(layers, kws, strict=True)]
    return layers, getattr(ns, name)(groups, **kws[0], **extra)


X = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
Y = torch.randn(8, 5, generator=torch.Generator().manual_seed(2))


def _loss(layers: nn.ModuleList) -> torch.Tensor:
    return sum(((torch.tanh(layer(X)) - Y) ** 2).mean() for layer in layers)  # type: ignore[return-value]


def _run(ns: Any, name: str, mode: str) -> tuple[nn.ModuleList, torch.optim.Optimizer, list[int]]:
    """``STEPS`` steps: "eager", "step" (``torch.compile(opt.step)``) or "train" (the whole training step
    compiled); the graphs compiled after each step."""
    torch._dynamo.reset()
    layers, opt = _build(ns, name, ns is oo or name in TORCH_FUSED)
    counter = GraphCounter()
    ours = ns is oo

    def train(step: Any) -> None:
        opt.zero_grad()
        _loss(layers).backward()
        step()

    if mode == "step":
        step = torch.compile(opt.step, backend=counter, fullgraph=ours)
        fn = lambda: train(step)  # noqa: E731
    elif mode == "train":
        fn = torch.compile(lambda: train(opt.step), backend=counter)
    else:
        fn = lambda: train(opt.step)  # noqa: E731
    graphs = []
    for _ in range(STEPS):
        fn()
        graphs.append(counter.graphs)
    return layers, opt, graphs


def _error(a: tuple[nn.ModuleList, torch.optim.Optimizer], b: tuple[nn.ModuleList, torch.optim.Optimizer]) -> float:
    """Largest absolute difference over parameters and every floating state tensor."""
    (l_a, o_a), (l_b, o_b) = a, b
    pairs = list(zip(l_a.parameters(), l_b.parameters(), strict=True))
    s_a, s_b = o_a.state_dict()["state"], o_b.state_dict()["state"]
    for k, st in s_b.items():
        pairs += [(s_a[k][key], v) for key, v in st.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    err = 0.0
    for x, y in pairs:
        if not bool(x.isfinite().all()):
            return float("inf")
        err = max(err, (x.detach().double() - y.detach().double()).abs().max().item())
    return err


def _check(name: str, mode: str) -> None:
    ref = _run(torch.optim, name, "eager")
    layers, opt, graphs = _run(oo, name, mode)
    assert graphs[-1] == graphs[WARMUP_STEPS - 1], f"graphs after each step: {graphs}"
    err = _error((layers, opt), ref[:2])
    if err > compiled_floor(torch.float32):
        own = _error(_run(torch.optim, name, mode)[:2], ref[:2])
        assert err <= COMPILED_FACTOR * own, f"{err:.2e} from torch's eager run; torch's compiled: {own:.2e}"


def _marks(name: str) -> Any:
    return pytest.param(name, marks=() if name in FAST else pytest.mark.slow)


@pytest.mark.parametrize("name", [_marks(n) for n in NAMES])
def test_fused_under_compiled_step(name):
    _check(name, "step")


@pytest.mark.parametrize("name", [_marks(n) for n in NAMES])
def test_fused_inside_compiled_training_step(name):
    _check(name, "train")


def test_every_fused_optimizer_and_combination_is_covered():
    """Every catalogued optimizer whose constructor takes ``fused`` is here, each with several combinations."""
    takes_fused = {c.name for c in components("optim") if "fused" in inspect.signature(getattr(oo, c.name)).parameters}
    assert set(NAMES) == takes_fused
    assert all(len(combos(n)) >= 3 for n in NAMES)
