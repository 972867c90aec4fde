"""The cost keys in SigOpt metadata, named once (docs/agent.md, "Metadata the agent stamps").

Experiment metadata holds the dollar cap; a suggestion's metadata carries the spend of its
attempts so far from one owner to the next; an observation's metadata holds the totals.
"""

from __future__ import annotations

# Experiment metadata: the dollar cap (``optfleet experiment create``; any SigOpt server keeps it).
MAX_COST_USD = "max_cost_usd"

# Suggestion metadata, rewritten at each lease renewal and at a spot interruption. ``_usd`` keys are
# absent while a price is unknown.
SPENT_EARLIER_S = "spent_earlier_s"  # attempts that ended
SPENT_EARLIER_USD = "spent_earlier_usd"
SPENT_ATTEMPT_S = "spent_attempt_s"  # the current attempt, as of its last write
SPENT_ATTEMPT_USD = "spent_attempt_usd"
SPENT_ATTEMPT_BY = "spent_attempt_by"  # the instance making the current attempt

# Observation metadata: totals over every attempt on every instance.
INSTANCE_SECONDS = "instance_seconds"
EARLIER_ATTEMPTS_SECONDS = "earlier_attempts_seconds"
COST_USD = "cost_usd"  # absent when any price was unknown (never 0)
EARLIER_ATTEMPTS_COST_USD = "earlier_attempts_cost_usd"
PRICE_USD_PER_HOUR = "price_usd_per_hour"
PRICE_SOURCE = "price_source"  # "on-demand" or "spot"
PRICE_TIME = "price_time"
COST_UNKNOWN_REASON = "cost_unknown_reason"

OBSERVATION_KEYS = (
    INSTANCE_SECONDS,
    EARLIER_ATTEMPTS_SECONDS,
    COST_USD,
    EARLIER_ATTEMPTS_COST_USD,
    PRICE_USD_PER_HOUR,
    PRICE_SOURCE,
    PRICE_TIME,
    COST_UNKNOWN_REASON,
)
