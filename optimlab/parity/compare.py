"""Elementwise comparison of optimlab's results with torch's, shared by every family's engine."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .tolerances import ACCURACY_FACTOR, ACCURACY_ULPS, Tol, for_dtype


@dataclass
class Diff:
    """Worst error seen so far: max absolute and relative error, and whether all were in tolerance."""

    max_abs: float = 0.0
    max_rel: float = 0.0
    ok: bool = True
    what: str = ""  # the first thing that failed

    def merge(self, other: Diff) -> Diff:
        self.max_abs = max(self.max_abs, other.max_abs)
        self.max_rel = max(self.max_rel, other.max_rel)
        if self.ok and not other.ok:
            self.ok, self.what = False, other.what
        return self


def tensors(ours: torch.Tensor, ref: torch.Tensor, what: str, bitwise: bool = False, tol: Tol | None = None) -> Diff:
    """Compare two tensors (shape, dtype, values) under ``tol`` (default: the table for ``ref.dtype``)."""
    if not isinstance(ours, torch.Tensor) or not isinstance(ref, torch.Tensor):
        return Diff(ok=False, what=f"{what}: expected tensors, got {type(ours).__name__}/{type(ref).__name__}")
    if ours.shape != ref.shape:
        return Diff(ok=False, what=f"{what}: shape {tuple(ours.shape)} != torch's {tuple(ref.shape)}")
    if ours.dtype != ref.dtype:
        return Diff(ok=False, what=f"{what}: dtype {ours.dtype} != torch's {ref.dtype}")
    if ours.is_sparse or ref.is_sparse:
        ours, ref = ours.to_dense(), ref.to_dense()
    a, b = ours.detach(), ref.detach()
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    if not a.is_floating_point():
        same = bool(torch.equal(a, b))
        return Diff(ok=same, what="" if same else f"{what}: integer values differ")
    a64, b64 = a.to(torch.float64).cpu(), b.to(torch.float64).cpu()
    nan_a, nan_b = a64.isnan(), b64.isnan()
    if not torch.equal(nan_a, nan_b):
        return Diff(math.nan, math.nan, False, f"{what}: NaN in different places")
    both_inf = a64.isinf() & b64.isinf() & (a64 == b64)
    finite = ~(nan_a | both_inf)
    if bool((a64.isinf() ^ b64.isinf()).any()):
        return Diff(math.inf, math.inf, False, f"{what}: inf in different places")
    err = (a64 - b64).abs()[finite]
    mag = b64.abs()[finite]
    max_abs = float(err.max()) if err.numel() else 0.0
    rel = err / mag.clamp_min(torch.finfo(torch.float64).tiny)
    max_rel = float(rel.max()) if rel.numel() else 0.0
    if bitwise:
        ok = bool((err == 0).all())
    else:
        tol = tol or for_dtype(ref.dtype)
        ok = bool((err <= tol.atol + tol.rtol * mag).all())
    return Diff(max_abs, max_rel, ok, "" if ok else f"{what}: max abs {max_abs:.3g}, max rel {max_rel:.3g}")


def accuracy(ours: torch.Tensor, ref: torch.Tensor, ref64: torch.Tensor, what: str, tol: Tol | None = None) -> Diff:
    """:func:`tensors` (under ``tol``), or, where that fails, accuracy mode (see :mod:`.tolerances`): the same
    NaN and inf positions as ``ref`` and ``max|ours - ref64| <= ACCURACY_FACTOR * max|ref - ref64| + atol``
    over the finite values, ``ref64`` being torch's float64 evaluation."""
    diff = tensors(ours, ref, what, tol=tol)
    structural = ours.shape != ref.shape or ours.dtype != ref.dtype or not math.isfinite(diff.max_abs)
    if diff.ok or structural or ref64.shape != ref.shape:
        return diff  # in tolerance, or a difference no accuracy can excuse (shape, dtype, NaN/inf positions)
    err_ours, err_torch, _ = _errors_against(ours, ref, ref64)
    ok = err_ours <= ACCURACY_FACTOR * err_torch + for_dtype(ref.dtype).atol
    diff.ok = ok
    diff.what = "" if ok else (f"{what}: error against float64 {err_ours:.3g} > {ACCURACY_FACTOR:g} x torch's "
                               f"{err_torch:.3g}")
    return diff


def _errors_against(ours: torch.Tensor, ref: torch.Tensor, ref64: torch.Tensor) -> tuple[float, float, float]:
    """``max|ours - ref64|``, ``max|ref - ref64|`` and ``max|ref64|`` over the entries finite in all three."""
    o, r, e = (t.detach().to(torch.float64).cpu() for t in (ours, ref, ref64))
    finite = o.isfinite() & r.isfinite() & e.isfinite()
    if not bool(finite.any()):
        return 0.0, 0.0, 0.0
    o, r, e = o[finite], r[finite], e[finite]
    return float((o - e).abs().max()), float((r - e).abs().max()), float(e.abs().max())


def accurate(ours: torch.Tensor, ref: torch.Tensor, ref64: torch.Tensor, what: str) -> Diff:
    """The accuracy check every float32 loss result must pass (besides :func:`tensors`): against torch's float64
    evaluation ``ref64``, ``max|ours - ref64| <= ACCURACY_FACTOR * max|ref - ref64| + ACCURACY_ULPS * ε * max|ref64|``
    (ε: the float32 machine epsilon), over the entries finite in all three. A result within the elementwise
    tolerance of torch's can still be several times less accurate than torch's (issue 11: cross entropy's
    gradient); this catches that."""
    if ours.shape != ref.shape or ref64.shape != ref.shape:
        return Diff()  # structural differences are :func:`tensors`' to report
    err_ours, err_torch, mag = _errors_against(ours, ref, ref64)
    bound = ACCURACY_FACTOR * err_torch + ACCURACY_ULPS * torch.finfo(torch.float32).eps * mag
    ok = err_ours <= bound
    return Diff(ok=ok, what="" if ok else (f"{what}: float32 error against float64 {err_ours:.3g} > "
                                           f"{ACCURACY_FACTOR:g} x torch's {err_torch:.3g} + {ACCURACY_ULPS:g} ulp"))


def scalars(ours: float, ref: float, what: str, tol: Tol, bitwise: bool = False) -> Diff:
    """Compare two Python numbers (a scheduler's lr, a returned loss)."""
    ours, ref = float(ours), float(ref)
    if math.isnan(ref) or math.isnan(ours):
        ok = math.isnan(ref) and math.isnan(ours)
        return Diff(0.0 if ok else math.nan, 0.0 if ok else math.nan, ok, "" if ok else f"{what}: {ours} vs {ref}")
    if ours == ref:
        return Diff()
    err = abs(ours - ref)
    rel = err / abs(ref) if ref else math.inf
    ok = (not bitwise) and err <= tol.atol + tol.rtol * abs(ref)
    return Diff(err, rel, ok, "" if ok else f"{what}: {ours!r} != torch's {ref!r}")
