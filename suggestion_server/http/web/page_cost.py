"""The experiment page's cost figures: the observations' metadata through ``domain.cost_split``
and ``domain.stopping_savings``.

The page renders these numbers and computes none of its own, so it shows what `optfleet status`
shows for the same observations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from suggestion_server.domain.cost_split import cost_split, json_number
from suggestion_server.domain.stopping_savings import stopping_savings
from suggestion_server.wire.cost_keys import COST_USD, SPLIT_KEYS
from suggestion_server.wire.stopping_keys import (
    STOPPED_AT_STEP,
    STOPPED_EARLY,
    STOPPING_KEYS,
    STOPPING_REASON,
)

# A row without any of these strings has none of the cost or stopping keys: most experiments not
# run by our agents skip the parse (about 3 us an observation) altogether.
_NEEDLES = tuple(f'"{key}"' for key in (*SPLIT_KEYS, *STOPPING_KEYS))


def _cost_metadata(text: str | None) -> Mapping[str, object]:
    if not text or not any(needle in text for needle in _NEEDLES):
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def page_cost(newest_first: Sequence[tuple[bool, str | None]]) -> dict[str, object]:
    """The ``cost`` object of the page's data: the split, the running total of ``cost_usd``
    per observation oldest first (the history plot's cost axis; null from an unknown one on) and
    what early stopping spent and saved (``stopping``)."""
    parsed = [(failed, _cost_metadata(text)) for failed, text in reversed(newest_first)]
    split = cost_split(parsed)
    return {
        **split.as_json(),
        "metadata_key": COST_USD,  # the history table's cost column
        "cumulative_usd": [json_number(v, 8) for v in split.cumulative_usd],
        "stopping": {
            **stopping_savings(parsed).as_json(),
            # The history table's "Stopped" column reads these keys.
            "metadata_keys": {
                "stopped_early": STOPPED_EARLY,
                "stopped_at_step": STOPPED_AT_STEP,
                "stopping_reason": STOPPING_REASON,
            },
        },
    }
