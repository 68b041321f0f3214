"""Bad input to the first slice (SGD, MSELoss, StepLR) raises what torch raises, with torch's message."""

from __future__ import annotations

import pytest
import torch
from _util import raised as _raised

import optimlab

P = [torch.nn.Parameter(torch.zeros(3))]




SGD_BAD = [
    {"lr": -0.1},
    {"lr": 0.1, "momentum": -0.9},
    {"lr": 0.1, "weight_decay": -1e-3},
    {"lr": 0.1, "nesterov": True},
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "nesterov": True},
    {"lr": torch.tensor([0.1, 0.2])},
    {"lr": 0.1, "fused": True, "foreach": True},
    {"lr": 0.1, "fused": True, "differentiable": True},
]


@pytest.mark.parametrize("kwargs", SGD_BAD, ids=[str(k) for k in SGD_BAD])
def test_sgd_rejects_like_torch(kwargs):
    exc_t, msg_t = _raised(lambda: torch.optim.SGD(P, **kwargs))
    exc_o, msg_o = _raised(lambda: optimlab.optim.SGD(P, **kwargs))
    assert exc_t is not None
    assert exc_o is exc_t and msg_o == msg_t


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((2, 3), (3, 2)), ((5, 1), (2,))])
def test_mse_shapes_like_torch(shapes):
    x, y = torch.randn(shapes[0]), torch.randn(shapes[1])
    exc_t, _ = _raised(lambda: torch.nn.functional.mse_loss(x, y))
    exc_o, _ = _raised(lambda: optimlab.nn.functional.mse_loss(x, y))
    assert exc_o is exc_t
    if exc_t is None:
        assert torch.allclose(optimlab.nn.MSELoss()(x, y), torch.nn.MSELoss()(x, y))


def test_mse_broadcast_warning_like_torch():
    x, y = torch.randn(4, 5), torch.randn(4, 1)
    with pytest.warns(UserWarning) as ours:
        optimlab.nn.functional.mse_loss(x, y)
    with pytest.warns(UserWarning) as ref:
        torch.nn.functional.mse_loss(x, y)
    assert [str(w.message) for w in ours] == [str(w.message) for w in ref]


def test_mse_legacy_args_warn_and_match():
    x, y = torch.randn(4, 5), torch.randn(4, 5)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        ours = optimlab.nn.MSELoss(size_average=False)
    with pytest.warns(UserWarning):
        ref = torch.nn.MSELoss(size_average=False)
    assert ours.reduction == ref.reduction == "sum"
    torch.testing.assert_close(ours(x, y), ref(x, y))


@pytest.mark.parametrize("reduction", ["max", "", "batchmean"])
def test_mse_bad_reduction(reduction):
    x = torch.randn(3)
    exc_t, msg_t = _raised(lambda: torch.nn.functional.mse_loss(x, x, reduction=reduction))
    exc_o, msg_o = _raised(lambda: optimlab.nn.functional.mse_loss(x, x, reduction=reduction))
    assert exc_o is exc_t is ValueError and msg_o == msg_t


def test_mse_does_not_mutate_inputs():
    x, y = torch.randn(4, 5, requires_grad=True), torch.randn(4, 5)
    x0, y0 = x.detach().clone(), y.clone()
    optimlab.nn.functional.mse_loss(x, y).backward()
    assert torch.equal(x.detach(), x0) and torch.equal(y, y0)


def test_steplr_resume_without_initial_lr_raises_keyerror():
    opt = optimlab.optim.SGD(P, lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        optimlab.optim.lr_scheduler.StepLR(opt, step_size=3, last_epoch=5)


def test_steplr_rejects_non_optimizer():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        optimlab.optim.lr_scheduler.StepLR(object(), step_size=3)
