"""Box regression losses on ``(x1, y1, x2, y2)`` boxes, with torchvision.ops' names, signatures and defaults
(``reduction="none"``, ``eps=1e-7``). Each returns ``1 - IoU + penalty``:

* ``box_iou_loss`` (plain IoU loss, torchvision has no loss of that name): ``1 - IoU``;
* ``generalized_box_iou_loss`` (Rezatofighi et al. 2019): ``1 - IoU + (|C| - |A∪B|) / (|C| + ε)``;
* ``distance_box_iou_loss`` (Zheng et al. 2020): ``1 - IoU + ρ² / (c² + ε)``;
* ``complete_box_iou_loss`` (Zheng et al. 2020): the DIoU loss ``+ α·v``, ``v = 4/π²·(atan(w_B/h_B) -
  atan(w_A/h_A))²``, ``α = v / (1 - IoU + v + ε)`` taken as a constant (no gradient), as in torchvision;

with ``IoU = |A∩B| / (|A∪B| + ε)``, ``C`` the smallest box enclosing both, ``ρ`` the distance between the centres
and ``c`` the diagonal of ``C``. ``boxes1`` (predictions) and ``boxes2`` (targets) broadcast against each other.
Non-float32/float64 boxes are computed in float32 (torchvision's upcast)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import _reduction as R

__all__ = ["box_iou_loss", "ciou_loss", "complete_box_iou_loss", "diou_loss", "distance_box_iou_loss",
           "generalized_box_iou_loss", "giou_loss", "iou_loss"]


def _boxes(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, ...]:
    """Validate two broadcastable ``(..., 4)`` box tensors; return their eight coordinates (float32 unless
    float64). Eager mode rejects a box with ``x2 < x1`` or ``y2 < y1`` (a host-side check, skipped under
    torch.compile)."""
    out = []
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if b.dim() == 0 or b.size(-1) != 4:
            raise ValueError(f"{name} must have shape (..., 4) as (x1, y1, x2, y2), got {list(b.shape)}")
        if b.dtype not in (torch.float32, torch.float64):
            b = b.float()
        if R.host(b) and bool(((b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])).any()):
            raise ValueError(f"{name} has a box with x2 < x1 or y2 < y1")
        out.append(b)
    b1, b2 = torch.broadcast_tensors(*out)
    return (*b1.unbind(-1), *b2.unbind(-1))


def _iou(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """``IoU = |A∩B| / (|A∪B| + ε)``, the union ``|A∪B|``, and the coordinates of both boxes and of ``C``."""
    x1, y1, x2, y2, u1, v1, u2, v2 = _boxes(boxes1, boxes2)
    w = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp_min(0)
    h = (torch.minimum(y2, v2) - torch.maximum(y1, v1)).clamp_min(0)
    inter = w * h
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    enclosing = (torch.minimum(x1, u1), torch.minimum(y1, v1), torch.maximum(x2, u2), torch.maximum(y2, v2))
    return inter / (union + eps), union, (x1, y1, x2, y2, u1, v1, u2, v2, *enclosing)


def box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """Plain IoU loss ``1 - |A∩B| / (|A∪B| + ε)``: in [0, 1], 1 for disjoint boxes (no gradient there)."""
    reduction = R.check(reduction)
    iou, _, _ = _iou(boxes1, boxes2, eps)
    return R.reduce(1 - iou, reduction)


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """GIoU loss (Rezatofighi et al. 2019) ``1 - IoU + (|C| - |A∪B|) / (|C| + ε)``, in [0, 2)."""
    reduction = R.check(reduction)
    iou, union, (*_, c1, d1, c2, d2) = _iou(boxes1, boxes2, eps)
    area_c = (c2 - c1) * (d2 - d1)
    return R.reduce(1 - iou + (area_c - union) / (area_c + eps), reduction)


def _diou(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """The DIoU loss ``1 - IoU + ρ² / (c² + ε)``, the IoU and the coordinates."""
    iou, _, coords = _iou(boxes1, boxes2, eps)
    x1, y1, x2, y2, u1, v1, u2, v2, c1, d1, c2, d2 = coords
    rho2 = ((x1 + x2 - u1 - u2) / 2) ** 2 + ((y1 + y2 - v1 - v2) / 2) ** 2
    diag2 = (c2 - c1) ** 2 + (d2 - d1) ** 2
    return 1 - iou + rho2 / (diag2 + eps), iou, coords


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """DIoU loss (Zheng et al. 2020) ``1 - IoU + ρ² / (c² + ε)``, in [0, 2)."""
    reduction = R.check(reduction)
    return R.reduce(_diou(boxes1, boxes2, eps)[0], reduction)


def _aspect(w: Tensor, h: Tensor) -> Tensor:
    """``atan(w / h)`` as ``atan2(w, h)`` (π/2 for a zero-height box); a point box (``w = h = 0``) is taken as a
    square (π/4) with zero gradient, where ``atan(0/0)`` would be NaN."""
    point = (w == 0) & (h == 0)
    return torch.atan2(torch.where(point, 1.0, w), torch.where(point, 1.0, h))


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """CIoU loss (Zheng et al. 2020): the DIoU loss ``+ α·v`` with the aspect-ratio term
    ``v = 4/π²·(atan(w₂/h₂) - atan(w₁/h₁))²`` and ``α = v / (1 - IoU + v + ε)`` held constant (no gradient;
    0 where ``v = 0``)."""
    reduction = R.check(reduction)
    loss, iou, (x1, y1, x2, y2, u1, v1, u2, v2, *_) = _diou(boxes1, boxes2, eps)
    v = (4 / math.pi ** 2) * (_aspect(u2 - u1, v2 - v1) - _aspect(x2 - x1, y2 - y1)) ** 2
    with torch.no_grad():  # v = 0 (same aspect ratio) gives α = 0, also with eps = 0 and identical boxes (0/0)
        alpha = torch.where(v > 0, v / (1 - iou + v + eps), 0.0)
    return R.reduce(loss + alpha * v, reduction)


# the names optimlab used before torchvision's (kept as aliases)
iou_loss = box_iou_loss
giou_loss = generalized_box_iou_loss
diou_loss = distance_box_iou_loss
ciou_loss = complete_box_iou_loss
