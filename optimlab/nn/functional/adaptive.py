"""Adaptive softmax (Grave et al. 2017), the math of :class:`optimlab.nn.AdaptiveLogSoftmaxWithLoss`.

Classes ``[0, n)`` are split by ``cutoffs = [c_0, c_1, …, c_K = n]``: the head scores the shortlist ``[0, c_0)``
and one logit per cluster ``k`` (classes ``[c_k, c_{k+1})``); cluster ``k`` has its own two-layer projection
(the tail). ``log p(y) = log softmax(head(x))_y`` for ``y`` in the shortlist, else
``log softmax(head(x))_{c_0 + k} + log softmax(tail_k(x))_{y - c_k}``.

Results have the input's dtype, as torch's (which writes into ``input.new_zeros``/``new_empty``): under
``torch.autocast`` the projections run in the autocast dtype, the head's log-probabilities are cast to the
input's dtype, and a tail's are copied in only if they already have it (else torch's ``index_copy_`` raises
RuntimeError: float32 input under bfloat16 autocast with a target outside the shortlist)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import _reduction as R

__all__ = ["adaptive_log_prob", "adaptive_target_log_prob"]


def _check_target(input: Tensor, target: Tensor) -> None:
    """torch's shape checks: 1-D target with 2-D input of the same batch size, or 0-d target with 1-D input."""
    if target.dim() == 1:
        if input.size(0) != target.size(0):
            raise RuntimeError("Input and target should have the same size in the batch dimension.")
        if input.dim() != 2:
            raise RuntimeError(f"1D target tensor expects 2D input tensors, but found inputs with size {input.size()}")
    elif target.dim() == 0:
        if input.dim() != 1:
            raise RuntimeError(f"0D target tensor expects 1D input tensors, but found inputs with size {input.size()}")
    else:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")


def _check_copy(out: Tensor, lp: Tensor) -> None:
    """torch's ``index_copy_`` of a tail's log-probabilities into the input-dtype output: same dtype required."""
    if lp.dtype != out.dtype:
        raise RuntimeError(f"index_copy_(): self and source expected to have the same dtype, but got (self) "
                           f"{_ATEN_NAME.get(out.dtype, out.dtype)} and (source) {_ATEN_NAME.get(lp.dtype, lp.dtype)}")


_ATEN_NAME = {torch.float32: "Float", torch.float64: "Double", torch.bfloat16: "BFloat16", torch.float16: "Half"}


def adaptive_target_log_prob(input: Tensor, target: Tensor, head: Callable[[Tensor], Tensor],
                             tail: Sequence[Callable[[Tensor], Tensor]], cutoffs: Sequence[int]) -> Tensor:
    """``log p(target_i | input_i)`` per sample (see the module docstring); ``cutoffs`` ends with ``n_classes``.

    Eager mode runs each tail on the rows whose target falls in its cluster (index_select / index_add) and raises
    torch's RuntimeError for a target outside ``[0, n)``. Under torch.compile, where a data-dependent number of
    rows cannot be traced, each tail runs on every row and ``where`` keeps its cluster's rows (same values)."""
    _check_target(input, target)
    batched = target.dim() > 0
    x = input if batched else input.unsqueeze(0)
    t = target if batched else target.unsqueeze(0)
    n_classes, shortlist = cutoffs[-1], cutoffs[0]
    compiling = not R.host(t)  # traced, or on a device: every tail on every row, no data-dependent shapes
    if not compiling and t.numel() and bool(((t < 0) | (t >= n_classes)).any()):
        raise RuntimeError(f"Target values should be in [0, {n_classes - 1}], but values in range "
                           f"[{int(t.min())}, {int(t.max())}] were found. ")
    bounds = torch.tensor(list(cutoffs), device=t.device, dtype=t.dtype)
    cluster = torch.bucketize(t, bounds, right=True)  # 0: shortlist, k + 1: tail cluster k
    head_index = torch.where(cluster == 0, t, shortlist + cluster - 1).clamp(0, shortlist + len(tail) - 1)
    head_lp = torch.log_softmax(head(x), dim=1)
    out = head_lp.gather(1, head_index.unsqueeze(1)).squeeze(1).to(x.dtype)
    for k, proj in enumerate(tail):
        lo, hi = cutoffs[k], cutoffs[k + 1]
        mask = cluster == k + 1
        if compiling:
            local = (t - lo).clamp(0, hi - lo - 1).unsqueeze(1)
            lp = torch.log_softmax(proj(x), dim=1).gather(1, local).squeeze(1)
            _check_copy(out, lp)  # under torch.compile: whether or not the cluster has rows
            out = out + torch.where(mask, lp, 0.0)
            continue
        rows = mask.nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        local = (t.index_select(0, rows) - lo).unsqueeze(1)
        lp = torch.log_softmax(proj(x.index_select(0, rows)), dim=1).gather(1, local).squeeze(1)
        _check_copy(out, lp)
        out = out.index_add(0, rows, lp)
    return out if batched else out.squeeze(0)


def adaptive_log_prob(input: Tensor, head_output: Tensor, tail: Sequence[Callable[[Tensor], Tensor]],
                      cutoffs: Sequence[int]) -> Tensor:
    """``log p(c | input)`` for every class ``c``, ``(N, n_classes)``, from the head's logits."""
    head_lp = torch.log_softmax(head_output, dim=1)
    shortlist = cutoffs[0]
    parts = [head_lp[:, :shortlist]]
    for k, proj in enumerate(tail):
        parts.append(torch.log_softmax(proj(input), dim=1) + head_lp[:, shortlist + k].unsqueeze(1))
    return torch.cat(parts, dim=1).to(input.dtype)  # torch writes the parts into input.new_empty
