"""Handwritten digits (scikit-learn's 8x8 images, 10 classes), trained the ordinary torch way, with
torch's or optimlab's loss, optimizer and LR scheduler: the only difference is which package the loss
and ``optim`` come from.

    python examples/digits.py                       # both implementations, side by side, and a PNG
    python examples/digits.py --impl optimlab       # one of them
    python examples/digits.py --epochs 5 --png curves.png

With ``--impl both`` it prints each epoch's training loss and test accuracy of the two runs, checks that
they agree (float32 tolerance; exit status 1 if not) and plots both curves.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn


def implementation(impl: str):
    """(losses, optim) of torch or optimlab: the one switch between the two."""
    if impl == "torch":
        import torch.nn as losses
        import torch.optim as optim
    else:
        import optimlab.nn as losses
        import optimlab.optim as optim
    return losses, optim


def load_data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """The 1,797 digits scaled to [0, 1]; a fixed 80/20 train/test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.8 * len(x))
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def train(impl: str, epochs: int = 30, batch_size: int = 64, seed: int = 0, **opt_kwargs) -> dict:
    """Train from the same initial weights on the same batches; per-epoch curves and the final model."""
    losses, optim = implementation(impl)
    x_train, y_train, x_test, y_test = load_data(seed)
    model = make_model(seed)
    criterion = losses.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2, **opt_kwargs)
    steps_per_epoch = (len(x_train) + batch_size - 1) // batch_size
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=epochs * steps_per_epoch)
    order = torch.Generator().manual_seed(seed)
    curves = {"train_loss": [], "test_loss": [], "test_acc": [], "lr": []}
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            logits = model(x_test)
            curves["test_loss"].append(criterion(logits, y_test).item())
            curves["test_acc"].append((logits.argmax(1) == y_test).float().mean().item())
        curves["train_loss"].append(total / len(x_train))
        curves["lr"].append(scheduler.get_last_lr()[0])
    curves["seconds"] = time.perf_counter() - start
    curves["model"] = model
    return curves


@torch.no_grad()
def max_weight_diff(a: nn.Module, b: nn.Module) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def compare_runs(ref: dict, ours: dict, rtol: float = 1e-4, atol: float = 1e-6) -> tuple[bool, str]:
    """Whether optimlab's curves equal torch's: every loss within ``rtol`` (float32 rounding of a
    differently ordered loss, carried through training), accuracies identical."""
    worst = max(abs(a - b) / max(abs(b), 1e-12) for key in ("train_loss", "test_loss")
                for a, b in zip(ours[key], ref[key], strict=True))
    same_acc = ours["test_acc"] == ref["test_acc"]
    ok = same_acc and all(abs(a - b) <= atol + rtol * abs(b) for key in ("train_loss", "test_loss")
                          for a, b in zip(ours[key], ref[key], strict=True))
    return ok, (f"largest relative loss difference {worst:.2e}; test accuracies "
                f"{'identical' if same_acc else 'DIFFER'}; largest weight difference "
                f"{max_weight_diff(ours['model'], ref['model']):.2e}")


def plot(ref: dict, ours: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(ref["train_loss"]) + 1)
    fig, (ax_loss, ax_acc, ax_diff) = plt.subplots(1, 3, figsize=(15, 4), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for curves, label, style in ((ref, "torch", dict(lw=4, alpha=0.35)), (ours, "optimlab", dict(lw=1.5, ls="--"))):
        ax_loss.plot(epochs, curves["train_loss"], label=f"{label} train", color="C0", **style)
        ax_loss.plot(epochs, curves["test_loss"], label=f"{label} test", color="C1", **style)
        ax_acc.plot(epochs, [100 * a for a in curves["test_acc"]], label=label, color="C2", **style)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (label smoothing 0.1)", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="accuracy on 360 held-out digits")
    for key, color in (("train_loss", "C0"), ("test_loss", "C1")):
        rel = [max(abs(a - b) / abs(b), 1e-9) for a, b in zip(ours[key], ref[key], strict=True)]
        ax_diff.semilogy(epochs, rel, "o-", ms=3, color=color, label=key.replace("_", " "))
    ax_diff.axhline(torch.finfo(torch.float32).eps, color="gray", ls=":", label="float32 epsilon")
    ax_diff.set(xlabel="epoch", ylabel="|optimlab - torch| / torch", title="relative difference (1e-9 = equal)")
    for ax in (ax_loss, ax_acc, ax_diff):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("scikit-learn digits, MLP, AdamW + OneCycleLR: torch (thick) vs optimlab (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["torch", "optimlab", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--png", default="digits.png", help="where to write the plot (--impl both)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small model: deterministic and no faster with threads
    if args.impl != "both":
        run = train(args.impl, args.epochs)
        for e, (loss, acc) in enumerate(zip(run["train_loss"], run["test_acc"], strict=True), 1):
            print(f"epoch {e:3d}  train loss {loss:.6f}  test accuracy {100 * acc:.2f}%")
        return 0
    ref, ours = train("torch", args.epochs), train("optimlab", args.epochs)
    print(f"{'epoch':>5} | {'train loss: torch':>17} {'optimlab':>10} | {'test acc: torch':>15} {'optimlab':>9}")
    for e in range(args.epochs):
        print(f"{e + 1:5d} | {ref['train_loss'][e]:17.6f} {ours['train_loss'][e]:10.6f} | "
              f"{100 * ref['test_acc'][e]:14.2f}% {100 * ours['test_acc'][e]:8.2f}%")
    ok, summary = compare_runs(ref, ours)
    print(f"{'EQUAL' if ok else 'NOT EQUAL'}: {summary}")
    print(f"time: torch {ref['seconds']:.2f} s, optimlab {ours['seconds']:.2f} s")
    plot(ref, ours, args.png)
    print(f"plot written to {args.png}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
