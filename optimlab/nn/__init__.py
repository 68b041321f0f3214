"""Losses mirroring ``torch.nn``: swap ``from torch import nn`` for ``from optimlab import nn``.

Modules live in :mod:`optimlab.nn.modules`, functional forms in :mod:`optimlab.nn.functional`."""

from . import functional
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules

__all__ = ["functional", *_modules]
