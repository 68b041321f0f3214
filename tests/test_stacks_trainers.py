"""optimlab inside trainer frameworks, against the same runs with torch's classes: PyTorch Lightning's
``Trainer`` (``configure_optimizers`` with step- and epoch-interval schedulers, ReduceLROnPlateau on a
monitored metric, checkpoint save and resume) and Hugging Face ``transformers.Trainer`` with
``optimizers=(optimizer, scheduler)``. Both frameworks are test dependencies (``optimlab[stacks]``)."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch import nn

import optimlab.nn as onn
import optimlab.optim as oo
from optimlab.parity import compare

IMPLS = {"optimlab": (onn, oo), "torch": (torch.nn, torch.optim)}


def _data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, :4].sum(1) > 0).long() + (x[:, 4:].sum(1) > 0).long()


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))


def _assert_same_params(a: nn.Module, b: nn.Module, what: str) -> float:
    diff = compare.Diff()
    for (n, p_a), p_b in zip(a.named_parameters(), b.parameters(), strict=True):
        diff.merge(compare.tensors(p_a, p_b, f"{what} param {n}"))
    assert diff.ok, diff.what
    return diff.max_abs


# ---------------------------------------------------------------------------------------- Lightning

L = pytest.importorskip("lightning", reason="PyTorch Lightning is a test extra: pip install -e '.[stacks]'")

SCHEDULES = ("step", "epoch", "plateau")
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no start-up banners per fit


class _Module(L.LightningModule):
    def __init__(self, impl: str, schedule: str, steps_per_epoch: int, epochs: int) -> None:
        super().__init__()
        self.impl, self.schedule, self.total = impl, schedule, steps_per_epoch * epochs
        self.net = _net()
        self.loss_fn = IMPLS[impl][0].CrossEntropyLoss(label_smoothing=0.05)
        self.lrs: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self.net(x), y)
        self.log("train_loss", loss)
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.loss_fn(self.net(x), y))

    def configure_optimizers(self):
        optim = IMPLS[self.impl][1]
        if self.schedule == "step":
            opt = optim.AdamW(self.parameters(), lr=0.01, weight_decay=0.05)
            sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=self.total)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if self.schedule == "epoch":
            opt = optim.SGD(self.parameters(), lr=0.1, momentum=0.9, nesterov=True)
            return [opt], [optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]
        opt = optim.Adam(self.parameters(), lr=0.05)
        sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def _loaders(batch: int = 16):
    x, y = _data()
    xv, yv = _data(32, seed=1)
    ds = torch.utils.data.TensorDataset(x, y)
    return (torch.utils.data.DataLoader(ds, batch_size=batch),
            torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=32))


def _trainer(epochs: int) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)


def _fit(impl: str, schedule: str, epochs: int, resume_from: str | None = None, stop_at: int | None = None,
         save_to: str | None = None) -> _Module:
    train, val = _loaders()
    module = _Module(impl, schedule, len(train), epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on dataloader workers, log sync etc.
        trainer = _trainer(stop_at or epochs)
        # weights_only=True: the checkpoint (optimizer and scheduler state included) loads without pickled code
        trainer.fit(module, train, val, ckpt_path=resume_from, weights_only=True if resume_from else None)
        if save_to:
            trainer.save_checkpoint(save_to)
    return module


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_lightning_trainer(schedule):
    """Trainer.fit for 3 epochs with optimlab's loss, optimizer and scheduler vs torch's: the same lr
    at every training step and equal weights at the end (float32 tolerance)."""
    ours, ref = _fit("optimlab", schedule, 3), _fit("torch", schedule, 3)
    assert ours.lrs == pytest.approx(ref.lrs, rel=1e-12)
    assert len(set(ref.lrs)) > 1  # the schedule did move the lr
    print(schedule, "max abs diff", _assert_same_params(ours.net, ref.net, schedule))


@pytest.mark.parametrize("schedule", ["step", "epoch"])
def test_lightning_checkpoint_resume(schedule, tmp_path):
    """Fit 2 of 4 epochs with optimlab's classes and ``save_checkpoint``; resume the fit from it with
    optimlab's classes and, separately, with torch's (Lightning restores the optimizer and scheduler
    state into whichever classes configure_optimizers returns): both equal the uninterrupted run."""
    ckpt = str(tmp_path / "half.ckpt")
    whole = _fit("optimlab", schedule, 4)
    _fit("optimlab", schedule, 4, stop_at=2, save_to=ckpt)
    for impl in ("optimlab", "torch"):
        resumed = _fit(impl, schedule, 4, resume_from=ckpt)
        assert resumed.lrs == pytest.approx(whole.lrs[len(whole.lrs) // 2:], rel=1e-12)
        print(schedule, impl, "resumed max abs diff", _assert_same_params(resumed.net, whole.net, impl))
