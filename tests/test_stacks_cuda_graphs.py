"""``capturable=True`` optimizers inside a CUDA graph: forward, backward and ``step`` captured once with
``torch.cuda.graph`` (after warm-up steps on a side stream, as torch's docs prescribe) and replayed on
new data; optimlab's run equals torch's run captured and replayed the same way."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optimlab.optim as oo
from optimlab.parity.optim import compare_optimizers

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device; this machine has none (runs on a GPU)")

CAPTURABLE = {
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05},
    "AdamW": {"lr": 0.01, "amsgrad": True},
    "Adamax": {"lr": 0.01, "weight_decay": 0.05},
    "NAdam": {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.05},
    "RAdam": {"lr": 0.01, "weight_decay": 0.05},
    "Adadelta": {"lr": 0.5, "weight_decay": 0.05},
    "RMSprop": {"lr": 0.01, "centered": True, "momentum": 0.5},
    "Rprop": {"lr": 0.01, "etas": (0.4, 1.3)},
    "ASGD": {"lr": 0.05, "t0": 3.0},
}
CASES = [(n, {"foreach": f}) for n in CAPTURABLE for f in (False, True)]
CASES += [(n, {"fused": True}) for n in ("Adam", "AdamW")]
WARMUP, REPLAYS = 3, 8


def _graphed_run(cls: type, kw: dict) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 4)).cuda()
    opt = cls(model.parameters(), capturable=True, **kw)
    x, y = torch.zeros(16, 8, device="cuda"), torch.zeros(16, 4, device="cuda")

    def batch(i: int) -> None:
        g = torch.Generator().manual_seed(i)
        x.copy_(torch.randn(16, 8, generator=g))
        y.copy_(torch.randn(16, 4, generator=g))

    def step() -> None:
        ((model(x) - y) ** 2).mean().backward()
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(WARMUP):
            batch(i)
            opt.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    for i in range(WARMUP, WARMUP + REPLAYS):
        batch(i)
        graph.replay()
    torch.cuda.synchronize()
    return model, opt


@pytest.mark.cuda
@pytest.mark.parametrize("name,path", CASES, ids=[f"{n}-{next(iter(p))}={next(iter(p.values()))}" for n, p in CASES])
def test_capturable_step_in_cuda_graph(name, path):
    kw = {**CAPTURABLE[name], **path}
    m_o, o_o = _graphed_run(getattr(oo, name), kw)
    m_r, o_r = _graphed_run(getattr(torch.optim, name), kw)
    assert int(o_o.state_dict()["state"][0]["step"]) == int(o_r.state_dict()["state"][0]["step"]) == WARMUP + REPLAYS
    diff = compare_optimizers(o_o, o_r, m_o, m_r, bitwise=False)
    assert diff.ok, diff.what
