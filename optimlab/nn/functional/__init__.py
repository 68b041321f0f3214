"""Functional losses mirroring ``torch.nn.functional``: ``optimlab.nn.functional.cross_entropy`` etc.

Each topical file states its math once and reduces through :mod:`optimlab.nn._reduction`."""

from . import adaptive, ctc, detection, extras, focal, linear_ce, margin, probabilistic, regression  # noqa: E402, I001
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

from ._autocast import wrap_all as _wrap_all  # noqa: E402

_wrap_all(globals())  # the losses autocast runs in float32, as torch's (see _autocast)
