"""``python -m diffgates``: the same command line as ``diffgates``."""

import sys

from .cli import main

sys.exit(main())
