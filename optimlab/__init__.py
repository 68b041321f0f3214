"""optimlab: drop-in, re-implemented and parity-verified PyTorch losses, optimizers and LR schedulers.

Swap one import: ``from optimlab import nn, optim`` (``optim.lr_scheduler``, ``optim.swa_utils``)."""

from . import nn, optim

__version__ = "0.1.0"
__all__ = ["nn", "optim", "__version__"]
