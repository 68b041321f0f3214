"""optimlab inside Hugging Face ``transformers.Trainer`` with ``optimizers=(optimizer, scheduler)``,
against the same run with torch's classes (a test extra: ``optimlab[stacks]``)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import nn

import optimlab.nn as onn
import optimlab.optim as oo
from optimlab.parity import compare

transformers = pytest.importorskip("transformers", reason="transformers is a test extra: pip install -e '.[stacks]'")
pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (in optimlab[stacks])")
logging.getLogger("transformers").setLevel(logging.ERROR)

IMPLS = {"optimlab": (onn, oo), "torch": (torch.nn, torch.optim)}
STEPS = 12


class _Classifier(nn.Module):
    """A plain module that answers the Trainer's calling convention: ``forward(x, labels) -> {"loss"}``."""

    def __init__(self, loss_fn: nn.Module) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
        self.loss_fn = loss_fn

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        return {"logits": logits} if labels is None else {"loss": self.loss_fn(logits, labels), "logits": logits}


def _train(impl: str, out_dir: str, schedule: str = "lambda") -> tuple[nn.Module, list[float]]:
    nn_ns, optim_ns = IMPLS[impl]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, :4].sum(1) > 0).long() + (x[:, 4:].sum(1) > 0).long()
    data = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
    model = _Classifier(nn_ns.CrossEntropyLoss(label_smoothing=0.05))
    opt = optim_ns.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    extra: dict = {}
    if schedule == "plateau":  # stepped by the Trainer with the monitored eval metric after each evaluation
        # mode="max" on a falling loss: every evaluation is a plateau, so the lr halves at each one
        sched = optim_ns.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0, factor=0.5)
        extra = dict(eval_strategy="steps", eval_steps=3, metric_for_best_model="loss", per_device_eval_batch_size=32)
    else:
        warmup = 3  # linear warm-up then cosine decay, the usual transformers schedule, as a LambdaLR
        sched = optim_ns.lr_scheduler.LambdaLR(opt, lambda t: t / warmup if t < warmup else
                                               0.5 * (1 + math.cos(math.pi * (t - warmup) / (STEPS - warmup))))
    args = transformers.TrainingArguments(
        output_dir=out_dir, max_steps=STEPS, per_device_train_batch_size=16, report_to=[], save_strategy="no",
        logging_strategy="steps", logging_steps=1, use_cpu=True, seed=0, data_seed=0, disable_tqdm=True,
        remove_unused_columns=False, dataloader_num_workers=0, **extra)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, optimizers=(opt, sched),
                                   eval_dataset=data[:32] if schedule == "plateau" else None)
    trainer.train()
    lrs = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    return model, lrs


@pytest.mark.parametrize("schedule", ["lambda", "plateau"])
def test_transformers_trainer(tmp_path, schedule):
    """12 Trainer steps (gradient clipping at 1.0, the Trainer's default, included) with optimlab's loss,
    AdamW and LambdaLR (or ReduceLROnPlateau on the eval loss) vs torch's: the same logged lr at every
    step and equal weights at the end."""
    ours, lr_o = _train("optimlab", str(tmp_path / "ours"), schedule)
    ref, lr_r = _train("torch", str(tmp_path / "torch"), schedule)
    assert len(lr_r) == STEPS and lr_o == pytest.approx(lr_r, rel=1e-12)
    assert len(set(lr_r)) > 2  # the schedule did move the lr
    diff = compare.Diff()
    for (n, p_o), p_r in zip(ours.named_parameters(), ref.parameters(), strict=True):
        diff.merge(compare.tensors(p_o, p_r, f"param {n}"))
    assert diff.ok, diff.what
    print("transformers.Trainer max abs diff", diff.max_abs)
