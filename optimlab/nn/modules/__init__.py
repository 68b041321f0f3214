"""Loss modules mirroring ``torch.nn``'s loss classes; each forward calls the functional form."""

from . import ctc, extras, margin, probabilistic, regression  # noqa: E402, I001
from ._base import _Loss, _WeightedLoss  # noqa: F401
from .ctc import *  # noqa: F401,F403
from .extras import *  # noqa: F401,F403
from .margin import *  # noqa: F401,F403
from .probabilistic import *  # noqa: F401,F403
from .regression import *  # noqa: F401,F403

__all__ = [*ctc.__all__, *extras.__all__, *margin.__all__, *probabilistic.__all__, *regression.__all__]
