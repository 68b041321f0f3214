"""Detection losses (IoU/GIoU/DIoU/CIoU boxes, sigmoid and softmax focal): values worked by hand from the papers
(Rezatofighi et al. 2019; Zheng et al. 2020; Lin et al. 2017), finite values and gradients on identical, touching,
nested, disjoint and zero-area boxes, the catalogue's identities against torch, and torch.compile(fullgraph)."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.catalog.losses_new import IDENTITIES

OF = optimlab.nn.functional
D = torch.float64
BOX_FNS = (OF.box_iou_loss, OF.generalized_box_iou_loss, OF.distance_box_iou_loss, OF.complete_box_iou_loss)


def _b(*c):
    return torch.tensor(c, dtype=D)


def _v(wa, ha, wb, hb):
    """CIoU's aspect term ``4/π²·(atan(w_b/h_b) - atan(w_a/h_a))²`` in plain floats."""
    return 4 / math.pi ** 2 * (math.atan2(wb, hb) - math.atan2(wa, ha)) ** 2


# (name, box A, box B, hand-worked (IoU, GIoU, DIoU, CIoU) losses with ε = 0)
_V_CROSS = _v(2, 1, 1, 2)
_V_LINE = _v(0, 2, 2, 2)  # a zero-width box: atan(0/2) = 0 against a square's π/4, so v = 1/4
HAND = [
    # overlapping squares: |A∩B| 1, |A∪B| 7, C 3×3; centres √2 apart, c² = 18
    ("overlap", (0, 0, 2, 2), (1, 1, 3, 3), (1 - 1 / 7, 1 - 1 / 7 + 2 / 9, 1 - 1 / 7 + 2 / 18, 1 - 1 / 7 + 2 / 18)),
    # nested: B inside A, IoU 1/16, C = A (no GIoU penalty); centres (2, 2), (1.5, 1.5): ρ² = 0.5, c² = 32
    ("nested", (0, 0, 4, 4), (1, 1, 2, 2), (15 / 16, 15 / 16, 15 / 16 + 0.5 / 32, 15 / 16 + 0.5 / 32)),
    # touching along x = 1: IoU 0, C = union (penalty 0); ρ² = 1, c² = 5
    ("touching", (0, 0, 1, 1), (1, 0, 2, 1), (1.0, 1.0, 1.2, 1.2)),
    # disjoint unit squares: C 3×3, union 2; ρ² = 8, c² = 18
    ("disjoint", (0, 0, 1, 1), (2, 2, 3, 3), (1.0, 1 + 7 / 9, 1 + 8 / 18, 1 + 8 / 18)),
    # 2×1 against 1×2 (the same corner): IoU 1/3; ρ² = 0.5, c² = 8; v ≠ 0, α = v / (1 - IoU + v)
    ("crossed", (0, 0, 2, 1), (0, 0, 1, 2),
     (2 / 3, 2 / 3 + 1 / 4, 2 / 3 + 0.5 / 8, 2 / 3 + 0.5 / 8 + _V_CROSS ** 2 / (2 / 3 + _V_CROSS))),
    # zero-width box on a square's vertical midline: IoU 0, C = B, same centre; v = 1/4, α = v / (1 + v) = 1/5
    ("zero-area", (1, 0, 1, 2), (0, 0, 2, 2), (1.0, 1.0, 1.0, 1 + _V_LINE ** 2 / (1 + _V_LINE))),
    # the same line box touching the square from above: C 2×4 (area 8, union 4); centres 2 apart, c² = 4 + 16
    ("zero-area-outside", (1, 2, 1, 4), (0, 0, 2, 2), (1.0, 1 + 4 / 8, 1 + 4 / 20, 1 + 4 / 20 + _V_LINE ** 2 / 1.25)),
    # two identical point boxes: union 0, so IoU = 0/ε = 0; everything else 0
    ("points", (1, 1, 1, 1), (1, 1, 1, 1), (1.0, 1.0, 1.0, 1.0)),
]


@pytest.mark.parametrize("name,a,b,want", HAND, ids=[h[0] for h in HAND])
def test_box_losses_hand_worked_values(name, a, b, want):
    eps = 0.0 if name != "points" else 1e-7  # 0/0 needs the ε
    for fn, w in zip(BOX_FNS, want, strict=True):
        got = float(fn(_b(*a), _b(*b), eps=eps))
        assert math.isclose(got, w, rel_tol=1e-12, abs_tol=1e-12), (fn.__name__, got, w)


def test_identical_boxes_give_zero_loss():
    a = _b(1.0, 2.0, 4.0, 3.5)
    for fn in BOX_FNS:
        assert abs(float(fn(a, a.clone()))) < 1e-6  # IoU = |A| / (|A| + ε)
        assert float(fn(a, a.clone(), eps=0.0)) == 0.0


@pytest.mark.parametrize("name,a,b,want", HAND, ids=[h[0] for h in HAND])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_box_losses_finite_gradients(name, a, b, want, dtype):
    for fn in BOX_FNS:
        pa = torch.tensor(a, dtype=dtype, requires_grad=True)
        pb = torch.tensor(b, dtype=dtype, requires_grad=True)
        loss = fn(pa, pb)
        ga, gb = torch.autograd.grad(loss, (pa, pb))
        assert torch.isfinite(loss) and torch.isfinite(ga).all() and torch.isfinite(gb).all(), (fn.__name__, ga, gb)


def test_ciou_alpha_has_no_gradient():
    """∂CIoU = ∂DIoU + α·∂v with α a constant (torchvision's choice), checked on the crossed boxes."""
    a = _b(0.0, 0.0, 2.0, 1.0).requires_grad_()
    b = _b(0.0, 0.0, 1.0, 2.0)
    (g_ciou,) = torch.autograd.grad(OF.complete_box_iou_loss(a, b, eps=0.0), a)
    (g_diou,) = torch.autograd.grad(OF.distance_box_iou_loss(a, b, eps=0.0), a)
    v = 4 / math.pi ** 2 * (math.atan(1 / 2) - torch.atan((a[2] - a[0]) / (a[3] - a[1]))) ** 2
    (g_v,) = torch.autograd.grad(v, a)
    alpha = _V_CROSS / (2 / 3 + _V_CROSS)
    torch.testing.assert_close(g_ciou, g_diou + alpha * g_v)


def _random_boxes(n, seed, dtype=D):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=D) * 10
    wh = torch.rand(n, 2, generator=g, dtype=D) * 5 + 0.1
    return torch.cat([xy, xy + wh], 1).to(dtype)


def test_box_losses_batched_definitions_and_reductions():
    """Against plain-float evaluations of the papers' formulas, box by box; torchvision's default is 'none'."""
    a, b = _random_boxes(40, 0), _random_boxes(40, 1)
    want = []
    for p, q in zip(a.tolist(), b.tolist(), strict=True):
        iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        inter = iw * ih
        union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
        iou = inter / union
        cw, ch = max(p[2], q[2]) - min(p[0], q[0]), max(p[3], q[3]) - min(p[1], q[1])
        rho2 = ((p[0] + p[2] - q[0] - q[2]) / 2) ** 2 + ((p[1] + p[3] - q[1] - q[3]) / 2) ** 2
        diou = 1 - iou + rho2 / (cw ** 2 + ch ** 2)
        v = _v(p[2] - p[0], p[3] - p[1], q[2] - q[0], q[3] - q[1])
        want.append((1 - iou, 1 - iou + (cw * ch - union) / (cw * ch), diou, diou + v * v / (1 - iou + v)))
    want = torch.tensor(want, dtype=D)
    for k, fn in enumerate(BOX_FNS):
        got = fn(a, b, eps=0.0)
        assert got.shape == (40,)
        torch.testing.assert_close(got, want[:, k])
        torch.testing.assert_close(fn(a, b, reduction="sum", eps=0.0), want[:, k].sum())
        torch.testing.assert_close(fn(a, b, reduction="mean", eps=0.0), want[:, k].mean())


def test_box_modules_and_aliases():
    a, b = _random_boxes(5, 2), _random_boxes(5, 3)
    mods = (optimlab.nn.IoULoss, optimlab.nn.GIoULoss, optimlab.nn.DIoULoss, optimlab.nn.CIoULoss)
    for mod, fn in zip(mods, BOX_FNS, strict=True):
        torch.testing.assert_close(mod()(a, b), fn(a, b).mean())  # modules default to 'mean' like torch's losses
        torch.testing.assert_close(mod(eps=0.0, reduction="none")(a, b), fn(a, b, eps=0.0))
    assert OF.diou_loss is OF.distance_box_iou_loss and OF.ciou_loss is OF.complete_box_iou_loss
    assert OF.giou_loss is OF.generalized_box_iou_loss and OF.iou_loss is OF.box_iou_loss
    from optimlab.nn.functional import extras
    assert extras.sigmoid_focal_loss is OF.sigmoid_focal_loss and extras.diou_loss is OF.diou_loss


def test_ciou_gradcheck():
    a, b = _random_boxes(4, 4).requires_grad_(), _random_boxes(4, 5).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, q: OF.box_iou_loss(p, q), (a, b))
    # α carries no gradient, so CIoU's autograd gradient is not the derivative of its value: gradcheck the
    # rest (DIoU) and the α-frozen form above instead


# ---- focal ------------------------------------------------------------------------------------------------


def test_sigmoid_focal_hand_values():
    """Lin et al. 2017, FL = -α_t (1 - p_t)^γ log p_t: x = 0, y = 1 → p_t = 1/2;
    x = ln 3, y = 0 → p = 3/4, p_t = 1/4."""
    x = torch.tensor([0.0, math.log(3.0)], dtype=D)
    y = torch.tensor([1.0, 0.0], dtype=D)
    got = OF.sigmoid_focal_loss(x, y)
    want = torch.tensor([0.25 * 0.25 * math.log(2), 0.75 * 0.75 ** 2 * math.log(4)], dtype=D)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(OF.sigmoid_focal_loss(x, y, alpha=-1, gamma=1, reduction="sum"),
                               torch.tensor(0.5 * math.log(2) + 0.75 * math.log(4), dtype=D))


def test_softmax_focal_hand_values():
    """Logits (0, ln 3) give p = (1/4, 3/4): target 1 → -(1/4)²·ln(3/4); target 0, weight 2 → -2·(3/4)²·ln(1/4)."""
    x = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]], dtype=D)
    t = torch.tensor([1, 0])
    w = torch.tensor([2.0, 1.0], dtype=D)
    per = torch.tensor([-(0.25 ** 2) * math.log(0.75), -2 * 0.75 ** 2 * math.log(0.25)], dtype=D)
    torch.testing.assert_close(OF.softmax_focal_loss(x, t, weight=w, reduction="none"), per)
    torch.testing.assert_close(OF.softmax_focal_loss(x, t, weight=w), per.sum() / 3)  # mean: Σ w_y = 1 + 2
    torch.testing.assert_close(optimlab.nn.SoftmaxFocalLoss(weight=w, gamma=2.0, ignore_index=0)(x, t), per[0])
    # γ < 1 at a saturated correct prediction: finite gradient (the floor on 1 - p)
    xs = torch.tensor([[0.0, 80.0]], dtype=D, requires_grad=True)
    (g,) = torch.autograd.grad(OF.softmax_focal_loss(xs, torch.tensor([1]), gamma=0.5), xs)
    assert torch.isfinite(g).all()


def _resolve_kw(kw, w):
    return {k: (w if v == "w" else v) for k, v in kw.items()}


@pytest.mark.parametrize("ours,kw_o,ref,kw_r", IDENTITIES, ids=[f"{i[0]}-{i[1]}" for i in IDENTITIES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_identities_against_torch(ours, kw_o, ref, kw_r, dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(6, 5, 3, generator=g, dtype=D) * 2).to(dtype)
    if ref == "cross_entropy":
        t = torch.randint(0, 5, (6, 3), generator=g)
    else:
        t = torch.rand(6, 5, 3, generator=g, dtype=D).to(dtype)
    w = torch.rand(5, generator=g, dtype=D).to(dtype) + 0.1
    xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    lo = getattr(OF, ours)(xo, t, **_resolve_kw(kw_o, w))
    lr = getattr(torch.nn.functional, ref)(xr, t, **_resolve_kw(kw_r, w))
    torch.testing.assert_close(lo, lr)
    go = torch.randn(lr.shape, generator=g, dtype=D).to(dtype)
    torch.testing.assert_close(torch.autograd.grad(lo, xo, go)[0], torch.autograd.grad(lr, xr, go)[0])


def test_softmax_focal_errors_like_cross_entropy():
    x = torch.randn(4, 3)
    for t, exc in ((torch.tensor([0, 1, 3, 1]), IndexError), (torch.tensor([0.0, 1, 1, 1]), RuntimeError),
                   (torch.tensor([0, 1]), ValueError)):
        with pytest.raises(exc):
            torch.nn.functional.cross_entropy(x, t)
        with pytest.raises(exc):
            OF.softmax_focal_loss(x, t)
    with pytest.raises(ValueError):
        OF.softmax_focal_loss(x, torch.tensor([0, 1, 2, 1]), gamma=-1.0)


def test_compiled_fullgraph_matches_eager():
    """Small and few: every loss of this file compiled once (torchvision's are plain tensor code, which compiles)."""
    a = _random_boxes(6, 6, torch.float32).requires_grad_()
    b = _random_boxes(6, 7, torch.float32)
    for fn in (OF.generalized_box_iou_loss, OF.complete_box_iou_loss):
        torch._dynamo.reset()
        c = torch.compile(lambda p, q, fn=fn: fn(p, q, reduction="sum"), fullgraph=True)
        (ge,) = torch.autograd.grad(fn(a, b, reduction="sum"), a)
        out = c(a, b)
        (gc,) = torch.autograd.grad(out, a)
        torch.testing.assert_close(out, fn(a, b, reduction="sum"))
        torch.testing.assert_close(gc, ge)
    x = torch.randn(8, 5, requires_grad=True)
    t = torch.randint(0, 5, (8,))
    torch._dynamo.reset()
    c = torch.compile(lambda x, t: OF.softmax_focal_loss(x, t, ignore_index=1), fullgraph=True)
    torch.testing.assert_close(c(x, t), OF.softmax_focal_loss(x, t, ignore_index=1))
