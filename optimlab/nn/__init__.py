"""Loss modules mirroring ``torch.nn``: ``from optimlab import nn`` then ``nn.MSELoss()``."""

from . import functional
from .loss import *  # noqa: F401,F403
from .loss import __all__ as _losses

__all__ = ["functional", *_losses]
