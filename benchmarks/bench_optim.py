"""Per-step time of optimlab's optimizers against torch's, on a realistic parameter list.

200 tensors holding ~10M float32 elements in all (CPU), gradients fixed. Paths: the per-tensor
for-loop (``foreach=False``), the multi-tensor path (``foreach=True``) and ``fused=True`` where torch
has it. Run as pytest-benchmark (``pytest benchmarks/bench_optim.py --benchmark-enable``) or as a
script (``python benchmarks/bench_optim.py``), which times both sides interleaved and prints the ratio
ours/torch per path (the figures quoted in docs/optim.md).
"""

from __future__ import annotations

import statistics
import sys
import time

import pytest
import torch

import optimlab.optim as oo

N_TENSORS = 200
TOTAL = 10_000_000
ALGOS = {
    "Adam": {"lr": 1e-3},
    "AdamW": {"lr": 1e-3, "amsgrad": True},
    "SGD": {"lr": 1e-2, "momentum": 0.9, "nesterov": True},
    "RMSprop": {"lr": 1e-2, "centered": True, "momentum": 0.9},
    "Adagrad": {"lr": 1e-2},
    "NAdam": {"lr": 1e-3},
    "RAdam": {"lr": 1e-3},
}
FUSED = {"Adam", "AdamW", "SGD", "Adagrad"}
PATHS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def make_params(n: int = N_TENSORS, total: int = TOTAL, seed: int = 0) -> list[torch.Tensor]:
    """``n`` parameters of mixed sizes summing to about ``total`` elements, with gradients set."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 100, (n,), generator=g).double()
    sizes = (sizes / sizes.sum() * total).long().clamp_min(1)
    params = []
    for s in sizes.tolist():
        p = torch.nn.Parameter(torch.randn(s, generator=g))
        p.grad = torch.randn(s, generator=g) * 1e-2
        params.append(p)
    return params


def make(ns, algo: str, path: str) -> torch.optim.Optimizer:
    opt = getattr(ns, algo)(make_params(), **ALGOS[algo], **PATHS[path])
    opt.step()  # create the state outside the timed region
    return opt


def cases() -> list[tuple[str, str]]:
    return [(a, p) for a in ALGOS for p in PATHS if p != "fused" or a in FUSED]


@pytest.mark.parametrize("side", ["optimlab", "torch"])
@pytest.mark.parametrize("algo,path", cases(), ids=[f"{a}-{p}" for a, p in cases()])
def test_step(benchmark, algo, path, side):
    opt = make(oo if side == "optimlab" else torch.optim, algo, path)
    benchmark.group = f"{algo}-{path}"
    benchmark.pedantic(opt.step, rounds=5, iterations=1, warmup_rounds=1)


def side_by_side(algo: str, path: str, reps: int = 7) -> tuple[float, float]:
    """Median seconds per step (ours, torch's), timed alternately so both see the same machine load."""
    ours, ref = make(oo, algo, path), make(torch.optim, algo, path)
    t_o, t_r = [], []
    for _ in range(reps):
        for opt, acc in ((ours, t_o), (ref, t_r)):
            t0 = time.perf_counter()
            opt.step()
            acc.append(time.perf_counter() - t0)
    return statistics.median(t_o), statistics.median(t_r)


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
    print(f"{N_TENSORS} tensors, {TOTAL / 1e6:.0f}M float32 elements, {torch.get_num_threads()} threads")
    print(f"{'optimizer':10} {'path':9} {'optimlab ms':>12} {'torch ms':>9} {'ratio':>6}")
    for algo, path in cases():
        t_o, t_r = side_by_side(algo, path)
        print(f"{algo:10} {path:9} {t_o * 1e3:12.1f} {t_r * 1e3:9.1f} {t_o / t_r:6.2f}")


if __name__ == "__main__":
    main()
