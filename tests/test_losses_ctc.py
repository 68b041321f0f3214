"""CTC beyond the catalogue's parity cases: the gradient through log_softmax is the true gradient (gradcheck),
no double backward (like torch), bounds checks torch lacks, and a short fuzz. Sizes are small: CTC loops
over time."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF

import optimlab.nn as onn
import optimlab.nn.functional as OF
from optimlab import catalog
from optimlab.parity import fuzz


def _problem(t: int = 7, n: int = 2, c: int = 4, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(t, n, c, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[1, 2, 2], [3, 1, 0]])
    return x, targets, torch.tensor([t, t - 2]), torch.tensor([3, 2])


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum", "blank": 3}, {"zero_infinity": True}])
def test_gradcheck_through_log_softmax(kwargs: dict) -> None:
    """torch's CTC gradient adds exp(lp), which log_softmax's backward cancels: through it, the gradient is exact."""
    x, tg, il, tl = _problem()
    if kwargs.get("blank") == 3:
        tg = torch.tensor([[1, 2, 2], [0, 1, 2]])
    assert torch.autograd.gradcheck(lambda z: OF.ctc_loss(z.log_softmax(2), tg, il, tl, **kwargs), (x,))


def test_no_double_backward_like_torch() -> None:
    x, tg, il, tl = _problem()
    for f in (OF.ctc_loss, TF.ctc_loss):
        (g,) = torch.autograd.grad(f(x.log_softmax(2), tg, il, tl), x, create_graph=True)
        with pytest.raises(RuntimeError):
            torch.autograd.grad(g.sum(), x)


def test_labels_out_of_range_raise() -> None:
    """Deviation from torch, which reads out of bounds for such labels and returns an arbitrary number."""
    x, _, il, tl = _problem()
    for bad in (torch.tensor([[1, 9, 2], [3, 1, 0]]), torch.tensor([[1, -2, 2], [3, 1, 0]])):
        with pytest.raises(IndexError, match="out of bounds"):
            OF.ctc_loss(x.log_softmax(2), bad, il, tl)


@pytest.mark.parametrize("filler", [10**6, 3])  # out of range (the masked path), in range (the fast path)
def test_padding_past_target_length_is_never_read(filler: int) -> None:
    x, tg, il, tl = _problem()
    garbage = tg.clone()
    garbage[1, 2] = filler  # beyond target_lengths[1] = 2
    for make in (lambda: x.detach().log_softmax(2), lambda: x.log_softmax(2)):  # α only, and α with β
        ours, ref = OF.ctc_loss(make(), garbage, il, tl), OF.ctc_loss(make(), tg, il, tl)
        torch.testing.assert_close(ours, ref)
    (g_garbage,) = torch.autograd.grad(OF.ctc_loss(x.log_softmax(2), garbage, il, tl), x)
    (g_clean,) = torch.autograd.grad(OF.ctc_loss(x.log_softmax(2), tg, il, tl), x)
    torch.testing.assert_close(g_garbage, g_clean)


@pytest.mark.parametrize("lengths", ["tensor", "tuple"])
def test_module_forward(lengths: str) -> None:
    x, tg, il, tl = _problem()
    if lengths == "tuple":
        il, tl = tuple(il.tolist()), tuple(tl.tolist())
    lp = x.log_softmax(2)
    torch.testing.assert_close(onn.CTCLoss(blank=0)(lp, tg, il, tl), torch.nn.CTCLoss(blank=0)(lp, tg, il, tl))


def test_inputs_not_modified() -> None:
    x, tg, il, tl = _problem()
    lp = x.detach().log_softmax(2).requires_grad_()
    before = [lp.detach().clone(), tg.clone(), il.clone(), tl.clone()]
    OF.ctc_loss(lp, tg, il, tl).backward()
    for a, b in zip((lp.detach(), tg, il, tl), before, strict=True):
        assert torch.equal(a, b)


def test_fuzz() -> None:
    report = fuzz.fuzz(catalog.get("losses", "CTCLoss"), examples=6)
    assert report.passed, report.reproducer()


def test_forward_without_grad_matches_torch() -> None:
    """Without a gradient only α runs (no reversed problem): same losses as torch's, and as with a gradient."""
    g = torch.Generator().manual_seed(3)
    lp = torch.randn(30, 5, 6, generator=g, dtype=torch.float64).log_softmax(2)
    tg = torch.randint(1, 6, (5, 8), generator=g)
    il, tl = torch.tensor([30, 29, 17, 9, 1]), torch.tensor([8, 0, 5, 4, 1])
    plain = OF.ctc_loss(lp, tg, il, tl, reduction="none")
    torch.testing.assert_close(plain, TF.ctc_loss(lp, tg, il, tl, reduction="none"), rtol=1e-10, atol=1e-12)
    assert torch.equal(plain, OF.ctc_loss(lp.clone().requires_grad_(), tg, il, tl, reduction="none").detach())
