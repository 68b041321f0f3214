"""Training quality of AdamW with low-precision optimizer state (issue 27): the digits MLP
(examples/digits.py) and a small character-level GPT (nanoGPT-like) trained for a fixed number of steps
with fp32, bfloat16 and int8 state, beside the fp32 references (torch's AdamW, optimlab's fused AdamW) and
the peers' 8-bit AdamW (bitsandbytes, torchao). Every run of a task starts from the same weights and sees
the same batches; it writes a markdown table and a PNG of the loss curves.

    python examples/lowp_quality.py                     # both tasks, every optimizer -> docs/lowp_quality.md
    python examples/lowp_quality.py --quick --out /tmp/q.md   # seconds: a smoke run
    python examples/lowp_quality.py --tasks gpt --optimizers torch-fp32,optimlab-int8 --gpt-steps 200

The character corpus is the Python standard library's own source (the top-level ``*.py`` files under
``sysconfig.get_paths()["stdlib"]``, in sorted order, ASCII, the first ``--corpus-chars`` characters), so
it needs no download; it is fixed for a given Python version. Final training loss is the mean of the last
``--tail`` steps' minibatch losses (the batches are the same for every optimizer); held-out numbers are the
digits test split, and for the GPT the last 10% of the corpus (loss and next-character accuracy on fixed
windows). State bytes are counted from the optimizer's state tensors (inner tensors of tensor subclasses
included, shared tensors once), divided by the parameter count.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import platform
import statistics
import sys
import sysconfig
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits import load_data, make_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZERS = ["torch-fp32", "optimlab-fp32", "optimlab-bf16", "optimlab-int8", "bnb-8bit", "torchao-8bit"]
LABELS = {
    "torch-fp32": "torch AdamW (fp32 state)",
    "optimlab-fp32": "optimlab AdamW fused (fp32)",
    "optimlab-bf16": "optimlab AdamW fused, bf16 state",
    "optimlab-int8": "optimlab AdamW fused, int8 state",
    "bnb-8bit": "bitsandbytes AdamW8bit",
    "torchao-8bit": "torchao AdamW8bit",
}
STYLE = {  # colour and line style of each optimizer's curve
    "torch-fp32": dict(color="black", lw=3, alpha=0.35),
    "optimlab-fp32": dict(color="C0", lw=1.2, ls="--"),
    "optimlab-bf16": dict(color="C1", lw=1.4),
    "optimlab-int8": dict(color="C2", lw=1.4),
    "bnb-8bit": dict(color="C3", lw=1.2, ls=":"),
    "torchao-8bit": dict(color="C4", lw=1.2, ls="-."),
}


class Skip(Exception):
    """An optimizer that cannot run here; the message says why."""


def make_optimizer(name: str, params, lr: float, betas: tuple[float, float], weight_decay: float,
                   eps: float = 1e-8):
    """The AdamW of ``name``; ``Skip`` with the reason when it is not available."""
    kw = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "torch-fp32":
        return torch.optim.AdamW(params, **kw)
    if name.startswith("optimlab-"):
        import optimlab.optim as optim

        state_dtype = {"fp32": None, "bf16": torch.bfloat16, "int8": "int8"}[name.split("-")[1]]
        try:
            if state_dtype is None:
                return optim.AdamW(params, fused=True, **kw)
            return optim.AdamW(params, fused=True, state_dtype=state_dtype, **kw)
        except TypeError as e:
            raise Skip(f"optimlab.optim.AdamW has no state_dtype here ({e})") from e
    if name == "bnb-8bit":
        try:
            import bitsandbytes.optim as bnb_optim
        except Exception as e:  # not installed, or no usable backend
            raise Skip(f"bitsandbytes not importable ({type(e).__name__}: {e})") from e
        return bnb_optim.AdamW8bit(params, **kw)
    if name == "torchao-8bit":
        try:
            import torchao.optim as ao_optim
        except Exception as e:
            raise Skip(f"torchao not importable ({type(e).__name__}: {e})") from e
        return ao_optim.AdamW8bit(params, **kw)
    raise ValueError(name)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's lr; in place where it is a tensor (torchao keeps it in one, and its compiled step
    would recompile for each new Python float)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak``, then cosine decay to ``peak / 10``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _leaf_tensors(t: torch.Tensor):
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if is_traceable_wrapper_subclass(t):
        names, _ = t.__tensor_flatten__()
        for n in names:
            yield from _leaf_tensors(getattr(t, n))
    else:
        yield t


def state_bytes(optimizer: torch.optim.Optimizer) -> tuple[int, int, int]:
    """(bytes of all state tensors, parameter elements, elements of parameters whose state takes under
    6 bytes per element, i.e. is held in low precision)."""
    seen: set[tuple[int, int]] = set()
    total = n_params = n_low = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            n_params += p.numel()
            mine = 0
            for value in optimizer.state.get(p, {}).values():
                if not isinstance(value, torch.Tensor):
                    continue
                for leaf in _leaf_tensors(value):
                    key = (leaf.untyped_storage().data_ptr(), leaf.untyped_storage().nbytes())
                    nbytes = leaf.untyped_storage().nbytes()
                    if key in seen or nbytes == 0:
                        continue
                    seen.add(key)
                    mine += nbytes
            total += mine
            if mine < 6 * p.numel():
                n_low += p.numel()
    return total, n_params, n_low


# --- task 1: digits -------------------------------------------------------------------------------------

@dataclass
class Result:
    task: str
    optimizer: str
    losses: list[float] = field(default_factory=list)
    final_loss: float = float("nan")
    heldout_loss: float = float("nan")
    accuracy: float = float("nan")
    bytes_per_param: float = float("nan")
    low_fraction: float = float("nan")
    seconds: float = float("nan")
    step_ms: list[float] = field(default_factory=list)
    skipped: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.step_ms) if self.step_ms else float("nan")


def run_digits(name: str, steps: int, tail: int, seed: int = 0, batch_size: int = 64) -> Result:
    """The digits MLP of examples/digits.py (its data, model and loss), ``steps`` AdamW steps."""
    res = Result("digits", name)
    x_train, y_train, x_test, y_test = load_data(seed)
    model = make_model(seed)  # seeds torch's default generator: the optimizer's rounding bits follow it
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    peak = 1e-2
    optimizer = make_optimizer(name, model.parameters(), lr=peak, betas=(0.9, 0.999), weight_decay=1e-2)
    order = torch.Generator().manual_seed(seed)
    batches: list[torch.Tensor] = []
    start = time.perf_counter()
    for step in range(steps):
        if not batches:
            batches = list(torch.randperm(len(x_train), generator=order).split(batch_size))
        idx = batches.pop(0)
        t0 = time.perf_counter()
        set_lr(optimizer, lr_at(step, steps, peak, warmup=max(1, steps // 20)))
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
        res.step_ms.append(1e3 * (time.perf_counter() - t0))
        res.losses.append(loss.item())
    res.seconds = time.perf_counter() - start
    with torch.no_grad():
        logits = model(x_test)
        res.heldout_loss = criterion(logits, y_test).item()
        res.accuracy = (logits.argmax(1) == y_test).float().mean().item()
    _finish(res, optimizer, tail)
    return res


# --- task 2: a character-level GPT ------------------------------------------------------------------------

def load_corpus(chars: int) -> str:
    """The first ``chars`` characters of the stdlib's top-level modules, sorted by name, as printable ASCII
    (tabs to spaces; other bytes outside 32..126 and newline to '?')."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    keep = bytes(range(32, 127)) + b"\n"
    table = bytes(b if b in keep else ord("?") for b in range(256))
    parts: list[str] = []
    n = 0
    for path in sorted(stdlib.glob("*.py")):
        raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\t", b"    ")
        text = raw.translate(table).decode("ascii")
        parts.append(text)
        n += len(text)
        if n >= chars:
            break
    return "".join(parts)[:chars]


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.fc_out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x))))


class CharGPT(nn.Module):
    """nanoGPT's architecture, small: token + position embeddings, pre-LayerNorm blocks of causal
    self-attention and a 4x MLP, a final LayerNorm and a head tied to the token embedding."""

    def __init__(self, vocab: int, width: int = 128, layers: int = 2, heads: int = 4, context: int = 64) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        for name, p in self.named_parameters():  # nanoGPT's initialisation
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "fc_out.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tok.weight.t()


def run_gpt(name: str, steps: int, tail: int, data: dict, seed: int = 0, batch_size: int = 32,
            context: int = 64, width: int = 128, layers: int = 2, eval_windows: int = 512) -> Result:
    res = Result("char-GPT", name)
    train, val = data["train"], data["val"]
    torch.manual_seed(seed)  # the weights, and then the optimizer's rounding bits
    model = CharGPT(data["vocab"], width=width, layers=layers, context=context)
    peak = 3e-3
    optimizer = make_optimizer(name, model.parameters(), lr=peak, betas=(0.9, 0.99), weight_decay=0.1)
    sampler = torch.Generator().manual_seed(seed + 1)
    offsets = torch.arange(context + 1)
    start = time.perf_counter()
    for step in range(steps):
        starts = torch.randint(len(train) - context - 1, (batch_size,), generator=sampler)
        chunk = train[starts[:, None] + offsets]
        t0 = time.perf_counter()
        set_lr(optimizer, lr_at(step, steps, peak, warmup=max(1, steps // 10)))
        optimizer.zero_grad(set_to_none=True)
        logits = model(chunk[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        res.step_ms.append(1e3 * (time.perf_counter() - t0))
        res.losses.append(loss.item())
    res.seconds = time.perf_counter() - start
    # held out: fixed, evenly spaced windows of the validation text
    with torch.no_grad():
        starts = torch.linspace(0, len(val) - context - 2, eval_windows).long()
        total_loss = correct = count = 0.0
        for batch in starts.split(64):
            chunk = val[batch[:, None] + offsets]
            logits = model(chunk[:, :-1])
            target = chunk[:, 1:]
            total_loss += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                          reduction="sum").item()
            correct += (logits.argmax(-1) == target).sum().item()
            count += target.numel()
        res.heldout_loss, res.accuracy = total_loss / count, correct / count
    _finish(res, optimizer, tail)
    return res


def _finish(res: Result, optimizer: torch.optim.Optimizer, tail: int) -> None:
    res.final_loss = sum(res.losses[-tail:]) / len(res.losses[-tail:])
    nbytes, n_params, n_low = state_bytes(optimizer)
    res.bytes_per_param, res.low_fraction = nbytes / n_params, n_low / n_params


def gpt_data(corpus_chars: int) -> dict:
    text = load_corpus(corpus_chars)
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([lookup[c] for c in text], dtype=torch.long)
    n_train = int(0.9 * len(ids))
    return {"train": ids[:n_train], "val": ids[n_train:], "vocab": len(chars), "chars": len(text)}


# --- report -----------------------------------------------------------------------------------------------

def table(results: list[Result]) -> str:
    head = ("| task | optimizer | state bytes / param | low-precision share | final train loss | ratio to fp32 "
            "| held-out loss | accuracy | wall time | median step |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    ref = {r.task: r.final_loss for r in results if r.optimizer == "torch-fp32" and not r.skipped}
    for r in results:
        if r.skipped:
            lines.append(f"| {r.task} | {LABELS[r.optimizer]} | skipped: {r.skipped.replace('|', '/')} | | | | | | | |")
            continue
        ratio = r.final_loss / ref[r.task] if r.task in ref else float("nan")
        lines.append(f"| {r.task} | {LABELS[r.optimizer]} | {r.bytes_per_param:.2f} | {100 * r.low_fraction:.1f}% "
                     f"| {r.final_loss:.4f} | {ratio:.4f} | {r.heldout_loss:.4f} | {100 * r.accuracy:.2f}% "
                     f"| {r.seconds:.1f} s | {r.median_ms:.1f} ms |")
    return "\n".join(lines)


def smoothed_ce_floor(classes: int, smoothing: float) -> float:
    """The least label-smoothed cross-entropy: that of predicting the smoothed target itself."""
    hit, miss = 1 - smoothing + smoothing / classes, smoothing / classes
    return -(hit * math.log(hit) + (classes - 1) * miss * math.log(miss))


def moving_average(xs: list[float], n: int) -> list[float]:
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= n:
            acc -= xs[i - n]
        out.append(acc / min(i + 1, n))
    return out


def plot(results: list[Result], path: Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r.task for r in results))
    fig, axes = plt.subplots(2, len(tasks), figsize=(6.5 * len(tasks), 7.5), squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1]})
    for col, task in enumerate(tasks):
        ax_loss, ax_ratio = axes[0, col], axes[1, col]
        runs = [r for r in results if r.task == task and not r.skipped]
        ref = next((moving_average(r.losses, window) for r in runs if r.optimizer == "torch-fp32"), None)
        for r in runs:
            smooth = moving_average(r.losses, window)
            steps = range(1, len(smooth) + 1)
            ax_loss.plot(steps, smooth, label=LABELS[r.optimizer], **STYLE[r.optimizer])
            if ref is not None:
                ax_ratio.plot(steps, [a / b for a, b in zip(smooth, ref, strict=True)], **STYLE[r.optimizer])
        ax_loss.set_yscale("log")
        ax_loss.set(title=f"{task}: training loss ({window}-step moving average)", ylabel="cross-entropy")
        ax_loss.legend(fontsize=8)
        ax_ratio.axhspan(0.98, 1.02, color="green", alpha=0.1, label="within 2%")
        half = max(1, len(ref) // 2) if ref else 1
        # the second half: early ratios swing with the fast initial descent
        ax_ratio.set_xlim(half, len(ref) if ref else None)
        ax_ratio.set(xlabel="step", ylabel="loss / torch fp32 loss", title="ratio to torch fp32 (second half)")
        ax_ratio.legend(fontsize=8)
        for ax in (ax_loss, ax_ratio):
            ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def seed_table(by_seed: dict[int, list[Result]]) -> str:
    """Final train loss over torch fp32's of the same seed, per seed, and their mean."""
    seeds = list(by_seed)
    head = "| task | optimizer | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | max |"
    lines = [head, "|" + "---|" * (len(seeds) + 4)]
    first = by_seed[seeds[0]]
    for row in first:
        ratios = []
        for s in seeds:
            same = {(r.task, r.optimizer): r for r in by_seed[s]}
            r, ref = same.get((row.task, row.optimizer)), same.get((row.task, "torch-fp32"))
            ok = r is not None and ref is not None and not r.skipped and not ref.skipped
            ratios.append(r.final_loss / ref.final_loss if ok else float("nan"))
        done = [x for x in ratios if math.isfinite(x)]
        if not done:
            continue
        cells = " | ".join(f"{x:.4f}" if math.isfinite(x) else "-" for x in ratios)
        lines.append(f"| {row.task} | {LABELS[row.optimizer]} | {cells} | {sum(done) / len(done):.4f} "
                     f"| {max(done):.4f} |")
    return "\n".join(lines)


def optimlab_revision() -> str:
    """The commit of the optimlab checkout that ran, and whether optimlab/ had uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "optimlab"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "optimlab (no git checkout)"
    return f"optimlab {head}" + (" with uncommitted changes in optimlab/" if dirty else "")


def markdown(results: list[Result], png: Path, md: Path, argv: list[str], settings: str, spread: str = "",
             seeds: tuple[int, ...] | list[int] = (0,)) -> str:
    try:
        rel = png.relative_to(md.parent)
    except ValueError:
        rel = png
    skipped = [f"- {LABELS[r.optimizer]} ({r.task}): {r.skipped}" for r in results if r.skipped]
    versions = [optimlab_revision(), f"torch {torch.__version__}", f"Python {platform.python_version()}"]
    for dist in ("bitsandbytes", "torchao"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} not installed")
    floor = smoothed_ce_floor(10, 0.1)
    digits = [r for r in results if r.task == "digits" and not r.skipped]
    ref = next((r for r in digits if r.optimizer == "torch-fp32"), None)
    excess = []
    if ref is not None and ref.final_loss > floor:
        excess = ["", f"The digits loss is label-smoothed (0.1, as in `examples/digits.py`), so it cannot go below "
                  f"{floor:.4f}: a ratio of 1.02 there is a larger relative change in the part of the loss that "
                  f"training can still remove. Final train loss above that floor, over torch fp32's: "
                  + ", ".join(f"{LABELS[r.optimizer]} {(r.final_loss - floor) / (ref.final_loss - floor):.3f}"
                              for r in digits) + "."]
    return "\n".join([
        "# Training quality with low-precision optimizer state",
        "",
        "Generated by `python examples/lowp_quality.py " + " ".join(argv) + "` "
        f"({', '.join(versions)}; {torch.get_num_threads()} CPU thread(s)).",
        "",
        settings,
        "",
        "*state bytes / param*: bytes of the optimizer's state tensors at the end (a tensor subclass's inner "
        "tensors counted, shared tensors once) over the parameter count. *Low-precision share*: the fraction of "
        "parameters whose state takes under 6 bytes per element; the others (tensors under 4,096 elements: "
        "biases, LayerNorms) keep fp32 state, in optimlab as in both peers. *Final train loss*: the mean of the "
        "last minibatch losses (same batches for every optimizer); *ratio to fp32*: over torch's AdamW. "
        "*Wall time*: the training loop (torchao's includes `torch.compile` of its step, optimlab's fused "
        "kernels their first-call build); *median step*: one training step (forward, backward, optimizer). "
        "Times come from a 2-core machine shared with other work and are indicative only; the optimizer step "
        "alone is timed by `python -m optimlab bench --state`.",
        "",
        f"Seed {seeds[0]} (weights, batches and rounding bits):",
        "",
        table(results),
        *excess,
        "",
        *([f"Run-to-run spread: final train loss over torch fp32's, each seed (it sets the initial weights, the "
           f"batches and the rounding bits; the plot is seed {seeds[0]}'s):", "", spread, ""] if spread else []),
        f"![loss curves]({rel.as_posix()})",
        "",
        *(["Skipped:", "", *skipped, ""] if skipped else []),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="steps of both tasks (default: per task)")
    parser.add_argument("--digits-steps", type=int, default=600)
    parser.add_argument("--gpt-steps", type=int, default=400)
    parser.add_argument("--tail", type=int, default=20, help="final train loss: mean of the last TAIL steps")
    parser.add_argument("--tasks", default="digits,gpt")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS), help=f"comma-separated, of {OPTIMIZERS}")
    parser.add_argument("--corpus-chars", type=int, default=1_000_000)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", default="0", help="comma-separated; the first one's runs make the main "
                        "table and the plot, all of them a table of final-loss ratios (run-to-run spread)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "lowp_quality.md"),
                        help="markdown file; the PNG goes to img/<name>.png beside it")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds (few steps, small corpus)")
    args = parser.parse_args(argv)
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    slow = {}
    if args.quick:
        args.digits_steps, args.gpt_steps, args.corpus_chars, args.tail = 20, 6, 50_000, 5
        if "--optimizers" not in " ".join(raw_argv):
            slow["torchao-8bit"] = "not in --quick: torch.compile of its step takes ~20-40 s per task on a CPU"
    if args.steps is not None:
        args.digits_steps = args.gpt_steps = args.steps
    torch.set_num_threads(args.threads)
    names = [n for n in args.optimizers.split(",") if n]
    tasks = [t for t in args.tasks.split(",") if t]
    bad = (set(names) - set(OPTIMIZERS)) | (set(tasks) - {"digits", "gpt"})
    if bad:
        parser.error(f"unknown {sorted(bad)}")
    md = Path(args.out)
    png = md.parent / "img" / f"{md.stem}.png"

    results: list[Result] = []
    data = gpt_data(args.corpus_chars) if "gpt" in tasks else None
    settings = []
    if "digits" in tasks:
        settings.append(f"- **digits**: the MLP of `examples/digits.py` (64-128-64-10, its label-smoothed "
                        f"cross-entropy and 80/20 split), batch 64, {args.digits_steps} steps, lr 1e-2 (warm-up "
                        f"then cosine to 1e-3), betas (0.9, 0.999), weight decay 1e-2; held out: the 360 test "
                        f"digits.")
    if data is not None:
        settings.append(f"- **char-GPT**: {args.layers} pre-LayerNorm blocks, width 128, 4 heads, context 64, "
                        f"tied head; {data['chars']:,} characters of the stdlib's top-level `*.py` "
                        f"(vocabulary {data['vocab']}), 90/10 split; batch 32, {args.gpt_steps} steps, lr 3e-3 "
                        f"(warm-up then cosine to 3e-4), betas (0.9, 0.99), weight decay 0.1, gradient clipping "
                        f"1.0; held out: loss and next-character accuracy on 512 windows of the last 10%.")
    seeds = [int(x) for x in args.seeds.split(",") if x]
    by_seed: dict[int, list[Result]] = {}
    for seed, task, name in ((s, t, n) for s in seeds for t in tasks for n in names):
        t0 = time.perf_counter()
        try:
            if name in slow:
                raise Skip(slow[name])
            if task == "digits":
                r = run_digits(name, args.digits_steps, args.tail, seed=seed)
            else:
                r = run_gpt(name, args.gpt_steps, args.tail, data, seed=seed, layers=args.layers)
        except Skip as e:
            r = Result("digits" if task == "digits" else "char-GPT", name, skipped=str(e))
        except Exception as e:  # a peer that fails at run time: reported, not fatal
            traceback.print_exc(limit=3)
            r = Result("digits" if task == "digits" else "char-GPT", name,
                       skipped=f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        by_seed.setdefault(seed, []).append(r)
        if r.skipped:
            print(f"seed {seed} {r.task:>8} {name:>14}: SKIPPED ({r.skipped})", flush=True)
        else:
            print(f"seed {seed} {r.task:>8} {name:>14}: final train loss {r.final_loss:.4f}  "
                  f"held-out {r.heldout_loss:.4f}"
                  f"  accuracy {100 * r.accuracy:.2f}%  state {r.bytes_per_param:.2f} B/param "
                  f"(low precision: {100 * r.low_fraction:.1f}% of parameters)  {r.seconds:.1f} s "
                  f"[{time.perf_counter() - t0:.1f} s]", flush=True)
    results = by_seed[seeds[0]]
    print()
    print(table(results))
    spread = seed_table(by_seed) if len(seeds) > 1 else ""
    if spread:
        print()
        print(spread)
    if not any(r.losses for r in results):
        print("no run completed")
        return 1
    if any(not math.isfinite(r.final_loss) for r in results if not r.skipped):
        print("NON-FINITE LOSS")
        return 1
    plot(results, png, window=max(1, min(args.tail, 20)))
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(markdown(results, png, md, raw_argv, "\n".join(settings), spread, seeds) + "\n")
    print(f"\nwritten: {md}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
