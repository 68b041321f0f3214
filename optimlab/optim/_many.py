"""``Many``: a list of tensors that answers tensor methods with one ``torch._foreach_*`` call each.

An update rule written for one tensor (``m.lerp_(g, 1 - b1)``, ``p.addcdiv_(m, d, value=-lr)``) runs
unchanged on ``Many`` values, which is how optimlab's multi-tensor path reuses the per-tensor math
instead of restating it. Arguments that are ``Many`` are unwrapped to their lists; scalars, 0-d
tensors and per-tensor scalar lists pass through as ``torch._foreach_*`` accepts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

#: plain tensor types: what torch's foreach ops and a flat storage alias handle (not subclasses such as DTensor)
PLAIN = (Tensor, torch.nn.Parameter)


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
        """One ``_foreach_copy_``; per tensor for tensor subclasses such as FSDP2's DTensor parameters,
        which have no sharding rule for ``_foreach_copy_``."""
        if all(type(t) in PLAIN for t in self.tensors) and all(type(t) in PLAIN for t in src.tensors):
            torch._foreach_copy_(self.tensors, src.tensors)
        else:
            for dst, s in zip(self.tensors, src.tensors, strict=True):
                dst.copy_(s)
        return self

    def zero_(self) -> Many:
        torch._foreach_zero_(self.tensors)
        return self

    # Arithmetic operators, so scalar-or-tensor expressions in a rule (``1 - beta ** step`` with a
    # tensor step, capturable mode) also run on lists.
    def __add__(self, other: Any) -> Many:
        return Many(torch._foreach_add(self.tensors, _unwrap(other)))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Many:
        return Many(torch._foreach_sub(self.tensors, _unwrap(other)))

    def __rsub__(self, other: Any) -> Many:
        out = torch._foreach_neg(self.tensors)
        torch._foreach_add_(out, _unwrap(other))
        return Many(out)

    def __mul__(self, other: Any) -> Many:
        return Many(torch._foreach_mul(self.tensors, _unwrap(other)))

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Many:
        return Many(torch._foreach_div(self.tensors, _unwrap(other)))

    def __rtruediv__(self, other: Any) -> Many:
        out = torch._foreach_reciprocal(self.tensors)
        torch._foreach_mul_(out, _unwrap(other))
        return Many(out)

    def __pow__(self, other: Any) -> Many:
        return Many(torch._foreach_pow(self.tensors, _unwrap(other)))

    def __rpow__(self, other: Any) -> Many:
        return Many(torch._foreach_pow(other, self.tensors))


def each(fn: Callable[..., Any], *args: Any) -> Any:
    """Apply a per-tensor function (one with no foreach form, e.g. ``torch.where``) to a tensor, or
    tensor by tensor to :class:`Many` arguments (non-``Many`` arguments are shared)."""
    if not any(isinstance(a, Many) for a in args):
        return fn(*args)
    n = next(len(a) for a in args if isinstance(a, Many))
    outs = [fn(*(a[i] if isinstance(a, Many) else a for a in args)) for i in range(n)]
    return None if all(o is None for o in outs) else Many(outs)


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
# ``clamp_`` / ``sign`` etc. without a foreach twin go through :func:`each`.

for _op in _BINARY + _UNARY:
    setattr(Many, f"{_op}_", _inplace(_op))
    if _op != "neg":
        setattr(Many, _op, _outofplace(_op))


def maximum_(dst: Any, src: Any, differentiable: bool = False) -> Any:
    """dst ← max(dst, src) in place, for a tensor or a :class:`Many` (autograd-safe when ``differentiable``)."""
    if isinstance(dst, Many):
        return dst.maximum_(src)
    if differentiable:
        return dst.copy_(torch.maximum(dst.clone(), src))
    return torch.maximum(dst, src, out=dst)


def value(x: Any) -> float:
    """The Python number held by a 0-d tensor, or by the first of a :class:`Many` of 0-d tensors (the
    optimizer buckets parameters so that all of them hold the same value)."""
    return (x[0] if isinstance(x, Many) else x).item()
