"""The observation metadata keys the server reads for the experiment page's cost figures.

The agent stamps them (worker_bootstrap/cost/keys.py names them for the agent and the CLI; the
server may not import the agent, so it names the ones it reads here, and
tests/cost/test_cost_keys.py checks that both spell them alike).
"""

from __future__ import annotations

INSTANCE_SECONDS = "instance_seconds"  # every attempt, on every instance
EARLIER_ATTEMPTS_SECONDS = "earlier_attempts_seconds"
COST_USD = "cost_usd"  # absent when any price was unknown (never 0)
EARLIER_ATTEMPTS_COST_USD = "earlier_attempts_cost_usd"

SPLIT_KEYS = (INSTANCE_SECONDS, EARLIER_ATTEMPTS_SECONDS, COST_USD, EARLIER_ATTEMPTS_COST_USD)
