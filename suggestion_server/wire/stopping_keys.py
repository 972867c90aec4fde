"""The observation metadata keys of a run stopped early, as the server reads them.

The agent stamps them (worker_bootstrap/progress_keys.py names them for the agent; the server may
not import the agent, so it names the ones it reads here, and tests/cost/test_cost_keys.py checks
that both spell them alike).
"""

from __future__ import annotations

STOPPED_EARLY = "stopped_early"  # 1 on an observation whose training run the server stopped
STOPPED_AT_STEP = "stopped_at_step"
STOPPING_REASON = "stopping_reason"

STOPPING_KEYS = (STOPPED_EARLY, STOPPED_AT_STEP, STOPPING_REASON)
