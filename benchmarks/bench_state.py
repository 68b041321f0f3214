"""Optimizer state precision: state memory and step time, ``python -m optimlab bench --state`` (issue 27).

For each of the eleven elementwise optimizers, one interleaved run measures, per configuration:

* **state bytes per parameter**: the bytes of every tensor in ``opt.state`` (all parameters; a tensor
  subclass such as torchao's ``OptimState8bit`` counted by its inner tensors; one storage shared by several
  states, such as bitsandbytes' quantisation map, counted once) over the number of parameter elements;
* **step time**: the median over rounds of one ``step()``, and its median per-round (paired) ratio to
  torch's fp32 step (``fused=True`` where torch has a fused kernel, else the faster of its ``foreach`` and
  for-loop paths, both timed in the same rounds).

Configurations: torch fp32; optimlab ``fused=True`` with ``state_dtype=None`` (fp32), ``torch.bfloat16`` and
``"int8"``; bitsandbytes' 8-bit optimizers and torchao's 8- and 4-bit AdamW/Adam where they have the
algorithm (the peers: ``pip install --no-deps bitsandbytes==0.50.2 torchao==0.18.0``, the ``peers`` extra;
a peer that does not import is skipped with the reason printed). A configuration whose constructor rejects
its options (an optimlab without ``state_dtype``) is reported as *pending* with the error.

Step times are on the **step set** (:func:`step_shapes`: an MLP, 1.05M float32 elements in eight tensors, its
biases under 4096 elements, the size below which every library keeps fp32 state); state bytes are also
measured on the **GPT-2-mini set** (``optim_suite.gpt2_mini_shapes``: 17.07M elements in 52 tensors) for
Adam and AdamW, one step per configuration, except torchao's: its step compiles one kernel per distinct
shape (a minute on that set), so its state there is made by the state initialisation its first step runs
(``_new_buffer``), which is what the step would have allocated.

Every configuration steps ``warmup`` times before the timed rounds (first steps compile: optimlab's fused
kernels, torchao's ``torch.compile``; the first step's time is reported apart). Each round steps every
configuration once, the order rotating by one per round; round 0 is not counted. Seeds are fixed.

Outputs: a table on stdout, a section of ``benchmarks/RESULTS.md`` (between the markers below, which
``python -m optimlab bench`` keeps when it rewrites the file) and ``benchmarks/state_tradeoff.png``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import optimlab.optim as oo

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
CHART = HERE / "state_tradeoff.png"
BEGIN = "<!-- bench --state: begin -->"
END = "<!-- bench --state: end -->"


def _suite() -> Any:
    """``optim_suite`` beside this file (its hyperparameters, parameter sets and machine line)."""
    for key in ("optimlab_bench_optim_suite", "optim_suite"):
        if key in sys.modules:
            return sys.modules[key]
    spec = importlib.util.spec_from_file_location("optimlab_bench_optim_suite", HERE / "optim_suite.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = mod  # type: ignore[union-attr]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


suite = _suite()

#: the elementwise optimizers (optim_suite's hyperparameters); Adafactor has no state_dtype, and Muon's (its momentum
#: only) is left out: 2-D parameters only, and its step time is the Newton–Schulz matmuls
ALGOS: list[tuple[str, dict[str, Any]]] = [(n, kw) for n, kw, _ in suite.ALGOS if n not in ("Adafactor", "Muon")]
#: optimlab's precisions: label -> state_dtype
OURS: dict[str, Any] = {"fp32": None, "bf16": torch.bfloat16, "int8": "int8"}
#: peer library -> (pinned version, import name, optimizer -> [(precision, class name)])
PEERS: dict[str, tuple[str, str, dict[str, list[tuple[str, str]]]]] = {
    "bitsandbytes": ("0.50.2", "bitsandbytes.optim", {
        "SGD": [("int8", "SGD8bit")], "Adam": [("int8", "Adam8bit")], "AdamW": [("int8", "AdamW8bit")],
        "Adagrad": [("int8", "Adagrad8bit")], "RMSprop": [("int8", "RMSprop8bit")]}),
    "torchao": ("0.18.0", "torchao.optim", {
        "Adam": [("int8", "Adam8bit")], "AdamW": [("int8", "AdamW8bit"), ("int4", "AdamW4bit")]}),
}
LIBRARIES = ["torch", "optimlab", *PEERS]
PRECISIONS = ["fp32", "bf16", "int8", "int4"]
#: optimizers whose state bytes are also measured on the GPT-2-mini set
GPT2_ALGOS = ("Adam", "AdamW")
#: what a peer's class does differently from torch's with the same arguments (the table's notes)
PEER_NOTES = {("bitsandbytes", "SGD"): "bitsandbytes' SGD8bit accepts `nesterov=True` but applies heavy-ball momentum"}
INSTALL = "pip install --no-deps bitsandbytes==0.50.2 torchao==0.18.0  (the `peers` extra; never moves torch)"


def step_shapes() -> list[tuple[int, ...]]:
    """The step set: four 512-wide MLP layers (weights and biases), 1,050,624 float32 elements in two distinct
    shapes (torchao compiles its step once per shape): the weights 1024 blocks of 256 elements each, the
    biases under 4096 elements (fp32 state in every library)."""
    return [(512, 512), (512,)] * 4


def gpt2_shapes() -> list[tuple[int, ...]]:
    return suite.gpt2_mini_shapes()


# --------------------------------------------------------------------------- configurations


@dataclass
class Config:
    """One thing to time: ``make(params)`` builds the optimizer."""

    library: str
    precision: str
    make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]
    path: str = ""  # torch: which of its paths

    @property
    def label(self) -> str:
        return f"{self.library} {self.precision}" + (f" ({self.path})" if self.path else "")


def load_peers(names: Iterable[str] = tuple(PEERS)) -> tuple[dict[str, Any], dict[str, str]]:
    """Import each peer's optimizer module: (name -> module, name -> why it was skipped)."""
    mods, skipped = {}, {}
    for name in names:
        pinned, module, _ = PEERS[name]
        # torchao logs each CUDA-only kernel it cannot load, and torch a deprecation its import triggers
        quiet = [logging.getLogger(n) for n in (name, "torch.utils._pytree")]
        levels = [lg.level for lg in quiet]
        try:
            for lg in quiet:
                lg.setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mods[name] = importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any failure to import skips the peer
            first = str(e).splitlines()[0] if str(e) else ""
            skipped[name] = f"does not import ({type(e).__name__}: {first}); {INSTALL}"
            continue
        finally:
            for lg, level in zip(quiet, levels, strict=True):
                lg.setLevel(level)
        version = getattr(sys.modules.get(name), "__version__", "?")
        if version.split("+")[0] != pinned:
            print(f"note: {name} {version} is installed, the benchmark pins {pinned}")
    return mods, skipped


def peer_version(name: str) -> str:
    return getattr(sys.modules.get(name), "__version__", "?")


def configs(name: str, kw: dict[str, Any], peers: dict[str, Any],
            ours_prec: Iterable[str] | None = None) -> list[Config]:
    """Every configuration optimizer ``name`` is measured in (optimlab's: precisions ``ours_prec``, default all)."""
    out: list[Config] = []
    torch_cls = getattr(torch.optim, name)
    if name in suite.TORCH_FUSED:
        out.append(Config("torch", "fp32", lambda ps: torch_cls(ps, **kw, fused=True), "fused"))
    else:
        out.append(Config("torch", "fp32", lambda ps: torch_cls(ps, **kw, foreach=True), "foreach"))
        out.append(Config("torch", "fp32", lambda ps: torch_cls(ps, **kw, foreach=False), "for-loop"))
    ours = getattr(oo, name)
    for prec, sd in OURS.items():
        if ours_prec is not None and prec not in ours_prec:
            continue
        extra = {} if sd is None else {"state_dtype": sd}
        out.append(Config("optimlab", prec, lambda ps, extra=extra: ours(ps, **kw, fused=True, **extra)))
    for lib, mod in peers.items():
        for prec, cls in PEERS[lib][2].get(name, []):
            out.append(Config(lib, prec, _peer_factory(mod, cls, kw)))
    return out


def _peer_factory(mod: Any, cls: str, kw: dict[str, Any]) -> Callable[[list[torch.nn.Parameter]], Any]:
    def make(ps: list[torch.nn.Parameter]) -> Any:
        return getattr(mod, cls)(ps, **kw)  # a class this version lacks: AttributeError, reported

    return make


# --------------------------------------------------------------------------- measuring


def _nbytes(t: torch.Tensor, seen: set[tuple[int, int]]) -> int:
    if type(t) is not torch.Tensor and hasattr(t, "__tensor_flatten__"):  # a subclass: its inner tensors
        inner, _ = t.__tensor_flatten__()
        return sum(_nbytes(getattr(t, n), seen) for n in inner)
    key = (t.data_ptr(), t.nbytes)
    if t.nbytes and key in seen:  # one storage held by several states (a shared quantisation map)
        return 0
    seen.add(key)
    return t.nbytes


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """The bytes of every tensor in ``opt.state``."""
    seen: set[tuple[int, int]] = set()
    return sum(_nbytes(v, seen) for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor))


def bytes_per_param(opt: torch.optim.Optimizer) -> float:
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    return state_bytes(opt) / n


def make_params(shapes: list[tuple[int, ...]], device: str) -> list[torch.nn.Parameter]:
    return suite.make_params(shapes, device)


@dataclass
class Result:
    """One optimizer: per configuration label, its step times, first-step time and state bytes/param."""

    name: str
    configs: list[Config] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    bytes: dict[str, float] = field(default_factory=dict)
    gpt2_bytes: dict[str, float] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # label -> why it was not measured
    notes: dict[str, str] = field(default_factory=dict)  # label -> a warning its warm-up raised

    def median(self, label: str) -> float:
        return statistics.median(self.times[label])

    @property
    def torch_ref(self) -> str:
        """torch's fp32 reference: its fused path, else the faster of its timed paths."""
        labels = [c.label for c in self.configs if c.library == "torch" and c.label in self.times]
        return min(labels, key=self.median)

    def ratio(self, label: str, ref: str | None = None) -> float:
        """Median over rounds of time(label) / time(ref) (ref: torch's fp32 reference)."""
        other = self.times[self.torch_ref if ref is None else ref]
        return statistics.median(a / b for a, b in zip(self.times[label], other, strict=True))

    def best_ratio(self, label: str) -> float:
        """min time(label) / min time(torch's reference): each side's least-disturbed step (a loaded machine)."""
        return min(self.times[label]) / min(self.times[self.torch_ref])

    def shown(self) -> list[Config]:
        """The configurations in the table: torch's reference path only, then the others."""
        ref = self.torch_ref
        return [c for c in self.configs if c.library != "torch" or c.label == ref]


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def _step(opt: torch.optim.Optimizer) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.step()


def _why(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, TypeError) and "state_dtype" in text:
        return "pending: this optimlab has no `state_dtype` yet"
    return f"{type(e).__name__}: {text[:160]}"


def gpt2_state_bytes(name: str, kw: dict[str, Any], peers: dict[str, Any], device: str, shapes: list[tuple[int, ...]],
                     log: Callable[[str], None], ours_prec: Iterable[str] | None = None,
                     ) -> tuple[dict[str, float], dict[str, str]]:
    """State bytes/param of each configuration of ``name`` on ``shapes`` (one set of parameters, one
    optimizer at a time): one step, except torchao's (its state initialisation only, see the module doc)."""
    params = make_params(shapes, device)
    n = sum(p.numel() for p in params)
    out, why = {}, {}
    for cfg in configs(name, kw, peers, ours_prec):
        if cfg.library == "torch" and cfg.path == "for-loop":
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt = cfg.make(params)
                if cfg.library == "torchao":
                    for g in opt.param_groups:
                        for p in g["params"]:
                            st = opt.state[p]
                            st["step"] = torch.tensor(0.0)
                            st["exp_avg"] = opt._new_buffer(p, True)
                            st["exp_avg_sq"] = opt._new_buffer(p, False)
                else:
                    opt.step()
            out[cfg.label] = state_bytes(opt) / n
        except Exception as e:  # noqa: BLE001
            why[cfg.label] = _why(e)
            log(f"  {name} {cfg.label} on the GPT-2-mini set: {why[cfg.label]}")
        opt = None  # type: ignore[assignment]
    return out, why


def run(device: str = "cpu", rounds: int = 30, warmup: int = 3, algos: list[str] | None = None,
        peers: Iterable[str] = tuple(PEERS), shapes: list[tuple[int, ...]] | None = None,
        gpt2: list[tuple[int, ...]] | None | bool = True, log: Callable[[str], None] = print,
        progress: Any = None, ours: Iterable[str] | None = None) -> tuple[list[Result], dict[str, str]]:
    """Measure every optimizer in ``algos`` (default: all eleven); returns the results and the skipped
    peers with their reasons. ``gpt2``: the set for the state-bytes column (True: GPT-2-mini; False: none);
    ``ours``: optimlab's precisions (default: fp32, bf16, int8)."""
    global _REVISION
    _REVISION = revision()  # what was measured (the tree may change while the run compiles)
    sync = _sync(device)
    shapes = step_shapes() if shapes is None else shapes
    gshapes = gpt2_shapes() if gpt2 is True else (gpt2 or None)
    mods, skipped = load_peers(peers)
    for lib, why in skipped.items():
        log(f"skipping {lib}: {why}")
    todo = [(n, kw) for n, kw in ALGOS if algos is None or n in algos]
    task = progress.add_task("optimizers", total=len(todo) * rounds) if progress is not None else None
    results = []
    for name, kw in todo:
        res = Result(name)
        if progress is not None:
            progress.update(task, description=name)
        log(f"{name}: warm-up (first steps compile), then {rounds} rounds")
        opts: dict[str, torch.optim.Optimizer] = {}
        for cfg in configs(name, kw, mods, ours):
            res.configs.append(cfg)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    opt = cfg.make(make_params(shapes, device))
                    sync()
                    t0 = time.perf_counter()
                    opt.step()
                    sync()
                    res.first[cfg.label] = time.perf_counter() - t0
                    for _ in range(warmup - 1):
                        opt.step()
                # optimlab's fused=True falls back to its unfused path (with a warning) where it cannot compile
                fell = [str(w.message).splitlines()[0] for w in caught if cfg.library == "optimlab"
                        and "fused" in str(w.message)]
                if fell:
                    res.notes[cfg.label] = f"warned: {fell[0][:200]}"
                    log(f"  {name} {cfg.label}: {res.notes[cfg.label]}")
            except Exception as e:  # noqa: BLE001 - an unsupported option is reported, not fatal
                if cfg.library == "torch" and cfg.path == "fused":
                    raise
                res.pending[cfg.label] = _why(e)
                log(f"  {name} {cfg.label}: {res.pending[cfg.label]}")
                continue
            opts[cfg.label] = opt
            res.bytes[cfg.label] = bytes_per_param(opt)
        order = list(opts.items())
        for r in range(rounds + 1):
            k = r % len(order)
            for label, opt in order[k:] + order[:k]:
                sync()
                t0 = time.perf_counter()
                _step(opt)
                sync()
                dt = time.perf_counter() - t0
                if r:  # round 0 warms the caches of the interleaved order
                    res.times.setdefault(label, []).append(dt)
            if r and task is not None:
                progress.advance(task)
        del opts, order
        if gshapes and name in GPT2_ALGOS:
            res.gpt2_bytes, why = gpt2_state_bytes(name, kw, mods, device, gshapes, log, ours)
            for label, w in why.items():
                res.pending.setdefault(label, w)
        results.append(res)
    return results, skipped


# --------------------------------------------------------------------------- reporting

HEADER = ["optimizer", "library", "state", "state bytes / param", "GPT-2-mini state bytes / param", "step ms",
          "× torch fp32", "best ms", "best × torch fp32", "first step s"]


def _fmt_bytes(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def table_rows(results: list[Result]) -> list[list[str]]:
    """One row per (optimizer, configuration): measured, or *pending* with the reason in the notes."""
    out = []
    for res in results:
        for cfg in res.shown():
            lab = cfg.label
            lib = cfg.library + (f" ({cfg.path})" if cfg.path else "")
            if lab in res.times:
                out.append([res.name, lib, cfg.precision, _fmt_bytes(res.bytes.get(lab)),
                            _fmt_bytes(res.gpt2_bytes.get(lab)), f"{res.median(lab) * 1e3:.2f}",
                            f"{res.ratio(lab):.2f}", f"{min(res.times[lab]) * 1e3:.2f}",
                            f"{res.best_ratio(lab):.2f}", f"{res.first[lab]:.2f}"])
            else:
                out.append([res.name, lib, cfg.precision, "pending", _fmt_bytes(res.gpt2_bytes.get(lab)),
                            "pending", "pending", "pending", "pending", "–"])
    return out


def summary_lines(results: list[Result]) -> list[str]:
    """Paired ratios the issue's acceptance reads: optimlab's low-precision steps against torch fp32, and
    each peer's against optimlab's of the same precision."""
    lines = []
    for res in results:
        ours = {c.precision: c.label for c in res.configs if c.library == "optimlab" and c.label in res.times}
        parts = [f"{p} {res.ratio(ours[p]):.2f}× torch (best-of {res.best_ratio(ours[p]):.2f}×)"
                 for p in ("bf16", "int8") if p in ours]
        for cfg in res.configs:
            if cfg.library in PEERS and cfg.label in res.times and "int8" in ours:
                best = min(res.times[cfg.label]) / min(res.times[ours["int8"]])
                parts.append(f"{cfg.library} {cfg.precision} {res.ratio(cfg.label, ours['int8']):.1f}× optimlab int8 "
                             f"(best-of {best:.1f}×)")
        if parts:
            lines.append(f"- {res.name}: " + "; ".join(parts))
    return lines


def pending_lines(results: list[Result], skipped: dict[str, str]) -> list[str]:
    lines = [f"- {lib} skipped: {why}" for lib, why in skipped.items()]
    reasons: dict[str, list[str]] = {}
    for res in results:
        for lab, why in res.pending.items():
            reasons.setdefault(f"{lab}: {why}", []).append(res.name)
    for res in results:
        for lab, note in res.notes.items():
            reasons.setdefault(f"{lab}: {note}", []).append(res.name)
    lines += [f"- {what} ({', '.join(names)})" for what, names in reasons.items()]
    for (lib, name), note in PEER_NOTES.items():
        if any(r.name == name and any(c.library == lib for c in r.configs) for r in results):
            lines.append(f"- {note}")
    return lines


_REVISION: str | None = None


def revision() -> str:
    """optimlab's commit, and whether its package has uncommitted changes."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=HERE.parent, capture_output=True, text=True).stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "optimlab")
    except OSError:
        return "unknown"
    return (sha or "unknown") + (" with uncommitted changes in optimlab/" if dirty else "")


def section(results: list[Result], skipped: dict[str, str], device: str, rounds: int,
            shapes: list[tuple[int, ...]], gpt2: bool, chart: Path) -> str:
    n = sum(math.prod(s) for s in shapes)
    rev = _REVISION or revision()
    peers = ", ".join(f"{lib} {peer_version(lib)}" for lib in PEERS if lib not in skipped) or "none"
    lines = [
        BEGIN,
        "## Optimizer state precision: state memory and step time",
        "",
        f"Written by `python -m optimlab bench --state --device {device}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {suite.machine(device)}; torch {torch.__version__}; peers: {peers}; optimlab {rev}.",
        "",
        f"Step set: {len(shapes)} float32 tensors, {n:,} elements (an MLP; tensors under 4096 elements keep fp32",
        "state in every library). State bytes / param: every tensor in `opt.state` (a shared storage once, a",
        "tensor subclass by its inner tensors) over the parameter elements"
        + (";\nalso on the GPT-2-mini set for Adam and AdamW (17.07M elements in 52 tensors; torchao's by its state\n"
           "initialisation, not a compiled step)" if gpt2 else "") + ".",
        f"Step ms: median of {rounds} interleaved rounds (order rotating, each configuration warmed up first);",
        "× torch fp32: median of per-round ratios to torch's fp32 step (`fused=True`; where torch has no fused",
        "kernel, its faster of `foreach` and for-loop in this run). optimlab: `fused=True` with `state_dtype`",
        "None / `torch.bfloat16` / `\"int8\"`. \"best\": the fastest of the rounds, and its ratio to torch's",
        "fastest (robust to a loaded machine). \"first step s\": the first `step()` (compiles kernels).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(results)]
    summ = summary_lines(results)
    if summ:
        lines += ["", "Step-time ratios (paired medians; in brackets, fastest step against fastest step):", "", *summ]
    notes = pending_lines(results, skipped)
    if notes:
        lines += ["", "Not measured, and notes:", "", *notes]
    lines += ["", f"![state bytes per parameter against step time]({chart.name})", "", END]
    return "\n".join(lines) + "\n"


def splice(text: str, new: str) -> str:
    """``text`` with its state section (between the markers) replaced by ``new``, or ``new`` appended."""
    i, j = text.find(BEGIN), text.find(END)
    if i >= 0 and j > i:
        return text[:i] + new.rstrip("\n") + text[j + len(END):]
    return text.rstrip("\n") + "\n\n" + new


def kept_section(text: str) -> str | None:
    """The state section of ``text``, if it has one (``bench`` keeps it when it rewrites RESULTS.md)."""
    i, j = text.find(BEGIN), text.find(END)
    return text[i:j + len(END)] + "\n" if i >= 0 and j > i else None


def write_results(results: list[Result], skipped: dict[str, str], device: str, rounds: int,
                  shapes: list[tuple[int, ...]] | None = None, gpt2: bool = True, path: Path | None = None,
                  chart: Path | None = None) -> None:
    path = RESULTS if path is None else path
    chart = CHART if chart is None else chart
    shapes = step_shapes() if shapes is None else shapes
    new = section(results, skipped, device, rounds, shapes, gpt2, chart)
    path.write_text(splice(path.read_text() if path.exists() else "", new))
    plot(results, chart, device)


MARKERS = {"fp32": "o", "bf16": "s", "int8": "D", "int4": "v"}
COLORS = {"torch": "0.35", "optimlab": "tab:blue", "bitsandbytes": "tab:orange", "torchao": "tab:green"}


def plot(results: list[Result], chart: Path, device: str) -> None:
    """One panel per optimizer: x state bytes / param, y step time / torch fp32 (log); a marker per
    (library, precision); pending configurations are absent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(results)) or 1
    nrows = max(1, math.ceil(len(results) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.3 * cols, 2.9 * nrows), squeeze=False, sharey=True)
    seen: dict[tuple[str, str], Any] = {}
    for ax, res in zip(axes.flat, results, strict=False):
        for cfg in res.shown():
            if cfg.label not in res.times:
                continue
            key = (cfg.library, cfg.precision)
            h = ax.scatter(res.bytes[cfg.label], res.ratio(cfg.label), marker=MARKERS.get(cfg.precision, "x"),
                           color=COLORS.get(cfg.library, "k"), s=42, zorder=3)
            seen.setdefault(key, h)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_yscale("log")
        ax.set_xlim(0, max(9.0, *(res.bytes.values() or [0])) * 1.05)
        ax.set_title(res.name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("state bytes / parameter", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("step time / torch fp32", fontsize=8)
    handles = [seen[k] for k in sorted(seen, key=lambda k: (LIBRARIES.index(k[0]), PRECISIONS.index(k[1])))]
    labels = [f"{lib} {prec}" for lib, prec in sorted(seen, key=lambda k: (LIBRARIES.index(k[0]),
                                                                          PRECISIONS.index(k[1])))]
    fig.legend(handles, labels, loc="lower right", fontsize=8, ncol=2 if len(results) % cols == 0 else 1)
    fig.suptitle(f"Optimizer state: memory against step time (step set; lower left is better); "
                 f"{suite.machine(device)}, torch {torch.__version__}", fontsize=9)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/bench_state.py``: the same as ``python -m optimlab bench --state``."""
    from optimlab.cli import main as cli_main

    return cli_main(["bench", "--state", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
