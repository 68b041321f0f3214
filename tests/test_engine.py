"""The parity engine must fail when optimlab is wrong: planted bugs are reported, with the first
diverging step, and fuzzing shrinks a planted bug to a minimal reproducer."""

from __future__ import annotations

import pytest
import torch

from optimlab import catalog, nn, optim, parity
from optimlab.catalog import Case
from optimlab.optim import lr_scheduler
from optimlab.parity import fuzz, losses

SGD = catalog.get("optim", "SGD")
MSE = catalog.get("losses", "MSELoss")
STEP = catalog.get("sched", "StepLR")


def lr_off(base):
    """``base`` with a learning rate 0.1% too large."""

    class LrOff(base):
        def step(self, closure=None):
            for g in self.param_groups:
                g["lr"] *= 1.001
            try:
                return super().step(closure)
            finally:
                for g in self.param_groups:
                    g["lr"] /= 1.001

    return LrOff


LrOffSGD = lr_off(optim.SGD)


class LateBugSGD(optim.SGD):
    """SGD that goes wrong only from its 7th step on (momentum buffers nudged)."""

    calls = 0

    def step(self, closure=None):
        out = super().step(closure)
        self.calls += 1
        if self.calls >= 7:
            for st in self.state.values():
                st["momentum_buffer"].mul_(1 + 1e-6)
        return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_wrong_lr_detected_at_first_step(dtype):
    res = parity.run_case(SGD, SGD.case("momentum/foreach=False"), dtype, ours_cls=LrOffSGD)
    assert not res.passed
    assert res.first_bad_step == 1
    assert "param" in res.message
    assert res.max_rel > 0


def test_late_divergence_reports_its_step():
    res = parity.run_case(SGD, SGD.case("momentum/foreach=False"), torch.float64, ours_cls=LateBugSGD)
    assert not res.passed
    assert res.first_bad_step == 7
    assert "momentum_buffer" in res.message


def test_correct_optimizer_passes_all_steps():
    res = parity.run_case(SGD, SGD.case("nesterov/foreach=True"), torch.float64, steps=60)
    assert res.passed and res.first_bad_step is None


def _wrong_value(input, target, **kw):
    return nn.functional.mse_loss(input, target, **kw) * 1.001


class _WrongGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return ((x - y) ** 2).mean()

    @staticmethod
    def backward(ctx, go):
        x, y = ctx.saved_tensors
        g = go * (x - y) / x.numel()  # should be 2 (x - y) / n
        return g, -g


def _wrong_grad(input, target, **kw):
    return _WrongGrad.apply(input, target)


class WrongMSE(nn.MSELoss):
    def forward(self, input, target):
        return _wrong_value(input, target, reduction=self.reduction)


def test_wrong_loss_value_detected():
    res = losses.run_case(MSE, MSE.case("mean"), torch.float64, ours_cls=WrongMSE, ours_fn=_wrong_value)
    assert not res.passed
    assert "forward" in res.message


def test_wrong_loss_gradient_detected():
    case = MSE.case("mean")
    res = losses.run_case(MSE, Case("mean", {}, extra={**case.extra, "module": False}), torch.float64,
                          ours_fn=_wrong_grad)
    assert not res.passed
    assert "grad[0]" in res.message


def test_loss_raising_differently_detected():
    def raises_value_error(input, target, **kw):
        raise ValueError("not torch's exception type")

    res = losses.run_case(MSE, MSE.case("mismatch"), torch.float64, ours_fn=raises_value_error,
                          ours_cls=WrongMSE)
    assert not res.passed  # torch raises RuntimeError for unbroadcastable shapes


CTC = catalog.get("losses", "CTCLoss")


class _ScaledGrad(torch.autograd.Function):
    """Identity whose backward scales the gradient by 1 + 1e-3 (a planted error ~10x torch's own float32 rounding
    on the benchmark-size CTC problem)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * (1 + 1e-3)


def _ctc_scaled_grad(log_probs, *args, **kw):
    return nn.functional.ctc_loss(_ScaledGrad.apply(log_probs), *args, **kw)


def test_accuracy_mode_passes_the_real_ctc_and_catches_a_planted_error():
    """At T=100 float32, ours and torch's CTC gradients both sit ~1e-4 from the float64 value, beyond rtol 1e-5:
    accuracy mode passes ours, and still fails a gradient scaled by 1 + 1e-3."""
    case = CTC.case("benchmark-size")
    functional = Case(case.name, case.kwargs, extra={**case.extra, "module": False})
    plain = Case(case.name, case.kwargs, extra={**functional.extra, "accuracy": False})
    assert not losses.run_case(CTC, plain, torch.float32).passed  # elementwise, even ours misses rtol 1e-5
    assert losses.run_case(CTC, functional, torch.float32).passed
    res = losses.run_case(CTC, functional, torch.float32, ours_fn=_ctc_scaled_grad)
    assert not res.passed and "error against float64" in res.message


CE = catalog.get("losses", "CrossEntropyLoss")


class _LseShortcutCE(torch.autograd.Function):
    """Per-sample cross entropy whose backward takes the softmax as ``exp(x - lse)`` with ``lse = x_y - logp_y``:
    the speed trick issue 11 found, whose error grows with |lse| (7-30x torch's float32 error on torch's
    module_db samples) while staying within rtol 1e-5 of torch's result."""

    @staticmethod
    def forward(ctx, x, y):
        picked = torch.log_softmax(x, 1).gather(1, y.unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(x, y, picked)
        return -picked

    @staticmethod
    def backward(ctx, g):
        x, y, picked = ctx.saved_tensors
        lse = x.gather(1, y.unsqueeze(1)).squeeze(1) - picked
        gx = (x - lse.unsqueeze(1)).exp() * g.unsqueeze(1)
        return gx.scatter_add(1, y.unsqueeze(1), -g.unsqueeze(1)), None


def _ce_lse_shortcut(input, target, reduction="mean", **kw):
    return nn._reduction.reduce(_LseShortcutCE.apply(input, target), reduction)


def _module_db_like(g, dtype, device):
    """Logits uniform in [-9, 9] over 3 classes, as torch's module_db samples (make_tensor's default range)."""
    x = (torch.rand(256, 3, generator=g, dtype=torch.float64) * 18 - 9).to(dtype)
    return x, torch.randint(0, 3, (256,), generator=g)


def test_accuracy_check_catches_a_less_accurate_gradient_within_tolerance():
    """The float32 accuracy check (every loss): the planted ``exp(x - lse)`` gradient passes the elementwise
    table against torch's float32 result but is several times further from float64 than torch's; the real
    cross entropy passes both."""
    case = Case("module_db-like", {"reduction": "none"},
                extra={"inputs": _module_db_like, "module": False, "double_backward": False})
    assert losses.run_case(CE, case, torch.float32).passed
    unchecked = Case(case.name, case.kwargs, extra={**case.extra, "accuracy_check": False})
    assert losses.run_case(CE, unchecked, torch.float32, ours_fn=_ce_lse_shortcut).passed  # the table alone
    res = losses.run_case(CE, case, torch.float32, ours_fn=_ce_lse_shortcut)
    assert not res.passed and "float32 error against float64" in res.message, res.message


class DriftingStepLR(lr_scheduler.StepLR):
    def get_lr(self):
        lrs = super().get_lr()
        return [lr * (1 + 1e-9) if self.last_epoch == 12 else lr for lr in lrs]


def test_wrong_scheduler_detected_at_its_step():
    res = parity.run_case(STEP, STEP.case("step3-gamma0.5"), None, ours_cls=DriftingStepLR)
    assert not res.passed
    assert res.first_bad_step == 12


class NesterovBugSGD(optim.SGD):
    """Wrong only for momentum > 0.5 with weight decay: fuzzing must find and shrink it."""

    def step(self, closure=None):
        g = self.param_groups[0]
        bug = g["momentum"] > 0.5 and g["weight_decay"] > 0
        if bug:
            g["lr"] *= 1.01
        out = super().step(closure)
        if bug:
            g["lr"] /= 1.01
        return out


def test_fuzz_finds_and_shrinks_planted_bug():
    rep = fuzz.fuzz(SGD, examples=60, steps=3, ours_cls=NesterovBugSGD)
    assert not rep.passed
    kw = rep.failure.kwargs
    assert kw["momentum"] > 0.5 and kw["weight_decay"] > 0
    assert "SGD(" in rep.reproducer()


@pytest.mark.parametrize("name", ["SGD", "MSELoss", "StepLR"])
def test_fuzz_slice_passes(name):
    comp = next(c for c in catalog.components() if c.name == name)
    rep = fuzz.fuzz(comp, examples=10, steps=5)
    assert rep.passed, rep.reproducer()


def test_fused_accuracy_mode_still_catches_a_planted_error():
    """Fused float32 cases also run torch's for-loop in float64 (accuracy mode): that excuses rounding, not
    a wrong lr."""
    comp = catalog.get("optim", "Adadelta")
    case = comp.case("maximize-wd/fused")
    assert parity.run_case(comp, case, torch.float32).passed
    res = parity.run_case(comp, case, torch.float32, ours_cls=lr_off(optim.Adadelta))
    assert not res.passed and res.first_bad_step == 1


def test_fused_accuracy_mode_passes_the_more_accurate_result_only():
    """Against torch's float32 value ``ref`` (off the float64 one by ``e``), a value outside the fused tolerance
    passes when it is at most 3 x ``e`` from the float64 value, and fails when further."""
    from optimlab.parity.optim import _tensors
    from optimlab.parity.tolerances import FUSED

    exact = torch.linspace(1.0, 2.0, 50, dtype=torch.float64)
    ref = (exact * (1 + 1e-4)).float()  # torch's float32 run, 1e-4 off (far outside rtol 2e-5)
    closer = exact.float()
    further = (exact * (1 - 4e-4)).float()
    tol = FUSED[torch.float32]
    assert not _tensors(closer, ref, "x", False, tol).ok  # the elementwise tolerance alone refuses it
    assert _tensors(closer, ref, "x", False, tol, exact).ok
    assert not _tensors(further, ref, "x", False, tol, exact).ok
