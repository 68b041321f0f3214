"""The tolerance table: the one place where "equal to torch" is given a number.

A value ``ours`` matches torch's ``ref`` when, elementwise, ``|ours - ref| <= atol + rtol * |ref|``
(NaN matches NaN, ±inf matches the same inf). Cases marked ``bitwise`` in the catalogue must instead
be identical (``torch.equal`` up to NaN positions).

* Tensors: by dtype, below. float64/float32 rtol follow the rounding of a few dozen dependent ops;
  bfloat16/float16 keep 8/11 mantissa bits, so a one-ulp difference in an intermediate is ~4e-3/5e-4.
* Accuracy mode (a loss case with ``extra["accuracy"]``, used by CTC): a float32 result that misses the table
  still passes when its max error against torch's float64 evaluation of the same inputs is at most
  ``ACCURACY_FACTOR`` times torch's own float32 max error (plus the table's atol). CTC's float32 gradient is
  a long chain of log-sum-exps whose rounding grows with T: at T=100 both torch's and ours are ~1e-4 from
  the float64 value, far above rtol 1e-5, so elementwise agreement with torch's float32 result would only
  test that the rounding happens in the same order. The factor allows for our recursion rounding twice per
  frame (two pairwise ``logaddexp``) where torch's kernel rounds once (a three-way log-sum-exp).
* Schedulers compare Python floats (float64) after every step at ``SCHED`` (issue 5: rel 1e-12,
  abs 1e-15 near zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tol:
    rtol: float
    atol: float


TENSOR: dict[torch.dtype, Tol] = {
    torch.float64: Tol(rtol=1e-10, atol=1e-12),
    torch.float32: Tol(rtol=1e-5, atol=1e-6),
    torch.bfloat16: Tol(rtol=1.6e-2, atol=1e-3),
    torch.float16: Tol(rtol=2e-3, atol=1e-4),
}
TENSOR[torch.complex128] = TENSOR[torch.float64]
TENSOR[torch.complex64] = TENSOR[torch.float32]

ACCURACY_FACTOR = 3.0

#: ``fused=True`` (optimlab's compiled rule, and torch's fused kernels) against torch's for-loop path.
#: The compiled kernel evaluates the same formula with other roundings: scalar coefficients (bias
#: corrections, lr) in float64 and rounded once, the rule's tensor-step formula order (torch's
#: capturable order), FMA contraction, products in place of ``value=``/``alpha=`` arguments, and
#: in bf16/fp16 float32 intermediates where eager rounds after every op. Each step differs by a few
#: ulps and that compounds over a run of steps, hence 2x the float32 row (measured: ≤ 4e-6 relative
#: after 10 steps of every optimizer on the test problem) and the table's low-precision rows.
FUSED: dict[torch.dtype, Tol] = {
    torch.float64: Tol(rtol=1e-9, atol=1e-12),
    torch.float32: Tol(rtol=2e-5, atol=2e-6),
    torch.bfloat16: TENSOR[torch.bfloat16],
    torch.float16: TENSOR[torch.float16],
}

SCHED = Tol(rtol=1e-12, atol=1e-15)


def for_dtype(dtype: torch.dtype) -> Tol:
    """The tolerance for values of ``dtype`` (integer/bool values must match exactly)."""
    return TENSOR.get(dtype, Tol(0.0, 0.0))
