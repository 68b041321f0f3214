"""linear_cross_entropy: forward+backward time and memory, optimlab's chunked path against torch's
``linear_cross_entropy`` (its reference path, ``options=None``, and its chunked path,
``options=LinearCrossEntropyOptions()``) and against ``cross_entropy(x @ W.T, y)``.

* time: seconds per ``loss.backward()`` step (gradients of x and W), the variants interleaved in each round (the
  order rotated from round to round); ratios ours/other are taken per round and quoted as min–max over rounds
  (the machine is shared: a slow spell hits one round, not one variant);
* held: bytes autograd saves for backward (``optimlab.parity.memory.saved_bytes``, inputs excluded);
* peak: peak bytes of tensor storages alive during the step beyond the inputs, counted op by op with a
  ``TorchDispatchMode`` (each storage counted when an op first returns it, released when its last tensor dies):
  an allocator-free count of what the step itself creates, gradients included. CPU has no allocator statistics;
  this sees every tensor an ATen op returns (not a kernel's internal scratch).

Run ``python benchmarks/bench_linear_ce.py [--n 2048 4096 8192] [--c 32000] [--d 512] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import optimlab
from optimlab.parity.memory import saved_bytes


class PeakStorage(TorchDispatchMode):
    """Peak bytes of live storages returned by ops while active (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}
        self.cur = self.peak = 0

    def _drop(self, ptr: int) -> None:
        entry = self.live[ptr]
        entry[0] -= 1
        if entry[0] == 0:
            del self.live[ptr]
            self.cur -= entry[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                ptr = st.data_ptr()
                if ptr == 0:
                    continue
                if ptr in self.live:
                    self.live[ptr][0] += 1
                else:
                    self.live[ptr] = [1, st.nbytes()]
                    self.cur += st.nbytes()
                    self.peak = max(self.peak, self.cur)
                weakref.finalize(t, self._drop, ptr)
        return out


def variants() -> dict[str, Callable]:
    F = torch.nn.functional
    return {
        "optimlab": lambda x, w, t: optimlab.nn.functional.linear_cross_entropy(x, w, t),
        "torch-lce": lambda x, w, t: F.linear_cross_entropy(x, w, t),
        "torch-lce-chunked": lambda x, w, t: F.linear_cross_entropy(x, w, t,
                                                                    options=torch.nn.LinearCrossEntropyOptions()),
        "ce(x@W.T)": lambda x, w, t: F.cross_entropy(x @ w.t(), t),
    }


def step(fn: Callable, x: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> None:
    torch.autograd.grad(fn(x, w, t), (x, w))


def run(n: int, c: int, d: int, repeat: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g).requires_grad_()
    w = (torch.randn(c, d, generator=g) * d ** -0.5).requires_grad_()
    t = torch.randint(0, c, (n,), generator=g)
    vs = variants()
    names = list(vs)
    mem = {}
    for name in names:
        m = PeakStorage()
        with m:
            step(vs[name], x, w, t)
        mem[name] = (saved_bytes(vs[name], x, w, t), m.peak)
    for name in names:  # warm-up
        step(vs[name], x, w, t)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            step(vs[name], x, w, t)
            times[name].append(time.perf_counter() - t0)
    mib = 2 ** 20
    print(f"\nN={n} C={c} D={d} (threads={torch.get_num_threads()}, {repeat} rounds)")
    print("| variant | time s (median) | optimlab / it, per round (min–max) | held MiB | peak MiB |")
    print("|---|---|---|---|---|")
    for name in names:
        ratios = [a / b for a, b in zip(times["optimlab"], times[name], strict=True)]
        print(f"| {name} | {statistics.median(times[name]):.3f} | {min(ratios):.2f}–{max(ratios):.2f} | "
              f"{mem[name][0] / mib:.1f} | {mem[name][1] / mib:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[2048, 4096, 8192])
    p.add_argument("--c", type=int, default=32000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    for n in a.n:
        run(n, a.c, a.d, a.repeat)


if __name__ == "__main__":
    main()
