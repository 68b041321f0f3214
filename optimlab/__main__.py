"""Entry point of ``python -m optimlab`` (see :mod:`optimlab.cli`)."""

import sys

from .cli import main

sys.exit(main())
