"""The optimizer benchmark suite behind ``python -m optimlab bench``.

For every elementwise optimizer, one interleaved run times a step of: torch's for-loop
(``foreach=False``), torch's multi-tensor path (``foreach=True``), torch's fused kernel where torch
has one, optimlab's default (``fused=None, foreach=None``) and optimlab's ``fused=True``, on the
GPT-2-mini parameter set (52 float32 tensors, 17.07M elements: 4 layers, width 256, 50257-token
vocabulary, 4096 positions), plus the **floor**: the bytes the update must read and write (parameter
read+write, gradient read, each state tensor read+write) at the bandwidth of an in-place streaming
kernel ``x += a·y`` measured in the same rounds. Rounds go path after path, so every path sees the
same machine load; ratios are medians of per-round (paired) ratios.

Outputs: a rich table, ``benchmarks/RESULTS.md`` and ``benchmarks/optim_ratios.png``.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import optimlab.optim as oo

HERE = Path(__file__).resolve().parent

#: (name, constructor kwargs, state tensors the update reads and writes per parameter)
ALGOS: list[tuple[str, dict[str, Any], int]] = [
    ("SGD", {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}, 1),
    ("Adam", {"lr": 1e-3}, 2),
    ("AdamW", {"lr": 1e-3}, 2),
    ("Adagrad", {"lr": 1e-2}, 1),
    ("Adadelta", {}, 2),
    ("Adamax", {}, 2),
    ("ASGD", {}, 1),
    ("NAdam", {}, 2),
    ("RAdam", {}, 2),
    ("RMSprop", {}, 1),
    ("Rprop", {}, 2),
    ("Adafactor", {}, 0),  # factored second moments: row and column vectors, no parameter-sized state
    ("Muon", {}, 1),  # the hidden weight matrices only (see hidden_matrices); floor: its elementwise streams
]
TORCH_FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}
#: torch optimizers with one path only (a for-loop; no ``foreach``/``fused`` flags)
TORCH_LOOP_ONLY = {"Muon"}
TORCH_PATHS = {"torch for-loop": {"foreach": False}, "torch foreach": {"foreach": True},
               "torch fused": {"fused": True}}
OURS_PATHS = {"optimlab default": {}, "optimlab fused": {"fused": True}}
#: a second ``fused=True`` optimizer on its own copy of the set, timed like the others: the A/A ratio
#: (twin / fused) shows how far two identical steps differ within the run (where their buffers landed
#: in memory, mostly), the resolution of every other ratio
TWIN = "optimlab fused (twin)"
#: a third ``fused=True`` optimizer whose every numeric hyperparameter changes before each of its steps (as
#: OneCycleLR's momentum cycling or an annealed weight decay do; the change itself is not timed): the
#: scheduled / fused ratio shows what a schedule costs the fused step (no recompiles; the kernels' inputs)
SCHEDULED = "optimlab fused (scheduled)"


def reschedule(opt: torch.optim.Optimizer, r: int) -> None:
    """Change every float hyperparameter of every group (tuples elementwise) by a relative 1e-4, in
    alternating directions, keeping each in its range and zero at zero."""
    f = 1.0 - 1e-4 if r % 2 else 1.0 + 1e-4 * 0.5
    for group in opt.param_groups:
        for k, v in group.items():
            if type(v) is float:
                group[k] = v * f
            elif isinstance(v, tuple) and all(type(x) in (float, type(None)) for x in v):
                group[k] = tuple(None if x is None else x * f for x in v)


def torch_paths(name: str) -> dict[str, dict[str, Any]]:
    """torch's paths for optimizer ``name``: path -> the constructor flags that select it."""
    if name in TORCH_LOOP_ONLY:
        return {"torch for-loop": {}}
    return {p: kw for p, kw in TORCH_PATHS.items() if p != "torch fused" or name in TORCH_FUSED}


def hidden_matrices(shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The 2-D shapes of aspect ratio ≤ 4: a model's hidden weight matrices, what Muon is for (the
    embeddings, 50257×256 and 4096×256 in the GPT-2-mini set, go to AdamW with the 1-D parameters)."""
    return [s for s in shapes if len(s) == 2 and max(s) <= 4 * min(s)]


def shapes_for(name: str, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The parameter shapes optimizer ``name`` is timed on."""
    return hidden_matrices(shapes) if name == "Muon" else shapes


def gpt2_mini_shapes(layers: int = 4, width: int = 256, vocab: int = 50257,
                     positions: int = 4096) -> list[tuple[int, ...]]:
    """Parameter shapes of a GPT-2-style model: embeddings, per layer two norms, attention and MLP
    weights and biases, a final norm (52 tensors at the defaults)."""
    d = width
    shapes: list[tuple[int, ...]] = [(vocab, d), (positions, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    return shapes + [(d,), (d,)]


def make_params(shapes: list[tuple[int, ...]], device: str, seed: int = 0) -> list[torch.nn.Parameter]:
    """Parameters of ``shapes`` with fixed gradients (N(0, 1e-4)) set."""
    g = torch.Generator().manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.nn.Parameter(torch.randn(s, generator=g).to(device))
        p.grad = (torch.randn(s, generator=g) * 1e-2).to(device)
        params.append(p)
    return params


@dataclass
class Row:
    """One optimizer's timings: per path, the seconds of each round (and of the first step)."""

    name: str
    streams: int
    times: dict[str, list[float]] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    floor: list[float] = field(default_factory=list)

    def median(self, path: str) -> float:
        return statistics.median(self.times[path])

    @property
    def torch_best(self) -> str:
        return min((p for p in self.times if p.startswith("torch")), key=self.median)

    def paired(self, a: str, b: str | None = None) -> float:
        """Median over rounds of time(a) / time(b) (b: the floor when None)."""
        other = self.floor if b is None else self.times[b]
        return statistics.median(x / y for x, y in zip(self.times[a], other, strict=True))


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def run(device: str = "cpu", rounds: int = 15, warmup: int = 3, algos: list[str] | None = None,
        progress: Any = None, shapes: list[tuple[int, ...]] | None = None) -> list[Row]:
    """Time every optimizer's paths and floor, interleaved, one optimizer at a time (memory); the order
    of the paths rotates by one each round (a fixed order gave each path the same predecessor, whose
    cache and allocator state it inherited every round)."""
    sync = _sync(device)
    shapes = gpt2_mini_shapes() if shapes is None else shapes
    rows = []
    todo = [a for a in ALGOS if algos is None or a[0] in algos]
    task = progress.add_task("optimizers", total=len(todo) * rounds) if progress is not None else None
    for name, kw, nstate in todo:
        row = Row(name, streams=3 + 2 * nstate)
        own = shapes_for(name, shapes)
        n = sum(math.prod(s) for s in own)
        opts: dict[str, torch.optim.Optimizer] = {}
        for path, extra in torch_paths(name).items():
            opts[path] = getattr(torch.optim, name)(make_params(own, device), **kw, **extra)
        for path, extra in {**OURS_PATHS, TWIN: OURS_PATHS["optimlab fused"],
                            SCHEDULED: OURS_PATHS["optimlab fused"]}.items():
            opts[path] = getattr(oo, name)(make_params(own, device), **kw, **extra)
        # the floor: x += a*y streams 3 buffers; sized so that it moves the bytes of this update
        m = max(1, n * row.streams // 3)
        x, y = torch.zeros(m, device=device), torch.ones(m, device=device)
        for path, opt in opts.items():
            sync()
            t0 = time.perf_counter()
            opt.step()
            sync()
            row.first[path] = time.perf_counter() - t0
            for _ in range(warmup - 1):
                opt.step()
        order: list[tuple[str, Any]] = [*opts.items(), ("floor", None)]
        for r in range(rounds + 1):
            k = r % len(order)  # each round starts one path later: no path always follows the same one
            for path, opt in order[k:] + order[:k]:
                if path == SCHEDULED:
                    reschedule(opt, r)
                sync()
                t0 = time.perf_counter()
                if opt is None:
                    x.add_(y, alpha=1e-3)
                else:
                    opt.step()
                sync()
                dt = time.perf_counter() - t0
                if r:  # round 0 only warms the caches of the interleaved order
                    (row.floor if opt is None else row.times.setdefault(path, [])).append(dt)
            if r and task is not None:
                progress.advance(task)
        rows.append(row)
        del opts, x, y
    return rows


def machine(device: str) -> str:
    """A one-line description of where the run happened."""
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


PATH_ORDER = [*TORCH_PATHS, *OURS_PATHS]


def table_rows(rows: list[Row]) -> list[list[str]]:
    """The results as strings: medians (ms) per path, floor, and the ratios."""
    out = []
    for row in rows:
        cells = [row.name]
        cells += [f"{row.median(p) * 1e3:.1f}" if p in row.times else "–" for p in PATH_ORDER]
        cells.append(f"{statistics.median(row.floor) * 1e3:.1f}")
        best = row.torch_best
        cells.append(best.removeprefix("torch "))
        cells.append(f"{row.paired('optimlab fused', best):.2f}")
        cells.append(f"{row.paired('optimlab fused'):.2f}")
        cells.append(f"{row.paired(best):.2f}")
        cells.append(f"{row.paired(TWIN, 'optimlab fused'):.2f}")
        cells.append(f"{row.paired(SCHEDULED, 'optimlab fused'):.2f}")
        cells.append(f"{row.first['optimlab fused']:.1f}")
        out.append(cells)
    return out


HEADER = ["optimizer", *[f"{p} ms" for p in PATH_ORDER], "floor ms", "torch best", "optimlab fused / torch best",
          "optimlab fused / floor", "torch best / floor", "A/A: fused twin / fused",
          "scheduled fused / fused", "fused first step s"]


def write_results(rows: list[Row], device: str, path: Path = HERE / "RESULTS.md",
                  chart: Path = HERE / "optim_ratios.png", rounds: int = 0) -> None:
    """``RESULTS.md`` (machine, torch version, medians, ratios) and the ratio bar chart beside it."""
    lines = [
        "# Optimizer step benchmark",
        "",
        f"Written by `python -m optimlab bench --device {device}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {machine(device)}; torch {torch.__version__}.",
        "",
        "GPT-2-mini parameter set: 52 float32 tensors, 17.07M elements. One step per path per round, paths",
        f"interleaved, {rounds} rounds; times are medians, ratios are medians of per-round ratios. The floor is",
        "the bytes the update must read and write (parameter r+w, gradient r, each state tensor r+w) moved by an",
        "in-place `x += a·y` over a buffer of that size, timed in the same rounds. \"fused first step\" is the",
        "first `step()` of `fused=True` in this process (compile, or load from the on-disk cache). Muon runs on",
        "the set's 16 hidden weight matrices (3.15M elements; torch's Muon has one path, its for-loop); its floor",
        "counts the elementwise streams only, while its step is dominated by the bfloat16 Newton–Schulz matmuls.",
        "The order of the paths rotates by one each round. \"A/A\" times a second, identical `fused=True`",
        "optimizer on its own copy of the set: how far two identical steps differ in this run (where their",
        "buffers landed in memory, mostly), the resolution of the other ratios. \"scheduled\" is a third one whose",
        "every float hyperparameter (lr, betas, momentum, weight decay, eps, …) changes before each of its steps.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    lines += ["", f"![optimlab fused / torch best and / floor]({chart.name})", ""]
    path.write_text("\n".join(lines))
    plot(rows, chart, device)


def plot(rows: list[Row], chart: Path, device: str) -> None:
    """Bars of optimlab fused / torch's best path and / the floor, per optimizer."""
    plot_ratios([r.name for r in rows], [r.paired("optimlab fused", r.torch_best) for r in rows],
                [r.paired("optimlab fused") for r in rows], [r.paired(r.torch_best) for r in rows], chart,
                f"{machine(device)}, torch {torch.__version__}")


def replot(results: Path = HERE / "RESULTS.md", chart: Path = HERE / "optim_ratios.png") -> None:
    """Redraw the chart from the ratio columns of an existing ``RESULTS.md``."""
    lines = [ln for ln in results.read_text().splitlines() if ln.startswith("| ") and not ln.startswith("| optimizer")]
    cols = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    where = next((ln.split("Machine: ", 1)[1].rstrip(".") for ln in results.read_text().splitlines()
                  if ln.startswith("Machine: ")), "")
    i = HEADER.index("optimlab fused / torch best")
    plot_ratios([c[0] for c in cols], [float(c[i]) for c in cols], [float(c[i + 1]) for c in cols],
                [float(c[i + 2]) for c in cols], chart, where)


def plot_ratios(names: list[str], vs_torch: list[float], vs_floor: list[float], torch_floor: list[float],
                chart: Path, where: str) -> None:
    """The bar chart (log scale; 1.0 marked, and the targets 0.6 and 1.3 dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.8))
    w = 0.27
    xs = list(range(len(names)))
    bars = ax.bar([x - w for x in xs], vs_torch, w, label="optimlab fused / torch best path")
    ax.bar(xs, vs_floor, w, label="optimlab fused / floor")
    ax.bar([x + w for x in xs], torch_floor, w, label="torch best path / floor", color="0.7")
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(0.6, color="tab:blue", lw=0.8, ls=":")
    ax.axhline(1.3, color="tab:orange", lw=0.8, ls=":")
    ax.set_xticks(xs, names)
    ax.set_ylabel("time ratio (log scale, lower is better)")
    ax.set_title(f"Optimizer step, GPT-2-mini set (17.07M fp32 in 52 tensors; Muon: its 16 hidden matrices); {where}",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)
    plt.close(fig)
