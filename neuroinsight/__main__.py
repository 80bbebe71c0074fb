"""``python -m neuroinsight``: see :mod:`neuroinsight.cli`."""

from __future__ import annotations

import sys

from neuroinsight.cli import main

sys.exit(main())
