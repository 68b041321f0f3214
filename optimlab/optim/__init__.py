"""Optimizers mirroring ``torch.optim``: swap ``torch.optim`` for ``optimlab.optim``.

Every class subclasses :class:`torch.optim.Optimizer` (through :class:`optimlab.optim.Optimizer`)."""

from . import (  # noqa: F401  # noqa: E402, I001
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    adamw,
    asgd,
    lbfgs,
    lr_scheduler,
    muon,
    nadam,
    radam,
    rmsprop,
    rprop,
    sparse_adam,
    swa_utils,
)
from ._lowp import fp32_state_dict
from .adadelta import *  # noqa: F401,F403
from .adafactor import *  # noqa: F401,F403
from .adagrad import *  # noqa: F401,F403
from .adam import *  # noqa: F401,F403
from .adamax import *  # noqa: F401,F403
from .adamw import *  # noqa: F401,F403
from .asgd import *  # noqa: F401,F403
from .lbfgs import *  # noqa: F401,F403
from .muon import *  # noqa: F401,F403
from .nadam import *  # noqa: F401,F403
from .optimizer import Optimizer
from .radam import *  # noqa: F401,F403
from .rmsprop import *  # noqa: F401,F403
from .rprop import *  # noqa: F401,F403
from .sgd import SGD
from .sparse_adam import *  # noqa: F401,F403

__all__ = ["Optimizer", "SGD", "fp32_state_dict", "lr_scheduler", "swa_utils"] + [
    name for mod in (adadelta, adafactor, adagrad, adam, adamax, adamw, asgd, lbfgs, muon, nadam, radam, rmsprop,
                     rprop, sparse_adam) for name in mod.__all__
]
