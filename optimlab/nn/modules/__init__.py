"""Loss modules mirroring ``torch.nn``'s loss classes; each forward calls the functional form."""

from . import adaptive, ctc, detection, extras, focal, linear_ce, margin, probabilistic, regression  # noqa: E402, I001
from ._base import _Loss, _WeightedLoss  # noqa: F401
from .adaptive import *  # noqa: F401,F403
from .ctc import *  # noqa: F401,F403
from .detection import *  # noqa: F401,F403
from .extras import *  # noqa: F401,F403
from .focal import *  # noqa: F401,F403
from .linear_ce import *  # noqa: F401,F403
from .margin import *  # noqa: F401,F403
from .probabilistic import *  # noqa: F401,F403
from .regression import *  # noqa: F401,F403

__all__ = [*adaptive.__all__, *ctc.__all__, *detection.__all__, *extras.__all__, *focal.__all__, *linear_ce.__all__,
           *margin.__all__, *probabilistic.__all__, *regression.__all__]
