"""When the next orphan scan is due: an interval that stretches with the open suggestions seen.

A scan lists every open suggestion of the experiment, so with N agents and N open suggestions a
fixed interval costs the server N x N rows per interval. Stretching each agent's interval by
``open / scan_rows`` caps what one agent lists at about ``scan_rows`` rows per base interval,
whatever the fleet size: the fleet as a whole still lists the open set about ``scan_rows`` times
per base interval, so an orphan is seen as soon as before. Jitter keeps a fleet that booted
together from scanning in lockstep.
"""

from __future__ import annotations

import math
import random

# The interval is drawn from [1 - JITTER, 1 + JITTER) times the nominal one: the mean is unchanged.
JITTER = 0.5


class ScanCadence:
    """Draws the delay until the next scan from the number of open suggestions last seen."""

    def __init__(self, base_interval_s: float, scan_rows: int, rng: random.Random) -> None:
        """``scan_rows`` = 0 keeps the base interval whatever the count (the old behaviour)."""
        if not math.isfinite(base_interval_s) or base_interval_s < 0:
            raise ValueError(f"base_interval_s={base_interval_s!r}: expected a number >= 0")
        if scan_rows < 0:
            raise ValueError(f"scan_rows={scan_rows!r}: expected an integer >= 0")
        self.base_interval_s = base_interval_s
        self.scan_rows = scan_rows
        self.rng = rng

    def nominal_interval(self, open_seen: int) -> float:
        """The mean delay after a scan that saw ``open_seen`` open suggestions."""
        if self.scan_rows == 0:
            return self.base_interval_s
        return self.base_interval_s * max(1.0, open_seen / self.scan_rows)

    def next_delay(self, open_seen: int) -> float:
        """A jittered delay around :meth:`nominal_interval`."""
        spread = self.rng.uniform(1.0 - JITTER, 1.0 + JITTER)
        return self.nominal_interval(open_seen) * spread

    def takes_final_look(self, open_seen: int) -> bool:
        """Whether this agent lists once more when the budget is reached.

        Every agent reaches the budget at about the same moment: a sample of about ``scan_rows``
        agents looks (each with probability ``scan_rows / open``), not all N at once.
        """
        if self.scan_rows == 0 or open_seen <= self.scan_rows:
            return True
        return self.rng.random() < self.scan_rows / open_seen
