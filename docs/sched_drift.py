"""Measure how far torch's recursive ("chainable") schedulers drift from their closed forms.

Steps torch's scheduler N times and compares each lr with optimlab's ``lr_at`` (the closed form).
Writes docs/figures/sched_drift_*.png and prints the Markdown table used in docs/sched.md.

    .venv/bin/python docs/sched_drift.py [N]
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
import torch.optim.lr_scheduler as T

from optimlab.optim import lr_scheduler as L

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
OUT = Path(__file__).parent / "figures"

CONFIGS = {
    "CosineAnnealingLR(T_max=10)": ("CosineAnnealingLR", {"T_max": 10}),
    "CosineAnnealingLR(T_max=100)": ("CosineAnnealingLR", {"T_max": 100}),
    "CosineAnnealingLR(T_max=1000)": ("CosineAnnealingLR", {"T_max": 1000}),
    "CosineAnnealingLR(T_max=10000)": ("CosineAnnealingLR", {"T_max": 10000}),
    "CosineAnnealingLR(T_max=100, eta_min=1e-3)": ("CosineAnnealingLR", {"T_max": 100, "eta_min": 1e-3}),
    "ExponentialLR(gamma=0.9999)": ("ExponentialLR", {"gamma": 0.9999}),
    "ExponentialLR(gamma=1.00001)": ("ExponentialLR", {"gamma": 1.00001}),
    "StepLR(step_size=10, gamma=0.999)": ("StepLR", {"step_size": 10, "gamma": 0.999}),
    f"LinearLR(start_factor=0.001, total_iters={N})": ("LinearLR", {"start_factor": 0.001, "total_iters": N}),
    f"PolynomialLR(total_iters={N}, power=2)": ("PolynomialLR", {"total_iters": N, "power": 2.0}),
}


def measure(name: str, kwargs: dict) -> tuple[list[float], list[float]]:
    """Per step: |torch - closed| / base_lr and |torch - closed| / |closed|."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ref = getattr(T, name)(opt, **kwargs)
    closed = getattr(L, name)(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), **kwargs)
    by_base, by_value = [], []
    for t in range(N + 1):
        if t:
            opt.step()
            ref.step()
        lr, c = opt.param_groups[0]["lr"], closed.lr_at(t)[0]
        by_base.append(abs(lr - c) / 0.1)
        by_value.append(abs(lr - c) / abs(c) if c else 0.0)
    return by_base, by_value


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    warnings.simplefilter("ignore")
    OUT.mkdir(exist_ok=True)
    results = {label: measure(*cfg) for label, cfg in CONFIGS.items()}
    print(f"| scheduler (torch, {N:,} steps) | max abs drift / base_lr | at step | max drift / lr | at 10,000 steps |")
    print("|---|---|---|---|---|")
    for label, (b, v) in results.items():
        i = max(range(len(b)), key=b.__getitem__)
        print(f"| `{label}` | {b[i]:.2e} | {i:,} | {max(v):.2e} | {max(b[:10_001]):.2e} |")
    for kind, title in (("cosine", "CosineAnnealingLR"), ("other", "ratio schedulers")):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for label, (b, _) in results.items():
            if (kind == "cosine") != label.startswith("Cosine"):
                continue
            running = []
            m = 0.0
            for x in b:
                m = max(m, x)
                running.append(max(m, 1e-18))
            ax.plot(range(N + 1), running, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("scheduler step")
        ax.set_ylabel("running max |torch lr − closed form| / base_lr")
        ax.set_title(f"Drift of torch's recursive {title} from the closed form")
        ax.axhline(1e-9, color="grey", linestyle="--", linewidth=0.8, label="1e-9 (lr_at acceptance bound)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(OUT / f"sched_drift_{kind}.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
