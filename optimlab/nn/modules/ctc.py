"""Connectionist temporal classification loss (module)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from .. import functional as F
from ._base import _Loss

__all__ = ["CTCLoss"]


class CTCLoss(_Loss):
    """CTC negative log likelihood of target sequences under per-frame log-probabilities
    (see :func:`optimlab.nn.functional.ctc_loss`)."""

    __constants__ = ["blank", "reduction"]
    blank: int
    zero_infinity: bool

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        super().__init__(reduction=reduction)
        self.blank = blank
        self.zero_infinity = zero_infinity

    def forward(self, log_probs: Tensor, targets: Tensor, input_lengths: Tensor | Sequence[int],
                target_lengths: Tensor | Sequence[int]) -> Tensor:
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank, self.reduction,
                          self.zero_infinity)
