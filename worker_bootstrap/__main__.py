"""``python -m worker_bootstrap`` = ``worker-bootstrap``."""

from __future__ import annotations

import sys

from worker_bootstrap.cli import main

sys.exit(main())
