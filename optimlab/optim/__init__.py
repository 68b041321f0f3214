"""Optimizers mirroring ``torch.optim``: ``from optimlab import optim`` then ``optim.SGD(...)``."""

from . import lr_scheduler, swa_utils
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "lr_scheduler", "swa_utils"]
