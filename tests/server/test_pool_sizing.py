"""The pool's sizing rules (suggestion_server/pool/sizing.py)."""

from __future__ import annotations

from dataclasses import replace

from suggestion_server.pool.sizing import POOL_MIN_FLEET, Demand, Plan, plan_run

BUSY = Demand(
    rate=100.0,
    propose_s=0.05,
    cycle_s=0.5,
    open_suggestions=1000,
    waiting=0,
    fresh=0,
    fresh_engine=0,
    requested=False,
    can_pad=True,
)


def test_a_small_fleet_never_pools_even_when_its_requests_queue() -> None:
    small = replace(BUSY, open_suggestions=POOL_MIN_FLEET - 4, waiting=2, requested=True)
    assert plan_run(small) == Plan(False, 0, 1, 0, 8)
    assert plan_run(replace(small, requested=False)).engine == 0  # a refill computes nothing


def test_a_large_fleet_the_engine_keeps_up_with_does_not_pool() -> None:
    relaxed = replace(BUSY, rate=5.0, propose_s=0.05)  # load 0.25
    assert not plan_run(relaxed).pool_mode


def test_high_demand_aims_at_demand_times_cycle_and_pads_what_the_engine_cannot_make() -> None:
    plan = plan_run(BUSY)  # load 5: the engine makes 1 in 5
    assert plan.pool_mode
    assert plan.target == 100  # 2 x 100/s x 0.5 s
    assert plan.engine == 5  # 0.25 s of 0.05 s proposals
    assert plan.padding == 95
    assert plan.stale_after == 200


def test_the_requester_and_waiting_requests_are_counted_and_fresh_entries_subtracted() -> None:
    plan = plan_run(replace(BUSY, requested=True, waiting=10, fresh=40))
    assert plan.engine + plan.padding == 1 + 100 + 10 - 40


def test_a_pool_full_of_engine_entries_needs_no_run() -> None:
    plan = plan_run(replace(BUSY, fresh=150, fresh_engine=150))
    assert plan.pool_mode and plan.engine == 0 and plan.padding == 0


def test_padding_never_keeps_the_engine_idle() -> None:
    plan = plan_run(replace(BUSY, fresh=150, fresh_engine=3))
    assert plan.engine == 5 and plan.padding == 0


def test_a_requester_takes_a_pooled_entry_rather_than_wait_for_the_engine() -> None:
    plan = plan_run(replace(BUSY, requested=True, fresh=150, fresh_engine=0))
    assert plan.engine == 0 and plan.padding == 0


def test_no_padding_while_the_engine_keeps_up_nor_for_grids() -> None:
    keeps_up = replace(BUSY, rate=12.0, propose_s=0.05)  # load 0.6: pool, engine suffices
    assert plan_run(keeps_up).pool_mode and plan_run(keeps_up).padding == 0
    assert plan_run(replace(BUSY, can_pad=False)).padding == 0


def test_before_the_engine_was_timed_waiting_requests_start_the_pool_with_one_proposal() -> None:
    first = replace(BUSY, rate=0.0, propose_s=None, waiting=30, requested=True)
    plan = plan_run(first)
    assert plan.pool_mode and plan.engine == 1 and plan.padding == 0
