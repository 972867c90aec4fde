"""How much one engine run computes: the suggestion pool's sizing rules, as a pure function.

- *Pool mode* needs a fleet of at least ``POOL_MIN_FLEET`` workers (open suggestions plus
  requests of this process waiting for a run) and a demand the engine cannot serve on request:
  suggestions created per second across all server processes times the engine's seconds per
  proposal (the *load*) is at least ``POOL_MIN_LOAD``, or requests are already waiting for a
  run. Otherwise the pool is emptied and every request runs the engine itself: a small fleet
  gets exactly the behaviour without a pool.
- *Target size*: about ``SAFETY`` x demand x the length of a refill cycle, within
  [``POOL_MIN``, ``POOL_MAX``]. A run computes at most ``CYCLE_BUDGET_S`` of proposals (at least
  one) towards the target, the waiting requests and its requester.
- *The engine works whenever entries are missing*: its proposals aim at the target counting
  only the engine's own fresh entries, so padding never keeps it idle; entries it adds are
  served before any padding.
- *Padding*: when the engine cannot keep up even running back to back (load above
  ``PADDING_LOAD``, or the waiting requests alone need more than a cycle of proposals), the rest
  of what is needed is random padding (``padding.py``). Grid experiments are never padded.
- *Time bound*: a run stops proposing once its engine time reaches ``CYCLE_BUDGET_S`` (the
  engine's time per proposal is an estimate: start-up points cost milliseconds, model-based
  ones up to hundreds); when saturated, padding makes up what it did not propose.
- *Staleness*: entries of a run are not served once ``stale_after`` = max(``STALE_MIN``,
  2 x target) observations newer than those it was computed from exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

POOL_MIN_FLEET = 16
POOL_MIN_LOAD = 0.5
PADDING_LOAD = 1.0
SAFETY = 2.0
POOL_MIN = 2
POOL_MAX = 1024
CYCLE_BUDGET_S = 0.25
STALE_MIN = 8


@dataclass(frozen=True)
class Demand:
    """What a run knows when it starts."""

    rate: float  # suggestions created per second, all processes
    propose_s: float | None  # the engine's seconds per proposal (None: not measured yet)
    cycle_s: float  # how long a run takes, start to stored
    open_suggestions: int
    waiting: int  # requests of this process waiting for a run
    fresh: int  # fresh entries in the pool
    fresh_engine: int  # of those, the engine's
    requested: bool  # the run serves a request
    can_pad: bool  # padding fits the experiment (not a grid)


@dataclass(frozen=True)
class Plan:
    """What a run computes."""

    pool_mode: bool
    target: int  # pool size aimed at (0: no pool)
    engine: int  # proposals to ask the engine for (the requester's included)
    padding: int  # random padding entries
    stale_after: int  # new observations after which this run's entries are stale
    saturated: bool = False  # padding covers what the engine cannot (see the module doc)


def plan_run(demand: Demand) -> Plan:
    """The sizing rules of the module docstring."""
    own = 1 if demand.requested else 0
    load = demand.rate * (demand.propose_s or 0.0)
    fleet = demand.open_suggestions + demand.waiting + own
    pool_mode = fleet >= POOL_MIN_FLEET and (load >= POOL_MIN_LOAD or demand.waiting > 0)
    if not pool_mode:
        return Plan(False, 0, own, 0, STALE_MIN)
    target = min(POOL_MAX, max(POOL_MIN, math.ceil(SAFETY * demand.rate * demand.cycle_s)))
    wanted = own + target + demand.waiting
    need = wanted - demand.fresh
    stale_after = max(STALE_MIN, 2 * target)
    if demand.requested and need <= 0:
        return Plan(True, target, 0, 0, stale_after)  # the requester takes a pooled entry
    per_cycle = max(1, int(CYCLE_BUDGET_S / demand.propose_s)) if demand.propose_s else 1
    engine = max(0, min(wanted - demand.fresh_engine, per_cycle))
    waiting_work = demand.waiting * (demand.propose_s or 0.0)
    saturated = load > PADDING_LOAD or waiting_work > CYCLE_BUDGET_S
    padding = max(0, need - engine) if saturated and demand.can_pad else 0
    return Plan(True, target, engine, padding, stale_after, saturated and demand.can_pad)
