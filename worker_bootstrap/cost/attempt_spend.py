"""Instance-seconds and dollars spent on one suggestion, over every attempt on every instance.

The running total travels in the suggestion's metadata, so whoever evaluates it next (this
instance after a reboot, or an adopter) carries it on:

- ``spent_earlier_s`` / ``spent_earlier_usd``: attempts that ended (USD absent when a price was
  unknown: the sum is then unknown, never a partial number);
- ``spent_attempt_s`` / ``spent_attempt_usd`` / ``spent_attempt_by``: the current attempt as of
  its last lease renewal (or its spot interruption).

A new attempt folds the last one into the earlier totals. An attempt that dies without a final
write (power loss) loses at most the time since its last renewal, a third of the lease TTL.
The observation then carries the totals (keys in :data:`keys.OBSERVATION_KEYS`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from worker_bootstrap.cost import keys
from worker_bootstrap.cost.pricing import Price

Json = Dict[str, Any]


def number_or_none(value: Any) -> Optional[float]:
    """A metadata value as a float (numbers may come back as strings), None if it is not one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def spent_so_far(metadata: Mapping[str, Any]) -> Tuple[float, Optional[float]]:
    """(seconds, USD or None) recorded in a suggestion's metadata, all attempts included."""
    total_s = 0.0
    total_usd: Optional[float] = 0.0
    for seconds_key, usd_key in (
        (keys.SPENT_EARLIER_S, keys.SPENT_EARLIER_USD),
        (keys.SPENT_ATTEMPT_S, keys.SPENT_ATTEMPT_USD),
    ):
        seconds = number_or_none(metadata.get(seconds_key)) or 0.0
        usd = number_or_none(metadata.get(usd_key))
        total_s += seconds
        if seconds > 0 and usd is None:
            total_usd = None
        elif total_usd is not None and usd is not None:
            total_usd += usd
    return total_s, total_usd


@dataclass
class Attempt:
    """This instance's current attempt at one suggestion."""

    suggestion_id: str
    started: float
    price: Price
    earlier_s: float
    earlier_usd: Optional[float]


class SpendTracker:
    """Times this instance's attempts and turns them into metadata keys."""

    def __init__(
        self,
        instance_id: str,
        price: Callable[[], Price],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instance_id = instance_id
        self._price = price
        self.monotonic = monotonic
        self._attempts: Dict[str, Attempt] = {}

    def begin(self, suggestion_id: str, suggestion_metadata: Mapping[str, Any]) -> None:
        """Start timing an attempt; earlier attempts (any instance's) come from the metadata."""
        earlier_s, earlier_usd = spent_so_far(suggestion_metadata)
        self._attempts[suggestion_id] = Attempt(
            suggestion_id, self.monotonic(), self._price(), earlier_s, earlier_usd
        )

    def end(self, suggestion_id: str) -> None:
        """Forget an attempt (reported, dropped or left open)."""
        self._attempts.pop(suggestion_id, None)

    def _attempt_seconds(self, attempt: Attempt) -> float:
        return max(0.0, self.monotonic() - attempt.started)

    def progress(self, suggestion_id: str) -> Json:
        """Keys to write into the suggestion's metadata now (lease renewal, interruption)."""
        attempt = self._attempts.get(suggestion_id)
        if attempt is None:
            return {}
        seconds = self._attempt_seconds(attempt)
        usd = attempt.price.cost_usd(seconds)
        return {
            keys.SPENT_EARLIER_S: round(attempt.earlier_s, 3),
            keys.SPENT_ATTEMPT_S: round(seconds, 3),
            keys.SPENT_ATTEMPT_BY: self.instance_id,
            keys.SPENT_EARLIER_USD: _usd(attempt.earlier_usd),
            keys.SPENT_ATTEMPT_USD: _usd(usd),
        }

    def stamp(self, suggestion_id: str, metadata: Json) -> None:
        """Write :meth:`progress` into a suggestion's metadata map; an unknown USD key is removed
        (not sent as null: a stale value from an earlier attempt must not survive)."""
        for key, value in self.progress(suggestion_id).items():
            if value is None:
                metadata.pop(key, None)
            else:
                metadata[key] = value

    def observation_metadata(self, suggestion_id: str) -> Json:
        """The observation's cost keys; ``cost_usd`` is absent when any price was unknown."""
        attempt = self._attempts.get(suggestion_id)
        if attempt is None:
            return {}
        seconds = self._attempt_seconds(attempt)
        usd = attempt.price.cost_usd(seconds)
        total_usd = (
            None if usd is None or attempt.earlier_usd is None else usd + attempt.earlier_usd
        )
        price = attempt.price
        stamped: Json = {
            keys.INSTANCE_SECONDS: round(attempt.earlier_s + seconds, 3),
            keys.EARLIER_ATTEMPTS_SECONDS: round(attempt.earlier_s, 3),
            keys.COST_USD: _usd(total_usd),
            keys.EARLIER_ATTEMPTS_COST_USD: _usd(attempt.earlier_usd),
            keys.PRICE_USD_PER_HOUR: price.usd_per_hour,
            keys.PRICE_SOURCE: price.source,
            keys.PRICE_TIME: price.time or None,
        }
        if total_usd is None:
            why = price.error if not price.known else "an earlier attempt's price is unknown"
            stamped[keys.COST_UNKNOWN_REASON] = why or "price unknown"
        return stamped


def _usd(value: Optional[float]) -> Optional[float]:
    # None stays None: the metadata layer drops it, so an unknown cost is absent, never 0.
    return None if value is None else round(value, 8)
