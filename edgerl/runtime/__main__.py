"""``python -m edgerl_runtime check BUNDLE`` (see :mod:`.cli`)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
