"""Old name of ``engines.eval``, kept so ``python -m engines.evaluation`` and old imports keep working."""

import sys

from engines.eval import *  # noqa: F403
from engines.eval import __all__  # noqa: F401
from engines.eval.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
