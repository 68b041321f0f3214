"""Forward+backward time and memory held for backward of every loss, optimlab's against torch's.

One row per configuration in :data:`ROWS` (a loss named the same in ``optimlab.nn`` and ``torch.nn``, its
constructor arguments and an input builder); adding a loss means adding rows. For each row:

* time: milliseconds (median) over ``--repeat`` rounds of ``loss(*inputs).backward()`` (scalar losses) or
  ``.backward(ones)`` (``reduction='none'``), ours and torch's interleaved (alternating which goes first),
  after warm-up; the ratio is the median of each round's ours/torch (a slow spell of the machine hits both
  halves of a round), with the ratio of minima beside it;
* saved: bytes autograd holds for backward, counted through ``torch.autograd.graph.saved_tensors_hooks``
  (each storage once; the inputs' and the module's own tensors excluded).

Run ``python benchmarks/bench_losses.py [--device cuda] [--only Cross] [--threads 1] [--markdown out.md]``,
or ``pytest benchmarks/bench_losses.py --benchmark-enable`` for pytest-benchmark statistics.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

Inputs = Callable[[torch.Generator, str], tuple]


@dataclass(frozen=True)
class Row:
    """One benchmark configuration: ``loss`` is the class name in both ``optimlab.nn`` and ``torch.nn``."""

    label: str
    loss: str
    inputs: Inputs
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad_args: tuple[int, ...] = (0,)


# ------------------------------------------------------------------------------------------- input builders
def _randn(g: torch.Generator, *shape: int, device: str) -> torch.Tensor:
    return torch.randn(shape, generator=g).to(device)


def _rand(g: torch.Generator, *shape: int, device: str, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(shape, generator=g)).to(device)


def logits_idx(n: int, c: int, *dims: int) -> Inputs:
    return lambda g, dev: (_randn(g, n, c, *dims, device=dev), torch.randint(0, c, (n, *dims), generator=g).to(dev))


def logits_probs(n: int, c: int) -> Inputs:
    return lambda g, dev: (_randn(g, n, c, device=dev), torch.softmax(_randn(g, n, c, device=dev), 1))


def log_probs_idx(n: int, c: int, *dims: int) -> Inputs:
    return lambda g, dev: (torch.log_softmax(_randn(g, n, c, *dims, device=dev), 1),
                           torch.randint(0, c, (n, *dims), generator=g).to(dev))


def same(n: int, c: int, first: str = "randn", second: str = "randn", third: str | None = None) -> Inputs:
    """Two (or three) tensors of shape (n, c): ``randn``, ``unit`` (0, 1), ``prob`` (0.02, 0.98),
    ``logsoftmax``, ``softmax``, ``positive`` (0.1, 3)."""

    def one(kind: str, g: torch.Generator, dev: str) -> torch.Tensor:
        if kind == "randn":
            return _randn(g, n, c, device=dev)
        if kind == "unit":
            return _rand(g, n, c, device=dev)
        if kind == "prob":
            return _rand(g, n, c, device=dev, lo=0.02, hi=0.98)
        if kind == "positive":
            return _rand(g, n, c, device=dev, lo=0.1, hi=3.0)
        if kind == "logsoftmax":
            return torch.log_softmax(_randn(g, n, c, device=dev), 1)
        if kind == "softmax":
            return torch.softmax(_randn(g, n, c, device=dev), 1)
        raise ValueError(kind)

    kinds = [first, second] + ([third] if third else [])
    return lambda g, dev: tuple(one(k, g, dev) for k in kinds)


def ctc_inputs(t: int, n: int, s: int, c: int) -> Inputs:
    def make(g: torch.Generator, dev: str) -> tuple:
        lp = torch.log_softmax(_randn(g, t, n, c, device=dev), 2)
        targets = torch.randint(1, c, (n, s), generator=g).to(dev)
        il = torch.full((n,), t, dtype=torch.long)
        tl = torch.randint(s // 2, s + 1, (n,), generator=g)
        return lp, targets, il, tl

    return make


N, C = 4096, 1000
ROWS: list[Row] = [
    Row("CrossEntropyLoss N=4096 C=1000", "CrossEntropyLoss", logits_idx(N, C)),
    Row("CrossEntropyLoss weight+ignore", "CrossEntropyLoss", logits_idx(N, C),
        {"weight": torch.rand(C) + 0.5, "ignore_index": 3}),
    Row("CrossEntropyLoss label_smoothing=0.1", "CrossEntropyLoss", logits_idx(N, C), {"label_smoothing": 0.1}),
    Row("CrossEntropyLoss class probabilities", "CrossEntropyLoss", logits_probs(N, C)),
    # a language-model vocabulary: torch keeps the (N, C) log-softmax (125 MiB), issue 11 asks ours ≤ 1% of it
    Row("CrossEntropyLoss N=1024 C=32000", "CrossEntropyLoss", logits_idx(1024, 32000)),
    Row("CrossEntropyLoss 2-D (16, 21, 64, 64)", "CrossEntropyLoss", logits_idx(16, 21, 64, 64)),
    Row("NLLLoss N=4096 C=1000", "NLLLoss", log_probs_idx(N, C)),
    Row("NLLLoss 2-D (16, 21, 64, 64)", "NLLLoss", log_probs_idx(16, 21, 64, 64)),
    Row("BCELoss 4096x1000", "BCELoss", same(N, C, "prob", "unit")),
    Row("BCEWithLogitsLoss 4096x1000", "BCEWithLogitsLoss", same(N, C, "randn", "unit")),
    Row("BCEWithLogitsLoss pos_weight", "BCEWithLogitsLoss", same(N, C, "randn", "unit"),
        {"pos_weight": torch.rand(C) * 3}),
    Row("KLDivLoss batchmean 4096x1000", "KLDivLoss", same(N, C, "logsoftmax", "softmax"),
        {"reduction": "batchmean"}),
    Row("PoissonNLLLoss 4096x1000", "PoissonNLLLoss", same(N, C, "randn", "positive")),
    Row("GaussianNLLLoss 4096x1000", "GaussianNLLLoss", same(N, C, "randn", "randn", "positive"),
        grad_args=(0, 2)),
    Row("CTCLoss T=100 N=16 S=30 C=32", "CTCLoss", ctc_inputs(100, 16, 30, 32)),
    Row("CTCLoss T=200 N=32 S=50 C=64", "CTCLoss", ctc_inputs(200, 32, 50, 64)),
    Row("MSELoss 4096x1000", "MSELoss", same(N, C)),
]



# losses B: regression, margin and embedding losses
def with_signs(n: int, c: int, tensors: int = 1, target_shape: tuple[int, ...] | None = None) -> Inputs:
    """``tensors`` standard-normal (n, c) tensors and a ±1 target of ``target_shape`` (default (n, c))."""

    def make(g: torch.Generator, dev: str) -> tuple:
        xs = tuple(_randn(g, n, c, device=dev) for _ in range(tensors))
        y = (torch.randint(0, 2, target_shape or (n, c), generator=g) * 2 - 1).float().to(dev)
        return (*xs, y)

    return make


def multilabel(n: int, c: int, labels: int) -> Inputs:
    """Scores (n, c) and -1-terminated targets with ``labels`` distinct labels per sample."""

    def make(g: torch.Generator, dev: str) -> tuple:
        t = torch.stack([torch.randperm(c, generator=g) for _ in range(n)])
        t[:, labels] = -1
        return _randn(g, n, c, device=dev), t.to(dev)

    return make


ROWS += [
    Row("L1Loss 4096x1000", "L1Loss", same(N, C)),
    Row("HuberLoss 4096x1000", "HuberLoss", same(N, C)),
    Row("SmoothL1Loss beta=0.5 4096x1000", "SmoothL1Loss", same(N, C), {"beta": 0.5}),
    Row("MarginRankingLoss 4096x1000", "MarginRankingLoss", with_signs(N, C, 2), grad_args=(0, 1)),
    Row("HingeEmbeddingLoss 4096x1000", "HingeEmbeddingLoss", with_signs(N, C)),
    Row("SoftMarginLoss 4096x1000", "SoftMarginLoss", with_signs(N, C)),
    Row("MultiLabelSoftMarginLoss 4096x1000", "MultiLabelSoftMarginLoss", same(N, C, "randn", "unit")),
    Row("CosineEmbeddingLoss 4096x128", "CosineEmbeddingLoss", with_signs(N, 128, 2, (N,)), grad_args=(0, 1)),
    Row("MultiMarginLoss N=4096 C=1000", "MultiMarginLoss", logits_idx(N, C)),
    Row("MultiMarginLoss p=2 weight", "MultiMarginLoss", logits_idx(N, C), {"p": 2, "weight": torch.rand(C) + 0.5}),
    Row("MultiLabelMarginLoss N=1024 C=100 10 labels", "MultiLabelMarginLoss", multilabel(1024, 100, 10)),
    Row("TripletMarginLoss swap 4096x128", "TripletMarginLoss", same(N, 128, "randn", "randn", "randn"),
        {"swap": True}, grad_args=(0, 1, 2)),
    Row("TripletMarginWithDistanceLoss 4096x128", "TripletMarginWithDistanceLoss",
        same(N, 128, "randn", "randn", "randn"), grad_args=(0, 1, 2)),
]

# ------------------------------------------------------------------------------------------- small inputs
# Per-call cost on small inputs, where Python overhead decides: a (32, 10)-like batch per loss. Each row calls a
# module of both libraries (torch's own, or for the losses torch lacks a plain composition of torch ops written
# here from the formula) or a functional form.
def _focal_ref(x: torch.Tensor, y: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    q = 1 - (p * y + (1 - p) * (1 - y))
    return ((alpha * y + (1 - alpha) * (1 - y)) * ce * q**gamma).mean()


def _softmax_focal_ref(x: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    logp = torch.log_softmax(x, 1).gather(1, y.unsqueeze(1)).squeeze(1)
    return (-(1 - logp.exp()) ** gamma * logp).mean()


def _giou_ref(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    x1, y1, x2, y2 = a.unbind(-1)
    u1, v1, u2, v2 = b.unbind(-1)
    inter = (torch.min(x2, u2) - torch.max(x1, u1)).clamp(min=0) * (torch.min(y2, v2) - torch.max(y1, v1)).clamp(min=0)
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    iou = inter / (union + eps)
    hull = (torch.max(x2, u2) - torch.min(x1, u1)) * (torch.max(y2, v2) - torch.min(y1, v1))
    return (1 - iou + (hull - union) / (hull + eps)).mean()


def boxes(n: int) -> Inputs:
    def make(g: torch.Generator, dev: str) -> tuple:
        def one() -> torch.Tensor:
            lo = torch.rand(n, 2, generator=g) * 10
            return torch.cat([lo, lo + 1 + torch.rand(n, 2, generator=g) * 5], 1).to(dev)
        return one(), one()

    return make


@dataclass(frozen=True)
class Small:
    """A small-input row: ``ours``/``ref`` name a module of ``optimlab.nn``/``torch.nn`` (or are callables)."""

    label: str
    ours: str | Callable[..., Any]
    inputs: Inputs
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad_args: tuple[int, ...] = (0,)
    ref: str | Callable[..., Any] | None = None


n, c = 32, 10
SMALL: list[Small] = [
    Small("CrossEntropyLoss", "CrossEntropyLoss", logits_idx(n, c)),
    Small("CrossEntropyLoss label_smoothing", "CrossEntropyLoss", logits_idx(n, c), {"label_smoothing": 0.1}),
    Small("CrossEntropyLoss weight+ignore", "CrossEntropyLoss", logits_idx(n, c),
          {"weight": torch.rand(c) + 0.5, "ignore_index": 3}),
    Small("CrossEntropyLoss probabilities", "CrossEntropyLoss", logits_probs(n, c)),
    Small("CrossEntropyLoss 2-D (4, 10, 4, 4)", "CrossEntropyLoss", logits_idx(4, c, 4, 4)),
    Small("NLLLoss", "NLLLoss", log_probs_idx(n, c)),
    Small("BCELoss", "BCELoss", same(n, c, "prob", "unit")),
    Small("BCEWithLogitsLoss", "BCEWithLogitsLoss", same(n, c, "randn", "unit")),
    Small("KLDivLoss batchmean", "KLDivLoss", same(n, c, "logsoftmax", "softmax"), {"reduction": "batchmean"}),
    Small("PoissonNLLLoss", "PoissonNLLLoss", same(n, c, "randn", "positive")),
    Small("GaussianNLLLoss", "GaussianNLLLoss", same(n, c, "randn", "randn", "positive"), grad_args=(0, 2)),
    Small("CTCLoss T=20 N=4 S=5 C=8", "CTCLoss", ctc_inputs(20, 4, 5, 8)),
    Small("MSELoss", "MSELoss", same(n, c)),
    Small("L1Loss", "L1Loss", same(n, c)),
    Small("HuberLoss", "HuberLoss", same(n, c)),
    Small("SmoothL1Loss", "SmoothL1Loss", same(n, c)),
    Small("MarginRankingLoss", "MarginRankingLoss", with_signs(n, c, 2), grad_args=(0, 1)),
    Small("HingeEmbeddingLoss", "HingeEmbeddingLoss", with_signs(n, c)),
    Small("SoftMarginLoss", "SoftMarginLoss", with_signs(n, c)),
    Small("MultiLabelSoftMarginLoss", "MultiLabelSoftMarginLoss", same(n, c, "randn", "unit")),
    Small("CosineEmbeddingLoss", "CosineEmbeddingLoss", with_signs(n, c, 2, (n,)), grad_args=(0, 1)),
    Small("MultiMarginLoss", "MultiMarginLoss", logits_idx(n, c)),
    Small("MultiLabelMarginLoss", "MultiLabelMarginLoss", multilabel(n, c, 3)),
    Small("TripletMarginLoss", "TripletMarginLoss", same(n, c, "randn", "randn", "randn"), grad_args=(0, 1, 2)),
    Small("TripletMarginWithDistanceLoss", "TripletMarginWithDistanceLoss", same(n, c, "randn", "randn", "randn"),
          grad_args=(0, 1, 2)),
    Small("F.cross_entropy", lambda x, y: _of().cross_entropy(x, y), logits_idx(n, c),
          ref=lambda x, y: torch.nn.functional.cross_entropy(x, y)),
    Small("F.nll_loss", lambda x, y: _of().nll_loss(x, y), log_probs_idx(n, c),
          ref=lambda x, y: torch.nn.functional.nll_loss(x, y)),
    Small("F.mse_loss", lambda x, y: _of().mse_loss(x, y), same(n, c),
          ref=lambda x, y: torch.nn.functional.mse_loss(x, y)),
    Small("F.smooth_l1_loss", lambda x, y: _of().smooth_l1_loss(x, y), same(n, c),
          ref=lambda x, y: torch.nn.functional.smooth_l1_loss(x, y)),
    Small("F.binary_cross_entropy_with_logits", lambda x, y: _of().binary_cross_entropy_with_logits(x, y),
          same(n, c, "randn", "unit"), ref=lambda x, y: torch.nn.functional.binary_cross_entropy_with_logits(x, y)),
    Small("SigmoidFocalLoss (vs composition)", "SigmoidFocalLoss", same(n, c, "randn", "unit"), ref=_focal_ref),
    Small("SoftmaxFocalLoss (vs composition)", "SoftmaxFocalLoss", logits_idx(n, c), ref=_softmax_focal_ref),
    Small("GIoULoss 32 boxes (vs composition)", "GIoULoss", boxes(n), ref=_giou_ref),
]


def _of() -> Any:
    import optimlab.nn.functional as OF

    return OF


def _small_callables(row: Small) -> tuple[Callable[..., Any], Callable[..., Any]]:
    import optimlab.nn as onn

    ours = getattr(onn, row.ours)(**row.kwargs) if isinstance(row.ours, str) else row.ours
    ref = row.ref if row.ref is not None else row.ours
    ref = getattr(torch.nn, ref)(**row.kwargs) if isinstance(ref, str) else ref
    return ours, ref


def _calls(fn: Callable[..., Any], args: list[Any], calls: int, backward: bool) -> float:
    """CPU seconds of this thread per call of ``fn(*args)`` (and its backward) averaged over ``calls`` calls: with
    one intra-op thread every kernel runs on the calling thread, and the thread's CPU time leaves out the time
    other processes on a shared machine take the core away (wall time moved by ±30–50% between runs)."""
    t0 = time.thread_time()
    if backward:
        for _ in range(calls):
            fn(*args).backward()
    else:
        with torch.no_grad():
            for _ in range(calls):
                fn(*args)
    return (time.thread_time() - t0) / calls


def aten_calls(fn: Callable[..., Any], args: list[Any], backward: bool) -> int:
    """ATen operator calls of one ``fn(*args)`` (and its backward): the deterministic measure of per-call work,
    beside the noisy timings (a ``TorchDispatchMode`` sees every call that reaches a kernel)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func: Any, types: Any, a: tuple = (), kw: dict | None = None) -> Any:
            Count.n += 1
            return func(*a, **(kw or {}))

    for t in args:
        if isinstance(t, torch.Tensor):
            t.grad = None
    with Count():
        if backward:
            fn(*args).backward()
        else:
            with torch.no_grad():
                fn(*args)
    return Count.n


def measure_small(row: Small, rounds: int = 7, calls: int = 200) -> dict[str, Any]:
    """Per-call microseconds of forward+backward and of a ``no_grad`` forward, both libraries, in paired rounds
    (alternating who goes first); ratios are the median of the rounds' ratios."""
    ours, ref = _small_callables(row)
    args = _leaf_inputs(Row(row.label, "", row.inputs, {}, row.grad_args), "cpu")
    out: dict[str, Any] = {"row": row.label}
    for mode, backward in (("fwd_bwd", True), ("no_grad", False)):
        for fn in (ours, ref):
            _calls(fn, args, calls // 4, backward)  # warm-up
        t: dict[str, list[float]] = {"ours": [], "torch": []}
        for i in range(rounds):
            pair = (("ours", ours), ("torch", ref))
            for name, fn in pair if i % 2 == 0 else pair[::-1]:
                t[name].append(_calls(fn, args, calls, backward) * 1e6)
        out[mode] = (statistics.median(t["ours"]), statistics.median(t["torch"]),
                     statistics.median(a / b for a, b in zip(t["ours"], t["torch"], strict=True)))
        out[mode + "_aten"] = (aten_calls(ours, args, backward), aten_calls(ref, args, backward))
    return out


def table_small(results: list[dict[str, Any]]) -> str:
    lines = ["| loss (small input) | fwd+bwd torch (µs) | fwd+bwd ours (µs) | ratio | ATen calls ours/torch | "
             "no_grad torch (µs) | no_grad ours (µs) | ratio | ATen calls ours/torch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        (fo, ft, fr), (no, nt, nr) = r["fwd_bwd"], r["no_grad"]
        (fa, fb), (na, nb) = r["fwd_bwd_aten"], r["no_grad_aten"]
        lines.append(f"| {r['row']} | {ft:.1f} | {fo:.1f} | {fr:.2f} | {fa}/{fb} | {nt:.1f} | {no:.1f} | {nr:.2f} | "
                     f"{na}/{nb} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- measurement
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _leaf_inputs(row: Row, device: str, seed: int = 0) -> list[Any]:
    args = list(row.inputs(torch.Generator().manual_seed(seed), device))
    for i in row.grad_args:
        args[i] = args[i].detach().clone().requires_grad_(True)
    return args


def _step(loss: torch.nn.Module, args: list[Any]) -> None:
    out = loss(*args)
    out.backward(torch.ones_like(out) if out.dim() else None)


def saved_bytes(loss: torch.nn.Module, args: list[Any]) -> int:
    """Bytes autograd saves for backward, excluding the inputs' and the module's own tensors."""
    from optimlab.parity.memory import saved_bytes as measure

    return measure(loss, *args, exclude=[*loss.parameters(), *loss.buffers()])


def build(row: Row, device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    import optimlab.nn as onn

    return getattr(onn, row.loss)(**row.kwargs).to(device), getattr(torch.nn, row.loss)(**row.kwargs).to(device)


def measure(row: Row, device: str = "cpu", repeat: int = 15, warmup: int = 3) -> dict[str, Any]:
    """Median forward+backward milliseconds of ours and torch's (interleaved), their ratio, and saved bytes."""
    ours, ref = build(row, device)
    args = _leaf_inputs(row, device)
    times: dict[str, list[float]] = {"ours": [], "torch": []}
    for _ in range(warmup):
        _step(ours, args)
        _step(ref, args)
    for i in range(repeat):
        pair = (("ours", ours), ("torch", ref))
        for name, loss in pair if i % 2 == 0 else pair[::-1]:  # alternate who runs first
            for a in args:
                if isinstance(a, torch.Tensor):
                    a.grad = None
            _sync(device)
            t0 = time.perf_counter()
            _step(loss, args)
            _sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
    o, r = statistics.median(times["ours"]), statistics.median(times["torch"])
    paired = statistics.median(a / b for a, b in zip(times["ours"], times["torch"], strict=True))
    return {"row": row.label, "ours_ms": o, "torch_ms": r, "ratio": paired,  # a slow spell hits both of a round
            "ratio_min": min(times["ours"]) / min(times["torch"]),  # least disturbed by a busy machine
            "ours_saved": saved_bytes(ours, args), "torch_saved": saved_bytes(ref, args)}


def _mib(b: int) -> str:
    return f"{b / 2**20:.2f}"


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| loss | ours (ms) | torch (ms) | ratio (median) | ratio (min) | saved ours (MiB) | saved torch (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['row']} | {r['ours_ms']:.2f} | {r['torch_ms']:.2f} | {r['ratio']:.2f} | "
                     f"{r['ratio_min']:.2f} | {_mib(r['ours_saved'])} | {_mib(r['torch_saved'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", default="", help="substring of the row labels to run")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--markdown", default="", help="also write the table to this file")
    p.add_argument("--small", action="store_true", help="the small-input per-call section instead (CPU)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.small:
        return main_small(a)
    results = []
    for row in ROWS:
        if a.only.lower() in row.label.lower():
            results.append(measure(row, a.device, a.repeat))
            r = results[-1]
            print(f"{r['row']:42s} ours {r['ours_ms']:8.2f} ms  torch {r['torch_ms']:8.2f} ms  ratio {r['ratio']:.2f}  "
                  f"saved {_mib(r['ours_saved'])} / {_mib(r['torch_saved'])} MiB", flush=True)
    return _report(a, table(results), f"device={a.device} ")


def _report(a: argparse.Namespace, text: str, where: str) -> int:
    """Print a results table with the run's settings, and write it to ``--markdown`` when given."""
    print(f"\n{where}threads={torch.get_num_threads()} torch={torch.__version__}\n\n{text}")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")
    return 0


def main_small(a: argparse.Namespace) -> int:
    results = []
    for row in SMALL:
        if a.only.lower() in row.label.lower():
            results.append(measure_small(row, rounds=max(3, a.repeat // 2)))
            r = results[-1]
            (fo, ft, fr), (no, nt, nr) = r["fwd_bwd"], r["no_grad"]
            print(f"{row.label:40s} fwd+bwd {ft:7.1f} / {fo:7.1f} µs {fr:5.2f}x {r['fwd_bwd_aten']}  "
                  f"no_grad {nt:7.1f} / {no:7.1f} µs {nr:5.2f}x {r['no_grad_aten']}", flush=True)
    return _report(a, table_small(results), "")


# ------------------------------------------------------------------------------------------- pytest-benchmark
def _pytest_params() -> list:
    import pytest

    return [pytest.param(r, id=r.label) for r in ROWS]


try:
    import pytest

    @pytest.mark.parametrize("side", ["optimlab", "torch"])
    @pytest.mark.parametrize("row", _pytest_params())
    def test_loss_forward_backward(benchmark: Any, row: Row, side: str) -> None:
        """pytest-benchmark timing of one row and side (run with ``--benchmark-enable``)."""
        ours, ref = build(row, "cpu")
        args = _leaf_inputs(row, "cpu")
        benchmark(_step, ours if side == "optimlab" else ref, args)
except ImportError:  # pytest is a test-only dependency
    pass


if __name__ == "__main__":
    sys.exit(main())
