"""Optimizers under ``torch.compile`` (issue 9): every optimizer × {foreach=False, foreach=True, fused where
torch has it}, 6 steps of ``torch.compile(opt.step)`` (inductor) on the parity engine's small MLP, against
torch's *eager* run, within the compiled rule of :mod:`optimlab.parity.tolerances` (3x torch's own compiled
drift, at least 1e-5 in float32). Each case also checks that no graph is added after the warm-up steps
(no per-step recompilation) and compiles optimlab's step with ``fullgraph=True``, so any graph break,
e.g. a ``.item()`` host read, fails. This is also the CI subset of ``python -m optimlab parity --compile``.
"""

from __future__ import annotations

import os

import pytest
import torch

import optimlab.optim as oo
from optimlab import parity
from optimlab.catalog import components, get
from optimlab.parity.optim_compiled import GraphCounter, max_error
from optimlab.parity.tolerances import COMPILED_FACTOR, compiled_floor

# (optimizer, catalogued case): flag-rich configs, each on both paths, plus torch's fused ones.
_FLAGGED = {
    "Adam": "amsgrad-maximize-wd", "AdamW": "amsgrad-maximize-wd", "NAdam": "decoupled-maximize",
    "RAdam": "maximize-wd", "Adamax": "maximize-wd", "Adagrad": "maximize-wd-decay", "Adadelta": "maximize-wd",
    "RMSprop": "centered-momentum-wd-maximize", "Rprop": "maximize-etas", "ASGD": "lambd-alpha-maximize",
    "SGD": "nesterov-wd-maximize", "Adafactor": "wd-maximize-d",
}
#: CI runs foreach=True for these (their multi-tensor branches differ most from the per-tensor ones: bias
#: corrections, mu products, η/μ state); OPTIMLAB_FULL_COMPILE=1 runs it for every optimizer (~2x the time),
#: as ``python -m optimlab parity --compile`` does over the whole catalogue.
_FOREACH_IN_CI = {"Adam", "NAdam", "RAdam", "ASGD", "SGD"}
_FULL = os.environ.get("OPTIMLAB_FULL_COMPILE") == "1"
CASES = [(name, f"{flags}/foreach={f}") for name, flags in _FLAGGED.items() for f in (False, True)
         if not f or _FULL or name in _FOREACH_IN_CI]
CASES += [("Adam", "fused"), ("AdamW", "fused"), ("SGD", "fused-nesterov-wd-maximize"), ("Adagrad", "fused"),
          ("Adam", "lr-tensor"), ("Muon", "default"), ("LBFGS", "default"), ("SparseAdam", "default")]
#: torch runs these two steps eagerly under torch.compile (Dynamo does not trace them); so do we
EAGER_UNDER_COMPILE = {"LBFGS", "SparseAdam"}


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_compiled_step_matches_torch_eager(name, case):
    comp = get("optim", name)
    res = parity.run_case(comp, comp.case(case), torch.float32, compile=True,
                          fullgraph=name not in EAGER_UNDER_COMPILE)
    assert res.passed, res.message
    assert res.max_abs < float("inf")


def test_every_optimizer_is_covered():
    assert {n for n, _ in CASES} == {c.name for c in components("optim")}


def _train(ns, name: str, compiled: bool, steps: int = 6) -> tuple[torch.Tensor, list[int]]:
    """Forward, backward and step in one (compiled) function, as a compiled training loop is written;
    the parameters after ``steps`` steps and the number of graphs after each step."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = getattr(ns, name)(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 8, generator=g), torch.randn(32, 4, generator=g)

    def train_step() -> torch.Tensor:
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    counter = GraphCounter()
    fn = torch.compile(train_step, backend=counter) if compiled else train_step
    graphs = []
    for _ in range(steps):
        fn()
        graphs.append(counter.graphs)
    return torch.cat([p.detach().flatten() for p in model.parameters()]), graphs


@pytest.mark.parametrize("name", ["AdamW"])  # one is enough: the step is the same code as above
def test_inside_a_compiled_training_step(name):
    """The step inside a compiled train step (forward + backward + step): as close to torch's eager run as
    torch's own compiled train step, and no graphs added after the first two steps."""
    ref, _ = _train(torch.optim, name, False)
    ours, graphs = _train(oo, name, True)
    assert graphs[-1] == graphs[1], graphs
    err = (ours - ref).abs().max().item()
    if err > compiled_floor(torch.float32):
        own = (_train(torch.optim, name, True)[0] - ref).abs().max().item()
        assert err <= COMPILED_FACTOR * own, (err, own)


def test_engine_reports_a_wrong_compiled_step():
    """The compiled dimension fails a step that is wrong only under compile (here: lr 1% high while tracing)."""

    class CompiledOffSGD(oo.SGD):
        def step(self, closure=None):
            if torch.compiler.is_compiling():
                for group in self.param_groups:
                    group["lr"] = 0.0505
            return super().step(closure)

    comp = get("optim", "SGD")
    res = parity.run_case(comp, comp.case("plain/foreach=False"), torch.float32, compile=True,
                          ours_cls=CompiledOffSGD)
    assert not res.passed and res.first_bad_step is not None


def test_cli_parity_compile_flag(monkeypatch):
    """``python -m optimlab parity --compile`` plans without schedulers and passes ``compile=True`` on."""
    from optimlab import cli

    seen = []

    def fake_run_case(comp, case, dtype, device, steps, **kw):
        seen.append((comp.family, kw))
        return parity.results.CaseResult(comp.family, comp.name, case.name, "float32", device, True)

    monkeypatch.setattr(parity, "run_case", fake_run_case)
    assert cli.main(["parity", "--compile", "--only", "SGD,StepLR,MSELoss", "--dtype", "float32"]) == 0
    assert seen and all(kw == {"compile": True} for _, kw in seen)
    assert {f for f, _ in seen} == {"optim", "losses"}
    seen.clear()
    assert cli.main(["parity", "--only", "SGD", "--dtype", "float32"]) == 0
    assert seen and all(kw == {"compile": False} for _, kw in seen)


def test_max_error_sees_state():
    """The compiled comparison covers optimizer state, not only parameters."""
    p_o, p_r = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    m_o, m_r = torch.nn.ParameterList([p_o]), torch.nn.ParameterList([p_r])
    o, r = oo.Adam([p_o]), torch.optim.Adam([p_r])
    for p, opt in ((p_o, o), (p_r, r)):
        p.grad = torch.ones(3)
        opt.step()
    assert max_error(o, r, m_o, m_r) == 0.0
    o.state[p_o]["exp_avg"].add_(0.5)
    assert max_error(o, r, m_o, m_r) == pytest.approx(0.5)
