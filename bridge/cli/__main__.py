"""``python -m bridge.cli``: the same as the ``crossband`` console script."""

import sys

from bridge.cli.main import main

sys.exit(main())
