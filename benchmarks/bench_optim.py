"""Per-step time of optimlab's optimizers against torch's on the GPT-2-mini parameter set.

The suite itself is ``benchmarks/optim_suite.py`` (every optimizer; torch's for-loop, foreach and
fused paths, optimlab's default and fused paths and the memory floor, interleaved). Run it as
``python -m optimlab bench`` (writes ``benchmarks/RESULTS.md`` and the chart) or as this script
(``python benchmarks/bench_optim.py [threads]``, table only), or under pytest-benchmark
(``pytest benchmarks/bench_optim.py --benchmark-enable``), one step per path and side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import optim_suite  # noqa: E402

import optimlab.optim as oo  # noqa: E402


def cases() -> list[tuple[str, str]]:
    out = []
    for name, _, _ in optim_suite.ALGOS:
        out += [(name, p) for p in optim_suite.torch_paths(name)]
        out += [(name, p) for p in optim_suite.OURS_PATHS]
    return out


@pytest.mark.parametrize("algo,path", cases(), ids=[f"{a}-{p.replace(' ', '-')}" for a, p in cases()])
def test_step(benchmark, algo, path):
    kw = dict(next(k for n, k, _ in optim_suite.ALGOS if n == algo))
    extra = {**optim_suite.torch_paths(algo), **optim_suite.OURS_PATHS}[path]
    ns = torch.optim if path.startswith("torch") else oo
    shapes = optim_suite.shapes_for(algo, optim_suite.gpt2_mini_shapes())
    opt = getattr(ns, algo)(optim_suite.make_params(shapes, "cpu"), **kw, **extra)
    opt.step()  # state (and the fused compile) outside the timed region
    benchmark.group = algo
    benchmark.pedantic(opt.step, rounds=5, iterations=1, warmup_rounds=1)


def main() -> None:
    if len(sys.argv) > 1:
        torch.set_num_threads(int(sys.argv[1]))
    rows = optim_suite.run("cpu")
    print(" | ".join(optim_suite.HEADER))
    for cells in optim_suite.table_rows(rows):
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
