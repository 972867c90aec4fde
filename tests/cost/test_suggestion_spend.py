"""Seconds and dollars over attempts: the fold into earlier totals, unknown prices, stamping."""

from __future__ import annotations

import pytest

from worker_bootstrap.cost.attempt_spend import SpendTracker, spent_so_far
from worker_bootstrap.cost.pricing import Price

SPOT = Price(0.036, "spot", "2026-11-30T10:00:00Z")
UNKNOWN = Price(None, "on-demand", error="AccessDenied")


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_new_attempt_folds_the_last_one_into_earlier_totals() -> None:
    clock = Clock()
    first = SpendTracker("i-0first", lambda: SPOT, monotonic=clock)
    first.begin("7", {})
    clock.now += 100
    metadata: dict[str, object] = {"instance_id": "i-0first"}
    first.stamp("7", metadata)
    assert metadata["spent_attempt_s"] == 100 and metadata["spent_attempt_by"] == "i-0first"
    assert metadata["spent_attempt_usd"] == pytest.approx(0.001)
    second = SpendTracker("i-0second", lambda: Price(0.072, "on-demand", "t"), monotonic=clock)
    second.begin("7", metadata)
    clock.now += 50
    keys = second.observation_metadata("7")
    assert keys["instance_seconds"] == 150 and keys["earlier_attempts_seconds"] == 100
    assert keys["cost_usd"] == pytest.approx(0.001 + 0.001)
    assert keys["earlier_attempts_cost_usd"] == pytest.approx(0.001)
    assert keys["price_source"] == "on-demand"


def test_an_unknown_price_anywhere_makes_the_total_unknown() -> None:
    clock = Clock()
    tracker = SpendTracker("i-0x", lambda: UNKNOWN, monotonic=clock)
    stale = {"spent_earlier_s": 10, "spent_earlier_usd": 0.5, "spent_attempt_usd": 9.0}
    tracker.begin("1", stale)
    clock.now += 20
    metadata = dict(stale)
    tracker.stamp("1", metadata)
    assert "spent_attempt_usd" not in metadata  # removed, not left stale or sent as null
    assert metadata["spent_earlier_s"] == 10 and metadata["spent_attempt_s"] == 20
    keys = tracker.observation_metadata("1")
    assert keys["cost_usd"] is None and keys["cost_unknown_reason"] == "AccessDenied"
    assert spent_so_far({"spent_earlier_s": 5}) == (5.0, None)
    assert spent_so_far({"spent_attempt_s": "2.5", "spent_attempt_usd": "0.25"}) == (2.5, 0.25)
    assert spent_so_far({}) == (0.0, 0.0)
