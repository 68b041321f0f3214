"""Connectionist temporal classification loss (functional form, ``torch.nn.functional.ctc_loss``'s signature).

The forward (α) and backward (β) recursions run in log space over the extended label sequence
``l' = (blank, l₁, blank, l₂, …, l_S, blank)``, vectorised over the batch and all ``2S+1`` label positions,
looping only over time:

``α_t(s) = logsumexp(α_{t-1}(s), α_{t-1}(s-1), [skip_s]·α_{t-1}(s-2)) + lp_t(l'_s)``, skip allowed when
``l'_s ≠ l'_{s-2}``; ``nll = -logsumexp(α_{T-1}(2S), α_{T-1}(2S-1))``.

The gradient is torch's: ``∂/∂lp_t(c) = exp(lp_t(c)) - Σ_{s: l'_s = c} γ_t(s)`` with the posterior
``γ_t(s) = exp(α_t(s) + β_t(s) + nll - lp_t(l'_s))`` (α and β both include frame t's emission; the first term
assumes ``lp`` comes from ``log_softmax``, as torch's kernel does), 0 for ``t ≥ T_n``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .. import _reduction as R
from ._autograd import apply

__all__ = ["ctc_loss"]

_NEG_INF = -math.inf
# exp of anything below about -87 is a float32 subnormal or 0, which ATen's vectorised exp computes 10-40x slower:
# posteriors below e^-80 (< 2e-35, far under any tolerance) are set to 0 directly
_EXP_FLOOR = -80.0


def _lengths(lengths: Tensor | Sequence[int] | int, name: str) -> Tensor:
    """Lengths given as a tensor, tuple or list, as a 1-D int64 CPU tensor."""
    if isinstance(lengths, Tensor):
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise RuntimeError(f"{name} must be integral")
        return lengths.detach().to("cpu", torch.int64).reshape(-1)
    return torch.as_tensor(lengths, dtype=torch.int64).reshape(-1)


def _padded_targets(targets: Tensor, tl: Tensor, n: int, blank: int, n_classes: int) -> Tensor:
    """Targets as an ``(N, S_max)`` int64 tensor of labels in ``[0, C)``; past each length any such label (those
    positions are never read: α there is unused and β is -inf). Accepts padded ``(N, S)`` and concatenated 1-D
    targets; raises on sizes that would read past the data and on labels outside ``[0, C)``."""
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
    if not R.host(out):  # on a device: no host read; positions past each length become blank, indexing checks
        return torch.where(inside, out, blank)
    if out.numel():
        lo, hi = (int(v) for v in torch.aminmax(out))  # one pass: in the common case no masks are needed
        if 0 <= lo and hi < n_classes:
            return out
    bad = inside & ((out < 0) | (out >= n_classes))
    if bool(bad.any()):
        raise IndexError(f"Target {int(out[bad][0])} is out of bounds (log_probs has {n_classes} classes).")
    return torch.where(inside, out, blank)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: Tensor | Sequence[int],
             target_lengths: Tensor | Sequence[int], blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False) -> Tensor:
    """CTC negative log likelihood of ``targets`` under per-frame ``log_probs`` ``(T, N, C)`` (or ``(T, C)``).

    ``mean`` divides each sample's loss by its target length (at least 1), then averages over the batch;
    impossible alignments give ``inf``, or 0 (and a zero gradient) with ``zero_infinity``.

    Under ``torch.compile`` it runs eagerly behind one graph break, as torch's ``ctc_loss`` does (its
    length-dependent shapes cannot be one graph in torch either); traced, its host-side length checks and
    the per-frame loop would break the graph many times and take a minute to compile on a small CPU."""
    if torch.compiler.is_compiling():
        return _untraced()(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity)
    return _ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity)


def _ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: Tensor | Sequence[int],
              target_lengths: Tensor | Sequence[int], blank: int, reduction: str, zero_infinity: bool) -> Tensor:
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
    if n:  # the lengths live on the host (as torch's ctc_loss takes them): read once, checked in Python
        ils, tls = il.tolist(), tl.tolist()
        for name, low in (("input_lengths", min(ils)), ("target_lengths", min(tls))):
            if low < 0:
                raise RuntimeError(f"Expected {name} to have value at least 0, but got value {low}")
        if max(ils) > t_max:
            raise RuntimeError(f"Expected input_lengths to have value at most {t_max}, but got value {max(ils)}")
    padded = _padded_targets(targets, tl, n, blank, n_classes).to(lp.device)
    nll = apply(CTCNegLogLikelihood, lp, padded, il.to(lp.device), tl.to(lp.device), blank, zero_infinity)
    if zero_infinity:
        nll = torch.where(nll == math.inf, 0.0, nll)
    if reduction == "mean":  # per-sample loss over its target length (at least 1), then the batch mean
        return R.reduce(nll / tl.to(device=lp.device, dtype=lp.dtype).clamp_min(1), "mean")
    return R.reduce(nll if batched else nll.squeeze(0), reduction)


_UNTRACED: list[Callable[..., Tensor]] = []


def _untraced() -> Callable[..., Tensor]:
    """``torch.compiler.disable(_ctc_loss)`` (Dynamo's graph break; eager calls skip it), made on first use:
    making it imports ``torch._dynamo``, which ``import optimlab`` must not."""
    if not _UNTRACED:
        _UNTRACED.append(torch.compiler.disable(_ctc_loss))
    return _UNTRACED[0]


def _extended(padded: Tensor, blank: int) -> Tensor:
    """Extended labels ``l' = (blank, l₁, blank, …, l_S, blank)``, ``(N, 2S+1)``."""
    n, s = padded.shape
    ext = padded.new_full((n, 2 * s + 1), blank)
    ext[:, 1::2] = padded
    return ext


def _columns(ext: Tensor, fill: int) -> Tensor:
    """Per-position values ``(B, 2S+1)`` as α's rows ``(2S+2, B)``: the S+1 blank positions (even ``s``), a gap
    row holding ``fill``, the S label positions (odd ``s``). Position ``2k`` is row ``k``, ``2k+1`` row ``S+2+k``."""
    s = (ext.size(1) - 1) // 2
    out = ext.new_full((2 * s + 2, ext.size(0)), fill)
    out[: s + 1] = ext[:, 0::2].t()
    out[s + 2:] = ext[:, 1::2].t()
    return out


def _alpha(lp_ext: Tensor, skip: Tensor, start: Tensor) -> Tensor:
    """α of every frame, stored ``(T+1, 2S+2, B)`` in :func:`_columns`' row order (positions before the batch, so
    every per-frame operand below is one contiguous block, which ATen vectorises end to end), from ``α_{-1}`` =
    log 1 at each problem's ``start`` row (-inf elsewhere); ``[t+1]`` is ``α_t``, the gap row stays -inf.
    ``skip[k, b]``: the jump from label ``k-1`` to label ``k`` is allowed (``l'_{2k+1} ≠ l'_{2k-1}``). Frames past
    a problem's length are computed but never read.

    A blank ``2k`` has no skip, ``α_{t+1}(2k) = v(k) + lp`` with ``v(k) = logaddexp(α(2k), α(2k-1))``, and the
    label ``2k+1`` reuses that pair: ``α_{t+1}(2k+1) = logaddexp(α(2k+1), v(k) if skip else α(2k)) + lp``. Per
    frame that is two ``logaddexp`` kernels over S+1 and S rows (the plain three-way form needs two over 2S+1),
    a ``where`` only if some label repeats its predecessor, and one add of the frame's emissions (-inf in the gap
    row) that writes the whole frame."""
    t_max, width, b = lp_ext.shape
    s = (width - 2) // 2
    store = lp_ext.new_full((t_max + 1, width, b), _NEG_INF)
    store[0].scatter_(0, start.view(1, -1), 0.0)
    # per-frame views made once: the loop body is then indexing-free kernels
    blanks, before_blank = store[:, : s + 1].unbind(0), store[:, s + 1:].unbind(0)  # α(2k), α(2k-1)
    labels, frames_out, frames = store[:, s + 2:].unbind(0), store.unbind(0), lp_ext.unbind(0)
    best = torch.full_like(lp_ext[0], _NEG_INF)  # the new frame before emissions (its gap row stays -inf)
    pair, label_best = best[: s + 1], best[s + 2:]
    into_label = pair_head = pair[:s]  # v(k)
    repeats = not R.host(skip) or bool((~skip[1:]).any())  # on a device: the general recursion, no host read
    if repeats:
        blank_head, chosen = store[:, :s].unbind(0), lp_ext.new_empty((s, b))
    for t in range(t_max):
        torch.logaddexp(blanks[t], before_blank[t], out=pair)
        if repeats:
            into_label = torch.where(skip, pair_head, blank_head[t], out=chosen)
        torch.logaddexp(labels[t], into_label, out=label_best)
        torch.add(best, frames[t], out=frames_out[t + 1])
    return store


def _stacked_problems(lp: Tensor, ext: Tensor, il: Tensor, tl: Tensor, reverse: bool
                      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Emissions ``(T, 2S+2, B)`` in :func:`_columns`' row order (-inf in the gap row), label skips ``(S, B)``,
    start rows and each row's class ``(2S+2, N)`` of the forward problem and, with ``reverse``, of the reversed
    one stacked after it on the batch, whose α is β: ``β_t(s) = α^rev_{T-1-t}(2S - s)``.

    The reversed problem flips frames and extended labels of the padded batch, so sample ``n`` starts at frame
    ``T - T_n`` and position ``2(S - L_n)``; before that frame its emission is log 1 at the start and -inf
    elsewhere, which holds ``α^rev`` at its start."""
    t_max, n, classes = lp.shape
    s = (ext.size(1) - 1) // 2
    start = torch.zeros(n, dtype=torch.long, device=lp.device)
    if reverse:
        lp, ext = torch.cat((lp, lp.flip(0)), 1), torch.cat((ext, ext.flip(1)), 0)
        start = torch.cat((start, s - tl))  # position 2(S - L) is blank row S - L
    # the label-to-label skip l'_{2k+1} ≠ l'_{2k-1} (for reversed labels, the original skip s → s+2)
    skip = torch.zeros((s, ext.size(0)), dtype=torch.bool, device=ext.device)
    skip[1:] = (ext[:, 3::2] != ext[:, 1:-2:2]).t()
    index = _columns(ext, 0)
    # lp[t, b, index[c, b]] through flat class positions: index_select runs ~2x faster than gather here
    offsets = classes * torch.arange(index.size(1), device=lp.device)
    lp_ext = lp.reshape(t_max, -1).index_select(1, (index + offsets).view(-1)).view(t_max, *index.shape)
    lp_ext[:, s + 1] = _NEG_INF
    if reverse and (not R.host(il) or bool((il < t_max).any())):  # on a device: always (no host read)
        before = torch.arange(t_max, device=lp.device).view(-1, 1, 1) < (t_max - il).view(1, 1, -1)  # (T, 1, N)
        hold = torch.full((2 * s + 2, n), _NEG_INF, dtype=lp.dtype, device=lp.device)
        hold.scatter_(0, start[n:].view(1, -1), 0.0)
        lp_ext[:, :, n:] = torch.where(before, hold, lp_ext[:, :, n:])
    return lp_ext, skip, start, index[:, :n]


class CTCNegLogLikelihood(torch.autograd.Function):
    """Per-sample CTC ``nll`` ``(N,)`` with torch's gradient (see the module docstring); no double backward,
    like torch. When a gradient is needed, β runs in the same time loop as α (the reversed problem stacked
    on the batch), so backward has no loop."""

    @staticmethod
    def forward(ctx: Any, lp: Tensor, padded: Tensor, il: Tensor, tl: Tensor, blank: int,
                zero_infinity: bool) -> Tensor:
        t_max, n, _ = lp.shape
        s = padded.size(1)
        reverse = ctx.needs_input_grad[0]
        lp_ext, skip, start, index = _stacked_problems(lp, _extended(padded, blank), il, tl, reverse)
        store = _alpha(lp_ext, skip, start)
        # nll = -logaddexp(α_{T_n-1}(2L_n), α_{T_n-1}(2L_n - 1)), read from the storage: its frame T_n holds
        # α_{T_n-1} (frame 0, α_{-1}, answers T_n = 0: log 1 for an empty target, -inf otherwise); position 2L
        # is row L, position 2L-1 row S+1+L (the -inf gap row for an empty target)
        b = store.size(2)
        at_end = (il * store.size(1) + tl) * b + torch.arange(n, device=lp.device)
        flat = store.view(-1)
        nll = torch.logaddexp(flat.index_select(0, at_end), flat.index_select(0, at_end + (s + 1) * b)).neg_()
        if reverse:
            # log α·β per (frame, row, sample); β's blank and label blocks are each reversed. Past a sample's
            # frames β reads its held start (sliced off by the gradient's frame mask), past its labels -inf.
            log_ab = torch.empty_like(lp_ext[:, :, :n])
            log_ab[:, s + 1] = _NEG_INF
            for lo, hi in ((0, s + 1), (s + 2, 2 * s + 2)):
                torch.add(store[1:, lo:hi, :n], store[1:, lo:hi, n:].flip(0, 1), out=log_ab[:, lo:hi])
            # torch's kernel assigns (not adds) the last label's share at the last frame, assuming it differs from
            # blank; when a target ends in the blank label, the final blank position's share is thereby dropped.
            last_label = padded.gather(1, (tl - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
            ends_blank = (tl > 0) & (il > 0) & (last_label == blank)
            if not R.host(ends_blank):  # on a device: every sample's entry, rewritten where it ends in blank
                at = ((il - 1).clamp_min(0), tl, torch.arange(n, device=il.device))
                log_ab[at] = torch.where(ends_blank, _NEG_INF, log_ab[at])
            elif bool(ends_blank.any()):
                k = ends_blank.nonzero().squeeze(1)
                log_ab[il[k] - 1, tl[k], k] = _NEG_INF
            log_gamma = log_ab.add_(nll).sub_(lp_ext[:, :, :n])  # posterior share γ_t(s), in log space
            log_gamma[:, s + 1] = _NEG_INF  # the gap row (-inf - -inf)
            low = log_gamma < _EXP_FLOOR
            gamma = log_gamma.clamp_min_(_EXP_FLOOR).exp_().masked_fill_(low, 0.0)
            # kept for backward: the posteriors without the gap row, (T, 2S+1, N), the bytes of torch's log_alpha;
            # the row classes are recomputed from the (caller's) targets
            ctx.save_for_backward(lp, padded, il, _without_gap(gamma, s), nll)
        ctx.zero_infinity, ctx.blank = zero_infinity, blank
        return nll

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        lp, padded, il, gamma, nll = ctx.saved_tensors
        with torch.no_grad():
            index = _without_gap(_columns(_extended(padded, ctx.blank), 0), padded.size(1))
            g = _ctc_grad(lp, index, il, gamma, nll, grad, ctx.zero_infinity)
        if torch.is_grad_enabled():  # create_graph: differentiating this gradient must raise, as in torch
            g = _NoDoubleBackward.apply(g, lp)
        return g, None, None, None, None, None


def _without_gap(t: Tensor, s: int) -> Tensor:
    """``t`` in :func:`_columns`' row order (dim -2: ``2S+2`` rows) without the gap row ``S+1``."""
    return torch.cat((t[..., : s + 1, :], t[..., s + 2:, :]), -2)


class _NoDoubleBackward(torch.autograd.Function):
    """Identity on the CTC gradient whose own backward raises (torch defines no CTC double backward)."""

    @staticmethod
    def forward(ctx: Any, g: Tensor, lp: Tensor) -> Tensor:
        return g.clone()

    @staticmethod
    def backward(ctx: Any, _: Tensor) -> tuple[None, None]:
        raise RuntimeError("derivative for the backward of ctc_loss is not implemented (as in torch)")


def _ctc_grad(lp: Tensor, index: Tensor, il: Tensor, gamma: Tensor, nll: Tensor, grad: Tensor,
              zero_infinity: bool) -> Tensor:
    """torch's CTC gradient ``exp(lp) - Σ_{s: l'_s = c} γ_t(s)`` times the incoming gradient, 0 past each input
    length, NaN (or 0 with ``zero_infinity``) for an impossible alignment. ``gamma`` ``(T, 2S+1, N)`` and the row
    classes ``index`` ``(2S+1, N)`` are in :func:`_columns`' row order without its gap row."""
    t_max, n, classes = lp.shape
    total = gamma.new_zeros((t_max, classes, n)).scatter_add_(1, index.expand(t_max, -1, -1), gamma)
    host = R.host(total)  # on a device every fix-up below runs unconditionally: no host read
    if not host or (bool(total.max() > 1.0) if total.numel() else False):
        # a posterior mass is at most 1; exponents of huge magnitude (|lp| ~ 1e30) round each shared term to e^0
        total.masked_fill_((total > 1.0) & (total < math.inf), 1.0)
    g = torch.exp(lp).sub_(total.transpose(1, 2)).mul_(grad.view(1, -1, 1))
    inf = torch.isinf(nll)
    if not host or bool(inf.any()):
        g.masked_fill_(inf.view(1, -1, 1), 0.0 if zero_infinity else math.nan)  # torch: NaN, or 0 with zero_infinity
    if not host or bool((il < t_max).any()):
        g.masked_fill_(torch.arange(t_max, device=lp.device).view(-1, 1, 1) >= il.view(1, -1, 1), 0.0)
    return g
