"""Losses beyond torch (focal, GIoU, DIoU, 0-1): no torch twin, so each is checked against an independent
straightforward formula written here and against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab

OF = optimlab.nn.functional
D = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---- focal ------------------------------------------------------------------------------------------------


def _focal_reference(x, y, alpha, gamma):
    """The paper's definition with plain probabilities (fine for moderate logits)."""
    p = 1 / (1 + torch.exp(-x))
    ce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.5), (0.7, 0.0), (0.5, 3.0)])
def test_focal_matches_definition(alpha, gamma):
    x = torch.randn(6, 5, generator=_gen(0), dtype=D) * 3
    y = torch.randint(0, 2, (6, 5), generator=_gen(1)).to(D)
    got = OF.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none")
    ref = _focal_reference(x, y, alpha, gamma)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(OF.sigmoid_focal_loss(x, y, alpha, gamma, reduction="sum"), ref.sum())
    torch.testing.assert_close(optimlab.nn.FocalLoss(alpha, gamma)(x, y), ref.mean())


def test_focal_without_focusing_is_bce_with_logits():
    x = torch.randn(4, 3, generator=_gen(2), dtype=D)
    y = torch.rand(4, 3, generator=_gen(3), dtype=D)
    torch.testing.assert_close(OF.sigmoid_focal_loss(x, y, alpha=-1, gamma=0.0, reduction="mean"),
                               torch.nn.functional.binary_cross_entropy_with_logits(x, y))
    torch.testing.assert_close(OF.sigmoid_focal_loss(x, y, alpha=-1, gamma=0.0),  # torchvision's default: none
                               torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none"))


def test_focal_extreme_logits_finite_with_finite_gradient():
    x = torch.tensor([-1e4, -50.0, 50.0, 1e4], dtype=D, requires_grad=True)
    y = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=D)
    for gamma in (0.5, 2.0):
        loss = OF.sigmoid_focal_loss(x, y, gamma=gamma, reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and float(loss.detach()) < 1e-10
        assert torch.isfinite(g).all()
    wrong = OF.sigmoid_focal_loss(x, 1 - y, alpha=-1, gamma=2.0, reduction="none")
    torch.testing.assert_close(wrong, x.detach().abs())  # confidently wrong: (1 - p_t)^γ = 1, CE = |x|


def test_focal_gradgradcheck_and_nan():
    x = torch.randn(3, 4, generator=_gen(4), dtype=D, requires_grad=True)
    y = torch.randint(0, 2, (3, 4), generator=_gen(5)).to(D)
    assert torch.autograd.gradgradcheck(lambda a: OF.sigmoid_focal_loss(a, y, gamma=1.5), (x,))
    xn = x.detach().clone()
    xn[0, 0] = math.nan
    out = OF.sigmoid_focal_loss(xn, y, reduction="none")
    assert out[0, 0].isnan() and not out.view(-1)[1:].isnan().any()


@pytest.mark.parametrize("kw,exc", [({"gamma": -1.0}, ValueError), ({"alpha": 1.5}, ValueError),
                                    ({"reduction": "max"}, ValueError)])
def test_focal_bad_arguments(kw, exc):
    with pytest.raises(exc):
        OF.sigmoid_focal_loss(torch.zeros(3), torch.zeros(3), **kw)


def test_focal_shape_mismatch():
    with pytest.raises(ValueError, match="same as input size"):
        OF.sigmoid_focal_loss(torch.zeros(3, 2), torch.zeros(3))


# ---- boxes ------------------------------------------------------------------------------------------------


def _random_boxes(n, seed):
    g = _gen(seed)
    xy = torch.rand(n, 2, generator=g, dtype=D) * 10
    wh = torch.rand(n, 2, generator=g, dtype=D) * 5 + 0.1
    return torch.cat([xy, xy + wh], 1)


def _box_reference(a, b, eps):
    """GIoU and DIoU loss of two boxes, one pair at a time with plain floats."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw, ih = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    iou = inter / (union + eps)
    cw, ch = max(ax2, bx2) - min(ax1, bx1), max(ay2, by2) - min(ay1, by1)
    giou = 1 - iou + (cw * ch - union) / (cw * ch + eps)
    rho2 = ((ax1 + ax2) / 2 - (bx1 + bx2) / 2) ** 2 + ((ay1 + ay2) / 2 - (by1 + by2) / 2) ** 2
    diou = 1 - iou + rho2 / (cw ** 2 + ch ** 2 + eps)
    return giou, diou


def test_box_losses_match_definition():
    a, b = _random_boxes(50, 0), _random_boxes(50, 1)
    ref = torch.tensor([_box_reference(p.tolist(), q.tolist(), 1e-7) for p, q in zip(a, b, strict=True)], dtype=D)
    torch.testing.assert_close(OF.generalized_box_iou_loss(a, b, reduction="none"), ref[:, 0])
    torch.testing.assert_close(OF.diou_loss(a, b, reduction="none"), ref[:, 1])
    torch.testing.assert_close(optimlab.nn.GIoULoss()(a, b), ref[:, 0].mean())
    torch.testing.assert_close(optimlab.nn.DIoULoss(reduction="sum")(a, b), ref[:, 1].sum())


def test_box_losses_hand_values():
    unit = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=D)
    far = torch.tensor([2.0, 2.0, 3.0, 3.0], dtype=D)
    half = torch.tensor([0.5, 0.0, 1.5, 1.0], dtype=D)
    # identical boxes: IoU = 1/(1+ε) → loss ≈ ε
    for fn in (OF.generalized_box_iou_loss, OF.diou_loss):
        assert abs(float(fn(unit, unit.clone()))) < 1e-6
    # disjoint: IoU 0, enclosing 3×3, union 2 → GIoU loss 1 + 7/9 > 1; DIoU: centres √8 apart, diagonal² 18
    assert math.isclose(float(OF.generalized_box_iou_loss(unit, far, eps=0.0)), 1 + 7 / 9)
    assert float(OF.generalized_box_iou_loss(unit, far)) > 1
    assert math.isclose(float(OF.diou_loss(unit, far, eps=0.0)), 1 + 8 / 18)
    # half overlap: IoU 0.5/1.5; the enclosing 1.5×1 box is the union → GIoU loss 1 - 1/3;
    # DIoU: centres 0.5 apart, diagonal² 1.5² + 1 → 1 - 1/3 + 0.25/3.25
    assert math.isclose(float(OF.generalized_box_iou_loss(unit, half, eps=0.0)), 1 - 1 / 3)
    assert math.isclose(float(OF.diou_loss(unit, half, eps=0.0)), 1 - 1 / 3 + 0.25 / 3.25)


def test_box_losses_broadcast_and_gradgradcheck():
    a = _random_boxes(4, 2).requires_grad_()
    b = _random_boxes(1, 3).requires_grad_()
    assert OF.generalized_box_iou_loss(a, b, reduction="none").shape == (4,)
    for fn in (OF.generalized_box_iou_loss, OF.diou_loss):
        assert torch.autograd.gradcheck(fn, (a, b))
        assert torch.autograd.gradgradcheck(fn, (a, b))


@pytest.mark.parametrize("boxes,exc", [(torch.zeros(3, 5), ValueError),
                                       (torch.tensor([[1.0, 0.0, 0.0, 1.0]]), ValueError)],
                         ids=["not-4-coordinates", "x2-below-x1"])
def test_box_losses_bad_input(boxes, exc):
    for fn in (OF.generalized_box_iou_loss, OF.diou_loss):
        with pytest.raises(exc):
            fn(boxes, torch.zeros(1, 4))


def test_box_losses_upcast_integer_boxes_like_torchvision():
    a, b = torch.tensor([[0, 0, 2, 2]]), torch.tensor([[1, 1, 3, 4]])
    for fn in (OF.generalized_box_iou_loss, OF.diou_loss):
        out = fn(a, b)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, fn(a.float(), b.float()))


def test_box_losses_nan_propagates():
    a = _random_boxes(3, 4)
    a[1, 0] = math.nan
    out = OF.diou_loss(a, _random_boxes(3, 5), reduction="none")
    assert out[1].isnan() and not out[[0, 2]].isnan().any()


# ---- 0-1 --------------------------------------------------------------------------------------------------


def test_zero_one_multiclass_hand_values():
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    target = torch.tensor([0, 2, 2, 1])
    assert torch.equal(OF.zero_one_loss(scores, target, reduction="none"), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert float(optimlab.nn.ZeroOneLoss()(scores, target)) == 0.5
    assert float(OF.zero_one_loss(scores, target, reduction="sum")) == 2.0
    # unbatched (C,) with a 0-d target, and K-dimensional (N, C, d)
    assert float(OF.zero_one_loss(scores[1], torch.tensor(1))) == 0.0
    kd = scores.T.unsqueeze(0).repeat(2, 1, 1)  # (2, 3, 4): class dim 1
    assert torch.equal(OF.zero_one_loss(kd, target.repeat(2, 1), reduction="none"),
                       torch.tensor([[0.0, 1.0, 0.0, 1.0]] * 2))


def test_zero_one_binary_label_conventions():
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    for target in (torch.tensor([1, 0, 0, 0]), torch.tensor([1.0, -1.0, -1.0, -1.0]),
                   torch.tensor([True, False, False, False])):
        assert torch.equal(OF.zero_one_loss(logits, target, reduction="none"), torch.tensor([0.0, 0.0, 1.0, 0.0]))
    probs = torch.tensor([0.9, 0.4, 0.6])
    assert float(OF.zero_one_loss(probs, torch.tensor([1, 1, 1]), threshold=0.5)) == pytest.approx(1 / 3)


def test_zero_one_gradient_is_zero_and_backward_works_in_a_sum():
    x = torch.randn(5, 3, generator=_gen(6), requires_grad=True)
    t = torch.randint(0, 3, (5,), generator=_gen(7))
    total = OF.zero_one_loss(x, t) + (x ** 2).sum()
    total.backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())  # the 0-1 term contributes exactly nothing
    assert not OF.zero_one_loss(x.detach(), t).requires_grad


def test_zero_one_nan_and_errors():
    x = torch.randn(3, 4)
    x[1, 2] = math.nan
    out = OF.zero_one_loss(x, torch.tensor([0, 1, 2]), reduction="none")
    assert out[1].isnan() and not out[[0, 2]].isnan().any()
    with pytest.raises(IndexError):
        OF.zero_one_loss(x, torch.tensor([0, 4, 1]))
    with pytest.raises(RuntimeError):
        OF.zero_one_loss(x, torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError):
        OF.zero_one_loss(x, torch.tensor([[0, 1]]))
    with pytest.raises(ValueError):
        OF.zero_one_loss(x, torch.tensor([0, 1, 1]), reduction="avg")
