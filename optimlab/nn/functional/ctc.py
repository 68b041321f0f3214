"""Connectionist temporal classification loss (functional form, ``torch.nn.functional.ctc_loss``'s signature).

The forward (α) and backward (β) recursions run in log space over the extended label sequence
``l' = (blank, l₁, blank, l₂, …, l_S, blank)``, vectorised over the batch and all ``2S+1`` label positions,
looping only over time:

``α_t(s) = logsumexp(α_{t-1}(s), α_{t-1}(s-1), [skip_s]·α_{t-1}(s-2)) + lp_t(l'_s)``, skip allowed when
``l'_s ≠ l'_{s-2}``; ``nll = -logsumexp(α_{T-1}(2S), α_{T-1}(2S-1))``.

The gradient is torch's: ``∂/∂lp_t(c) = exp(lp_t(c)) - exp(log Σ_{s: l'_s = c} e^{α_t(s) + β_t(s)} + nll - lp_t(c))``
(the first term assumes ``lp`` comes from ``log_softmax``, as torch's kernel does), 0 for ``t ≥ T_n``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .. import _reduction as R

__all__ = ["ctc_loss"]

_NEG_INF = -math.inf
_SHIFT_FLOOR = -80.0  # exp of anything lower is a float32 subnormal or 0


def _lengths(lengths: Tensor | Sequence[int] | int, name: str) -> Tensor:
    """Lengths given as a tensor, tuple or list, as a 1-D int64 CPU tensor."""
    if isinstance(lengths, Tensor):
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise RuntimeError(f"{name} must be integral")
        return lengths.detach().to("cpu", torch.int64).reshape(-1)
    return torch.as_tensor(lengths, dtype=torch.int64).reshape(-1)


def _padded_targets(targets: Tensor, tl: Tensor, n: int, blank: int, n_classes: int) -> Tensor:
    """Targets as an ``(N, S_max)`` int64 tensor, positions past each length set to ``blank``. Accepts padded
    ``(N, S)`` and concatenated 1-D targets; raises on sizes that would read past the data and on labels
    outside ``[0, C)``."""
    targets = targets.long()
    s_max = int(tl.max()) if tl.numel() else 0
    if targets.dim() == 1:
        total = int(tl.sum())
        if targets.numel() != total:
            raise RuntimeError(f"Expected tensor to have size {total} at dimension 0, but got size "
                               f"{targets.numel()} for argument #2 'targets' (concatenated targets must hold "
                               "sum(target_lengths) labels)")
        offsets = (torch.cumsum(tl, 0) - tl).to(targets.device)
        idx = offsets.unsqueeze(1) + torch.arange(s_max, device=targets.device)
        inside = torch.arange(s_max, device=targets.device) < tl.to(targets.device).unsqueeze(1)
        out = targets[idx.clamp(max=max(total - 1, 0))] if total else idx.new_zeros(idx.shape)
    else:
        if targets.size(0) != n:
            raise RuntimeError(f"Expected tensor to have size {n} at dimension 0, but got size {targets.size(0)} "
                               "for argument #2 'targets'")
        if targets.size(1) < s_max:
            raise RuntimeError(f"Expected tensor to have size at least {s_max} at dimension 1, but got size "
                               f"{targets.size(1)} for argument #2 'targets' (a target length exceeds it)")
        out = targets[:, :s_max]
        inside = torch.arange(s_max, device=targets.device) < tl.to(targets.device).unsqueeze(1)
    bad = inside & ((out < 0) | (out >= n_classes))
    if bool(bad.any()):
        raise IndexError(f"Target {int(out[bad][0])} is out of bounds (log_probs has {n_classes} classes).")
    return torch.where(inside, out, blank)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: Tensor | Sequence[int],
             target_lengths: Tensor | Sequence[int], blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False) -> Tensor:
    """CTC negative log likelihood of ``targets`` under per-frame ``log_probs`` ``(T, N, C)`` (or ``(T, C)``).

    ``mean`` divides each sample's loss by its target length (at least 1), then averages over the batch;
    impossible alignments give ``inf``, or 0 (and a zero gradient) with ``zero_infinity``."""
    reduction = R.check(reduction)
    il = _lengths(input_lengths, "input_lengths")
    tl = _lengths(target_lengths, "target_lengths")
    batched = log_probs.dim() == 3
    lp = log_probs if batched else log_probs.unsqueeze(1)
    if lp.dim() != 3:
        raise RuntimeError(f"Expected 3-dimensional tensor, but got {lp.dim()}-dimensional tensor for argument #1 "
                           "'log_probs'")
    if lp.dtype not in (torch.float32, torch.float64):
        raise NotImplementedError(f"ctc_loss is implemented for float32 and float64 log_probs, not {lp.dtype}")
    t_max, n, n_classes = lp.shape
    if not 0 <= blank < n_classes:
        raise RuntimeError("blank must be in label range")
    if il.numel() != n:
        raise RuntimeError("input_lengths must be of size batch_size")
    if tl.numel() != n:
        raise RuntimeError("target_lengths must be of size batch_size")
    for name, lengths in (("input_lengths", il), ("target_lengths", tl)):
        if n and int(lengths.min()) < 0:
            raise RuntimeError(f"Expected {name} to have value at least 0, but got value {int(lengths.min())}")
    if n and int(il.max()) > t_max:
        raise RuntimeError(f"Expected input_lengths to have value at most {t_max}, but got value {int(il.max())}")
    padded = _padded_targets(targets, tl, n, blank, n_classes).to(lp.device)
    nll = CTCNegLogLikelihood.apply(lp, padded, il.to(lp.device), tl.to(lp.device), blank, zero_infinity)
    if zero_infinity:
        nll = torch.where(nll == math.inf, 0.0, nll)
    if reduction == "mean":  # per-sample loss over its target length (at least 1), then the batch mean
        return R.reduce(nll / tl.to(device=lp.device, dtype=lp.dtype).clamp_min(1), "mean")
    return R.reduce(nll if batched else nll.squeeze(0), reduction)


def _extended(padded: Tensor, blank: int) -> tuple[Tensor, Tensor]:
    """Extended labels ``l'`` ``(N, 2S+1)`` and where the ``s-2 → s`` skip is allowed: ``l'_s ≠ l'_{s-2}``
    (never between blanks; like torch, a label equal to ``blank`` is not special-cased)."""
    n, s = padded.shape
    ext = padded.new_full((n, 2 * s + 1), blank)
    ext[:, 1::2] = padded
    skip = torch.zeros_like(ext, dtype=torch.bool)
    skip[:, 2:] = ext[:, 2:] != ext[:, :-2]
    return ext, skip


def _alpha(lp_ext: Tensor, skip: Tensor) -> Tensor:
    """α for every frame (frames past a sample's length are computed but never read), stored padded as
    ``(T+1, B, 2S+3)``: α is ``[:T, :, 2:]``; the two leading columns and the last frame stay -inf.

    Each step is a three-way log-sum-exp over (stay, advance one, skip) as two fused ``logaddexp`` kernels; the
    -inf columns make the shifted candidates views, the -inf frame gives :meth:`_Reversed.back` a -inf to read."""
    t_max, b, s_ext = lp_ext.shape
    alpha = lp_ext.new_full((t_max + 1, b, s_ext + 2), _NEG_INF)
    if t_max == 0:
        return alpha
    alpha[0, :, 2:4] = lp_ext[0, :, :2]
    skip_add = torch.zeros_like(lp_ext[0]).masked_fill_(~skip, _NEG_INF)  # 0 where a skip is allowed
    # per-frame views made once: the loop body is then four kernels and no indexing
    stay, step, jump = alpha[:, :, 2:].unbind(0), alpha[:, :, 1:-1].unbind(0), alpha[:, :, :-2].unbind(0)
    frames = lp_ext.unbind(0)
    for t in range(1, t_max):
        best = torch.logaddexp(stay[t - 1], step[t - 1])
        torch.logaddexp(best, jump[t - 1] + skip_add, out=best)
        torch.add(best, frames[t], out=stay[t])
    return alpha


def _reversal(size: int, lengths: Tensor, batch_first: bool) -> tuple[Tensor, Tensor]:
    """Per-sample reversal of the first ``lengths[n]`` of ``size`` positions: indices ``len - 1 - i`` (clamped
    into range) and the mask ``i < len``; shaped ``(N, size)`` if ``batch_first`` else ``(size, N)``."""
    pos = torch.arange(size, device=lengths.device)
    pos, ln = (pos.view(1, -1), lengths.view(-1, 1)) if batch_first else (pos.view(-1, 1), lengths.view(1, -1))
    return (ln - 1 - pos).clamp(0, max(size - 1, 0)), pos < ln


class _Reversed:
    """Each sample's frames and extended labels reversed, so that β is α of the reversed problem:
    ``β_t(s) = α^rev_{T_n-1-t}(2L_n - s)``, gathered through flat indices (``index_select``: measured several
    times faster than ``take`` or ``gather`` here). Positions outside a sample's frames and labels read a clamped,
    valid entry of ``lp_ext`` (never reaching a kept value) and a -inf pad of the stored α (so β needs no mask)."""

    def __init__(self, lp_ext: Tensor, skip: Tensor, il: Tensor, tl: Tensor) -> None:
        t_max, n, s_ext = lp_ext.shape
        s_idx, s_in = _reversal(s_ext, 2 * tl + 1, batch_first=True)  # (N, 2S+1)
        t_idx, t_in = _reversal(t_max, il, batch_first=False)  # (T, N)
        # the skip r-2 → r of the reversed labels is the original skip s → s+2, allowed by the mask at s+2
        pos = torch.arange(s_ext, device=skip.device)
        self.skip = skip.gather(1, (s_idx + 2).clamp_max(s_ext - 1)) & s_in & (pos >= 2)
        small = torch.int32 if 2 * (t_max + 1) * n * (s_ext + 2) < 2**31 else torch.int64  # int32: half the bytes
        sample = torch.arange(n, device=skip.device)
        self.shape = lp_ext.shape
        self.lp_ext = self._select(lp_ext.reshape(-1), ((t_idx * n + sample) * s_ext).to(small), s_idx.to(small))
        # into _alpha's padded (T+1, 2N, 2S+3) storage of the stacked problem: the reversed half's rows, column
        # s + 2; outside the frames, the all -inf last frame, outside the labels, a -inf pad column
        rows = torch.where(t_in, t_idx * (2 * n) + n + sample, t_max * 2 * n) * (s_ext + 2)
        self.back_cols = torch.where(s_in, s_idx + 2, 0).to(small)
        self.back_rows = rows.to(small)

    def _select(self, flat: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """``flat[rows[t, n] + cols[n, s]]`` shaped ``(T, N, 2S+1)``."""
        return flat.index_select(0, torch.add(rows.unsqueeze(2), cols.unsqueeze(0)).view(-1)).view(self.shape)

    def back(self, padded: Tensor) -> Tensor:
        """β from :func:`_alpha`'s padded storage of the stacked problem, -inf outside frames and labels."""
        return self._select(padded.view(-1), self.back_rows, self.back_cols)


class CTCNegLogLikelihood(torch.autograd.Function):
    """Per-sample CTC ``nll`` ``(N,)`` with torch's gradient (see the module docstring); no double backward,
    like torch. When a gradient is needed, β runs in the same time loop as α (the reversed problem stacked
    on the batch), so backward has no loop."""

    @staticmethod
    def forward(ctx: Any, lp: Tensor, padded: Tensor, il: Tensor, tl: Tensor, blank: int,
                zero_infinity: bool) -> Tensor:
        t_max, n, _ = lp.shape
        ext, skip = _extended(padded, blank)
        lp_ext = lp.gather(2, ext.unsqueeze(0).expand(t_max, -1, -1))
        rev = _Reversed(lp_ext, skip, il, tl) if ctx.needs_input_grad[0] else None
        if rev is None:
            alpha = _alpha(lp_ext, skip)[:t_max, :, 2:]
        else:
            both = _alpha(torch.cat((lp_ext, rev.lp_ext), 1), torch.cat((skip, rev.skip), 0))
            alpha = both[:t_max, :n, 2:]
        last_t = (il - 1).clamp_min(0)
        rows = alpha[last_t, torch.arange(n, device=lp.device)]  # (N, 2S+1) at each sample's last frame
        end = (2 * tl).unsqueeze(1)
        a_end = rows.gather(1, end).squeeze(1)
        a_before = torch.where(tl > 0, rows.gather(1, (end - 1).clamp_min(0)).squeeze(1), _NEG_INF)
        nll = -torch.logaddexp(a_end, a_before)
        empty = il == 0  # no frames: probability 1 for an empty target, 0 otherwise
        nll = torch.where(empty, torch.where(tl == 0, 0.0, math.inf), nll).to(lp.dtype)
        if rev is not None:
            # log posterior of each (frame, label position), before adding the nll
            log_ab = alpha + rev.back(both)  # log α·β per (frame, label position)
            # torch's kernel assigns (not adds) the last label's share at the last frame, assuming it differs from
            # blank; when a target ends in the blank label, the final blank position's share is thereby dropped.
            last_label = padded.gather(1, (tl - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
            ends_blank = (tl > 0) & (il > 0) & (last_label == blank)
            if bool(ends_blank.any()):
                k = ends_blank.nonzero().squeeze(1)
                log_ab[il[k] - 1, k, 2 * tl[k]] = _NEG_INF
            ctx.save_for_backward(lp, ext, il, log_ab, nll)
        ctx.zero_infinity = zero_infinity
        return nll

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        lp, ext, il, log_ab, nll = ctx.saved_tensors
        with torch.no_grad():
            g = _ctc_grad(lp, ext, il, log_ab, nll, grad, ctx.zero_infinity)
        if torch.is_grad_enabled():  # create_graph: differentiating this gradient must raise, as in torch
            g = _NoDoubleBackward.apply(g, lp)
        return g, None, None, None, None, None


class _NoDoubleBackward(torch.autograd.Function):
    """Identity on the CTC gradient whose own backward raises (torch defines no CTC double backward)."""

    @staticmethod
    def forward(ctx: Any, g: Tensor, lp: Tensor) -> Tensor:
        return g.clone()

    @staticmethod
    def backward(ctx: Any, _: Tensor) -> tuple[None, None]:
        raise RuntimeError("derivative for the backward of ctc_loss is not implemented (as in torch)")


def _ctc_grad(lp: Tensor, ext: Tensor, il: Tensor, log_ab: Tensor, nll: Tensor, grad: Tensor,
              zero_infinity: bool) -> Tensor:
    """torch's CTC gradient ``exp(lp) - exp(lcab + nll - lp)`` times the incoming gradient, 0 past each input
    length; ``lcab_c = log Σ_{s: l'_s = c} α_s·β_s`` is accumulated in log space, in torch's order of operations
    (so huge or infinite log-probabilities give the same inf/NaN pattern)."""
    t_max = lp.size(0)
    index = ext.unsqueeze(0).expand(t_max, -1, -1)
    # log-sum-exp per class, shifted by each class's own maximum (a shared shift would flush classes far below it)
    m = torch.full_like(lp, _NEG_INF).scatter_reduce_(2, index, log_ab, "amax")
    m = torch.where(torch.isfinite(m), m, 0.0)
    # exp and log of -inf or 0, and exp into the subnormals, run ~10x slower: terms below e^-80 of their class's
    # maximum (which contributes 1) cannot change the sum and are set to 0 directly, as is the log of a 0 sum
    shifted = log_ab - m.gather(2, index)
    low = shifted < _SHIFT_FLOOR
    shifted = shifted.clamp_min_(_SHIFT_FLOOR).exp_().masked_fill_(low, 0.0)
    total = torch.zeros_like(lp).scatter_add_(2, index, shifted)
    empty = total == 0
    lcab = total.masked_fill_(empty, 1.0).log_().masked_fill_(empty, _NEG_INF).add_(m)
    g = torch.exp(lp).sub_(lcab.add_(nll.view(1, -1, 1)).sub_(lp).exp_())
    inf = torch.isinf(nll).view(1, -1, 1)
    g = g.masked_fill_(inf, 0.0 if zero_infinity else math.nan)  # torch: NaN, or 0 with zero_infinity
    live = torch.arange(t_max, device=lp.device).view(-1, 1, 1) < il.view(1, -1, 1)
    return torch.where(live, g.mul_(grad.view(1, -1, 1)), 0.0)
