"""When the next orphan scan is due, and whether it must list everything or may list orphans only.

A full scan lists every open suggestion of the experiment, so with N agents and N open
suggestions a fixed interval costs the server N x N rows per interval. Stretching each agent's
interval by ``rows / scan_rows`` caps what one agent lists at about ``scan_rows`` rows per base
interval, whatever the fleet size: the fleet as a whole still lists the open set about
``scan_rows`` times per base interval, so orphans are seen as soon as before. Jitter keeps a fleet
that booted together from scanning in lockstep.

On a server that applies the ``lease_expired_by`` filter (ours), the scans between two full ones
list only the suggestions with a lapsed lease or an interruption: a few rows on the wire, but the
server still reads every open one, at about a fifth of what rendering it costs
(docs/benchmarks.md), so these stretch too, five times less. The elected adopter of an orphan
then looks five times as often as with full scans only, and almost no bytes move. Full scans go
on at the stretched interval: they resume this instance's own suggestions and refresh the live
set the election is computed over. A server that ignores or refuses the filter gets full scans
only.
"""

from __future__ import annotations

import math
import random
from typing import Optional

# The interval is drawn from [1 - JITTER, 1 + JITTER) times the nominal one: the mean is unchanged.
JITTER = 0.5
# A lapsed-only scan costs the server about 1/5 of a full one per open suggestion (it reads each
# row's metadata but renders none): docs/benchmarks.md, "Agent fleet traffic".
LAPSED_ROW_DISCOUNT = 5


class ScanCadence:
    """Decides when an agent scans and which kind of scan, from the rows its scans listed."""

    def __init__(
        self, base_interval_s: float, scan_rows: int, rng: random.Random, lease_filter: bool = True
    ) -> None:
        """``scan_rows`` = 0 keeps the base interval whatever the count (the old behaviour);
        ``lease_filter`` False never asks for the server's filters."""
        if not math.isfinite(base_interval_s) or base_interval_s < 0:
            raise ValueError(f"base_interval_s={base_interval_s!r}: expected a number >= 0")
        if scan_rows < 0:
            raise ValueError(f"scan_rows={scan_rows!r}: expected an integer >= 0")
        self.base_interval_s = base_interval_s
        self.scan_rows = scan_rows
        self.rng = rng
        # None until the server has answered a filtered scan; False: full scans only.
        self.lease_filter: Optional[bool] = None if lease_filter else False
        self.next_scan = 0.0
        self.next_full_scan = 0.0

    def nominal_interval(self, rows: int) -> float:
        """The mean delay after a scan that listed ``rows`` suggestions."""
        if self.scan_rows == 0:
            return self.base_interval_s
        return self.base_interval_s * max(1.0, rows / self.scan_rows)

    def next_delay(self, rows: int) -> float:
        """A jittered delay around :meth:`nominal_interval`."""
        spread = self.rng.uniform(1.0 - JITTER, 1.0 + JITTER)
        return self.nominal_interval(rows) * spread

    def due(self, now: float) -> bool:
        """Whether a scan (of either kind) is due."""
        return now >= self.next_scan

    def wants_full(self, now: float) -> bool:
        """Whether the next scan must list every open suggestion."""
        return self.lease_filter is False or now >= self.next_full_scan

    def full_scan_done(self, now: float, rows: int) -> None:
        """After listing every open suggestion (``rows`` of them)."""
        self.next_full_scan = now + self.next_delay(rows)
        self.next_scan = self.next_full_scan
        if self.lease_filter is not False:
            lapsed_only = self.next_delay(rows // LAPSED_ROW_DISCOUNT)
            self.next_scan = min(self.next_full_scan, now + lapsed_only)

    def filtered_scan_done(self, now: float, rows: int, open_seen: int) -> None:
        """After the server applied the filter and listed ``rows`` of about ``open_seen`` open
        suggestions (the last full scan's count)."""
        self.lease_filter = True
        effective = rows + open_seen // LAPSED_ROW_DISCOUNT
        self.next_scan = min(self.next_full_scan, now + self.next_delay(effective))

    def boots_own_only(self, open_hint: Optional[int]) -> bool:
        """Whether the scan at start should ask for this instance's suggestions only (our
        server's ``metadata.instance_id`` filter): when the experiment reports more open
        suggestions than one scan should list. A fleet restarting together then costs N small
        lists instead of N x N rows."""
        return (
            self.lease_filter is not False
            and self.scan_rows > 0
            and open_hint is not None
            and open_hint > self.scan_rows
        )

    def own_scan_done(self, now: float, open_hint: int) -> None:
        """After the scan at start listed only this instance's suggestions: the first full scan
        comes at a uniform point of one stretched interval, so the fleet's first full scans are
        spread as evenly as in steady state."""
        self.next_full_scan = now + self.rng.uniform(0.0, 1.0) * self.nominal_interval(open_hint)
        self.next_scan = self.next_full_scan

    def filter_unsupported(self) -> None:
        """The server ignored or refused the filter: full scans only from now on."""
        self.lease_filter = False

    def takes_final_look(self, open_seen: int) -> bool:
        """Whether this agent scans once more when the budget is reached.

        Every agent reaches the budget at about the same moment. With the filter the look is
        cheap; without it a sample of about ``scan_rows`` agents looks (each with probability
        ``scan_rows / open``), not all N at once.
        """
        if self.lease_filter or self.scan_rows == 0 or open_seen <= self.scan_rows:
            return True
        return self.rng.random() < self.scan_rows / open_seen
