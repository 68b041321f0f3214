"""``Many``: a list of tensors that answers tensor methods with one ``torch._foreach_*`` call each.

An update rule written for one tensor (``m.lerp_(g, 1 - b1)``, ``p.addcdiv_(m, d, value=-lr)``) runs
unchanged on ``Many`` values, which is how optimlab's multi-tensor path reuses the per-tensor math
instead of restating it. Arguments that are ``Many`` are unwrapped to their lists; scalars, 0-d
tensors and per-tensor scalar lists pass through as ``torch._foreach_*`` accepts them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor


def _unwrap(x: Any) -> Any:
    return x.tensors if isinstance(x, Many) else x


class Many:
    """A list of same-device, same-dtype tensors with foreach-backed tensor methods."""

    __slots__ = ("tensors",)

    def __init__(self, tensors: Sequence[Tensor]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.tensors)

    def __getitem__(self, i: int) -> Tensor:
        return self.tensors[i]

    def __neg__(self) -> Many:
        return Many(torch._foreach_neg(self.tensors))

    def detach(self) -> Many:
        return Many([t.detach() for t in self.tensors])

    def clone(self) -> Many:
        return Many([t.clone() for t in self.tensors])

    def copy_(self, src: Many) -> Many:
        torch._foreach_copy_(self.tensors, src.tensors)
        return self

    def zero_(self) -> Many:
        torch._foreach_zero_(self.tensors)
        return self


def _inplace(op: str) -> Any:
    fn = getattr(torch, f"_foreach_{op}_")

    def method(self: Many, *args: Any, **kwargs: Any) -> Many:
        fn(self.tensors, *map(_unwrap, args), **kwargs)
        return self

    method.__name__ = f"{op}_"
    method.__doc__ = f"In place: ``torch._foreach_{op}_``."
    return method


def _outofplace(op: str) -> Any:
    fn = getattr(torch, f"_foreach_{op}")

    def method(self: Many, *args: Any, **kwargs: Any) -> Many:
        return Many(fn(self.tensors, *map(_unwrap, args), **kwargs))

    method.__name__ = op
    method.__doc__ = f"Out of place: ``torch._foreach_{op}``."
    return method


_BINARY = ("add", "sub", "mul", "div", "lerp", "addcmul", "addcdiv", "maximum", "minimum", "pow", "clamp_min",
           "clamp_max")
_UNARY = ("sqrt", "abs", "exp", "log", "sign", "reciprocal", "neg", "sigmoid", "tanh")

for _op in _BINARY + _UNARY:
    setattr(Many, f"{_op}_", _inplace(_op))
    if _op != "neg":
        setattr(Many, _op, _outofplace(_op))
