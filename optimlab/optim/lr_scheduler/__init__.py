"""Learning-rate schedulers mirroring ``torch.optim.lr_scheduler`` (2.13): swap the import.

Every scheduler subclasses torch's :class:`~torch.optim.lr_scheduler.LRScheduler`, so it works on
any ``torch.optim.Optimizer`` (torch's or optimlab's) and its ``state_dict`` interchanges with
torch's. Beyond torch: ``lr_at(step)`` (and ``momentum_at`` where momentum cycles), the closed form
as a pure function of the step; :class:`WarmupCosineLR`; and one switch, :func:`set_fixed` (or the
:func:`fixed` context manager), that corrects torch's known scheduler bugs for the whole family.

Modules: ``_base`` (the base class, the switch), ``decay`` (factor schedulers), ``cyclic``
(CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts), ``composite`` (SequentialLR, ChainedScheduler),
``plateau`` (ReduceLROnPlateau), ``warmup`` (WarmupCosineLR). See docs/sched.md.
"""

from ._base import LRScheduler, fixed, is_fixed, set_fixed
from .composite import ChainedScheduler, SequentialLR
from .cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from .decay import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)
from .plateau import ReduceLROnPlateau
from .warmup import WarmupCosineLR

__all__ = [
    "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
    "SequentialLR", "CosineAnnealingLR", "ChainedScheduler", "ReduceLROnPlateau", "CyclicLR",
    "CosineAnnealingWarmRestarts", "OneCycleLR", "PolynomialLR", "LRScheduler", "WarmupCosineLR",
    "fixed", "is_fixed", "set_fixed",
]
