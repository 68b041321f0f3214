"""Autocast policy of the losses: under ``torch.autocast`` torch runs its loss ops in float32.

torch's autocast keeps lists of ops it casts to float32 (``AT_FORALL_FP32`` and the CPU list in ATen's
``autocast_mode``): inside an autocast region such an op casts its floating inputs that are neither
float32 nor float64 (the bfloat16/float16 activations autocast produced) to float32 and runs with
autocast off, so it returns float32 and backpropagates to the inputs' own dtype. optimlab's losses are
written with tensor primitives, which autocast would otherwise run in whatever dtype their inputs
have, so each loss on those lists goes through :func:`float32_under_autocast`, which does the same cast.

* CPU (``torch.autocast("cpu")``): every loss below, measured against torch 2.13 on every catalogued case.
* Other devices (CUDA and the accelerators sharing ``AT_FORALL_FP32``): the same minus ``ctc_loss``
  (not on that list), and ``binary_cross_entropy`` raises torch's RuntimeError there (torch bans it from
  autocast: it is unsafe in float16).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

CPU_FLOAT32 = frozenset({
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cosine_embedding_loss", "cross_entropy",
    "ctc_loss", "hinge_embedding_loss", "huber_loss", "kl_div", "l1_loss", "margin_ranking_loss", "mse_loss",
    "multi_margin_loss", "multilabel_margin_loss", "nll_loss", "poisson_nll_loss", "smooth_l1_loss",
    "soft_margin_loss", "triplet_margin_loss",
})
ACCELERATOR_FLOAT32 = CPU_FLOAT32 - {"ctc_loss", "binary_cross_entropy"}
ACCELERATOR_BANNED = frozenset({"binary_cross_entropy"})

_BANNED_MSG = (
    "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
    "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
    "In this case, combine the two layers using torch.nn.functional.binary_cross_entropy_with_logits\n"
    "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
    "safe to autocast."
)


def _to_float32(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
        return x.float()
    return x


def autocast_enabled(device_type: str) -> bool:
    """``torch.is_autocast_enabled(device_type)``, False on a device without autocast (``meta``), where torch's
    raises."""
    if device_type not in ("cpu", "cuda") and not torch.amp.is_autocast_available(device_type):
        return False
    return torch.is_autocast_enabled(device_type)


#: whether autocast is on for any device, in one C call (None on a torch without it)
_IS_ANY_AUTOCAST = getattr(torch._C, "_is_any_autocast_enabled", None)


def float32_under_autocast(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (the loss torch calls ``name``), casting as torch's autocast does for that op."""
    on_cpu, on_accel = name in CPU_FLOAT32, name in ACCELERATOR_FLOAT32 or name in ACCELERATOR_BANNED

    @functools.wraps(fn)
    def loss(*args: Any, **kwargs: Any) -> Any:
        if _IS_ANY_AUTOCAST is not None and not torch.compiler.is_compiling() and not _IS_ANY_AUTOCAST():
            return fn(*args, **kwargs)  # the common case: no autocast on (Dynamo cannot trace torch's test)
        first = args[0] if args else next(iter(kwargs.values()), None)
        if not isinstance(first, torch.Tensor):
            return fn(*args, **kwargs)
        dev = first.device.type
        if not (on_cpu if dev == "cpu" else on_accel) or not autocast_enabled(dev):
            return fn(*args, **kwargs)
        if dev != "cpu" and name in ACCELERATOR_BANNED:
            raise RuntimeError(_BANNED_MSG)
        args = tuple(_to_float32(a) for a in args)
        kwargs = {k: _to_float32(v) for k, v in kwargs.items()}
        with torch.autocast(dev, enabled=False):
            return fn(*args, **kwargs)

    return loss


def wrap_all(namespace: dict[str, Any]) -> None:
    """Replace each loss of ``namespace`` (a module's globals) that autocast runs in float32."""
    for name in CPU_FLOAT32 | ACCELERATOR_FLOAT32 | ACCELERATOR_BANNED:
        if name in namespace:
            namespace[name] = float32_under_autocast(name, namespace[name])
