"""No loss reads tensor data on the host when its inputs are not on the CPU (issue 26): on a GPU each such read
(``.item()``, ``int(t)``, ``bool(t)``, ``.tolist()``, a data-dependent branch) is a device synchronisation per
call. Proven on the ``meta`` device, whose tensors have shapes and dtypes but no data: any host read raises.
Every loss runs forward and backward under every reduction. (Lengths given to CTC stay on the host, as torch's
``ctc_loss`` takes them.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import optimlab.nn as onn
import optimlab.nn.functional as OF

M = "meta"
N, C = 6, 5


def _x(*shape: int) -> torch.Tensor:
    return torch.empty(shape, device=M).requires_grad_()


def _t(*shape: int, high: int = C) -> torch.Tensor:
    return torch.empty(shape, dtype=torch.long, device=M)


def _boxes() -> torch.Tensor:
    return torch.empty(N, 4, device=M).requires_grad_()


# name -> (callable(reduction) -> loss, tensors to differentiate are those requiring grad)
CASES: dict[str, Callable[[str], torch.Tensor]] = {
    "cross_entropy": lambda r: OF.cross_entropy(_x(N, C), _t(N), reduction=r),
    "cross_entropy weight ignore smoothing": lambda r: OF.cross_entropy(
        _x(N, C), _t(N), weight=torch.empty(C, device=M), ignore_index=2, label_smoothing=0.1, reduction=r),
    "cross_entropy 2-D": lambda r: OF.cross_entropy(_x(N, C, 3, 2), _t(N, 3, 2), reduction=r),
    "cross_entropy large": lambda r: OF.cross_entropy(_x(512, 200), _t(512), reduction=r),
    "cross_entropy probabilities": lambda r: OF.cross_entropy(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "nll_loss": lambda r: OF.nll_loss(_x(N, C), _t(N), reduction=r),
    "nll_loss weight": lambda r: OF.nll_loss(_x(N, C), _t(N), weight=torch.empty(C, device=M), reduction=r),
    "binary_cross_entropy": lambda r: OF.binary_cross_entropy(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "binary_cross_entropy_with_logits": lambda r: OF.binary_cross_entropy_with_logits(
        _x(N, C), torch.empty(N, C, device=M), pos_weight=torch.empty(C, device=M), reduction=r),
    "kl_div": lambda r: OF.kl_div(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "poisson_nll_loss": lambda r: OF.poisson_nll_loss(_x(N, C), torch.empty(N, C, device=M), full=True, reduction=r),
    "gaussian_nll_loss": lambda r: OF.gaussian_nll_loss(_x(N, C), torch.empty(N, C, device=M),
                                                        torch.empty(N, C, device=M), reduction=r),
    "ctc_loss": lambda r: OF.ctc_loss(torch.empty(8, 2, C, device=M).requires_grad_(),
                                      torch.empty(2, 3, dtype=torch.long, device=M), [8, 7], [3, 2], reduction=r),
    "mse_loss": lambda r: OF.mse_loss(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "mse_loss large": lambda r: OF.mse_loss(_x(512, 200), torch.empty(512, 200, device=M), reduction=r),
    "l1_loss": lambda r: OF.l1_loss(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "huber_loss": lambda r: OF.huber_loss(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "smooth_l1_loss": lambda r: OF.smooth_l1_loss(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "margin_ranking_loss": lambda r: OF.margin_ranking_loss(_x(N), _x(N), torch.empty(N, device=M), reduction=r),
    "hinge_embedding_loss": lambda r: OF.hinge_embedding_loss(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "soft_margin_loss": lambda r: OF.soft_margin_loss(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "multilabel_soft_margin_loss": lambda r: OF.multilabel_soft_margin_loss(
        _x(N, C), torch.empty(N, C, device=M), reduction=r),
    "cosine_embedding_loss": lambda r: OF.cosine_embedding_loss(_x(N, C), _x(N, C), torch.empty(N, device=M),
                                                                reduction=r),
    "multi_margin_loss": lambda r: OF.multi_margin_loss(_x(N, C), _t(N), reduction=r),
    "multi_margin_loss p=2 weight": lambda r: OF.multi_margin_loss(_x(N, C), _t(N), p=2,
                                                                   weight=torch.empty(C, device=M), reduction=r),
    "multilabel_margin_loss": lambda r: OF.multilabel_margin_loss(_x(N, C), _t(N, C), reduction=r),
    "triplet_margin_loss": lambda r: OF.triplet_margin_loss(_x(N, C), _x(N, C), _x(N, C), swap=True, reduction=r),
    "triplet_margin_with_distance_loss": lambda r: OF.triplet_margin_with_distance_loss(
        _x(N, C), _x(N, C), _x(N, C), reduction=r),
    "sigmoid_focal_loss": lambda r: OF.sigmoid_focal_loss(_x(N, C), torch.empty(N, C, device=M), reduction=r),
    "softmax_focal_loss": lambda r: OF.softmax_focal_loss(_x(N, C), _t(N), reduction=r),
    "generalized_box_iou_loss": lambda r: OF.generalized_box_iou_loss(_boxes(), _boxes(), reduction=r),
    "box_iou_loss": lambda r: OF.box_iou_loss(_boxes(), _boxes(), reduction=r),
    "distance_box_iou_loss": lambda r: OF.distance_box_iou_loss(_boxes(), _boxes(), reduction=r),
    "complete_box_iou_loss": lambda r: OF.complete_box_iou_loss(_boxes(), _boxes(), reduction=r),
    "zero_one_loss": lambda r: OF.zero_one_loss(_x(N, C), _t(N), reduction=r),
    "linear_cross_entropy": lambda r: OF.linear_cross_entropy(_x(N, 4), _x(C, 4), _t(N), reduction=r),
}


def _backward(out: Any) -> None:
    out = out[1] if isinstance(out, tuple) else out
    if isinstance(out, torch.Tensor) and out.requires_grad:
        out.backward(torch.ones_like(out))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_no_host_read(name: str, reduction: str) -> None:
    _backward(CASES[name](reduction))


@pytest.mark.parametrize("no_grad", [False, True])
def test_no_host_read_adaptive(no_grad: bool) -> None:
    m = onn.AdaptiveLogSoftmaxWithLoss(8, 10, [4, 8]).to(M)
    with torch.set_grad_enabled(not no_grad):
        out = m(_x(N, 8), _t(N, high=10))
        m.log_prob(_x(N, 8))
    if not no_grad:
        _backward(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_host_read_without_grad(name: str) -> None:
    """The evaluation path (no autograd bookkeeping) reads nothing on the host either."""
    with torch.no_grad():
        CASES[name]("mean")
