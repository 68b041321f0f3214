"""``AdaptiveLogSoftmaxWithLoss``: torch's module (same constructor, parameter names, state_dict, init order and
errors), its math in :mod:`optimlab.nn.functional.adaptive`."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import Linear, Module, ModuleList, Sequential

from .. import _reduction as R
from ..functional.adaptive import adaptive_log_prob, adaptive_target_log_prob

__all__ = ["AdaptiveLogSoftmaxWithLoss"]

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(Module):
    """Adaptive softmax (Grave et al. 2017): ``forward(input, target)`` returns ``(output, loss)`` with
    ``output_i = log p(target_i | input_i)`` and ``loss = mean_i(-output_i)``; :meth:`log_prob` gives all
    ``n_classes`` log-probabilities, :meth:`predict` the most likely class. ``head``: ``Linear(in_features,
    cutoffs[0] + n_clusters)``; ``tail[k]``: ``Sequential(Linear(in_features, in_features // div_value**(k+1)),
    Linear(…, cluster size))``, both without bias, built in torch's order (same init from the same seed)."""

    in_features: int
    n_classes: int
    cutoffs: list[int]
    div_value: float
    head_bias: bool
    head: Linear
    tail: ModuleList

    def __init__(self, in_features: int, n_classes: int, cutoffs: Sequence[int], div_value: float = 4.0,
                 head_bias: bool = False, device: Any = None, dtype: Any = None) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > (n_classes - 1)
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted in an increasing "
                             "order, where each value is between 1 and n_classes-1")
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(self.in_features, self.head_size, bias=self.head_bias, **factory_kwargs)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hsz = int(self.in_features // (self.div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(Linear(self.in_features, hsz, bias=False, **factory_kwargs),
                                        Linear(hsz, osz, bias=False, **factory_kwargs)))

    def reset_parameters(self) -> None:
        """Re-draw every parameter as ``__init__`` does."""
        self.head.reset_parameters()
        for i2h, h2o in self.tail:  # type: ignore[misc]
            i2h.reset_parameters()
            h2o.reset_parameters()

    def forward(self, input_: Tensor, target_: Tensor) -> _ASMoutput:
        """``(output, loss)``: per-sample target log-probabilities and their negated mean."""
        output = adaptive_target_log_prob(input_, target_, self.head, list(self.tail), self.cutoffs)
        loss = (-output).mean()
        return _ASMoutput(output, loss)

    def log_prob(self, input: Tensor) -> Tensor:
        """Log-probabilities of all ``n_classes`` classes, ``(N, n_classes)``."""
        return adaptive_log_prob(input, self.head(input), list(self.tail), self.cutoffs)

    def predict(self, input: Tensor) -> Tensor:
        """The most likely class per row, ``log_prob(input).argmax(1)``: the head's arg-max where it is a shortlist
        class (then no tail is needed), else the arg-max of the full distribution."""
        head_output = self.head(input)
        output = torch.argmax(head_output, dim=1)
        not_in_shortlist = output >= self.shortlist_size
        if R.host(output) and not bool(not_in_shortlist.any()):
            return output
        full = adaptive_log_prob(input, head_output, list(self.tail), self.cutoffs)
        return torch.where(not_in_shortlist, torch.argmax(full, dim=1), output)
