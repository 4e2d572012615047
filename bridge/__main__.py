"""``python -m bridge``: the same as the ``crossband`` console script."""

from __future__ import annotations

import sys

from bridge.cli.main import main

sys.exit(main())
