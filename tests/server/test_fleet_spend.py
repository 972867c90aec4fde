"""The fleet-spend extension: one refresh claim at a time, newer figures win, clear 400s.

Runs on SQLite and PostgreSQL: the claim is a conditional UPDATE, so it must hold with many
requests racing for it (and, on PostgreSQL, with several server processes, as the ``ha`` size
runs them).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.server.conftest import INT_GRID_SPEC, Api


def spend_path(experiment_id: str) -> str:
    return f"/v1/experiments/{experiment_id}/fleet_spend"


def report(measured_at: float, usd: float, by: str = "i-reporter") -> dict[str, Any]:
    return {
        "usd": usd,
        "usd_per_s": 0.5,
        "seconds": 100.0,
        "instances": 3,
        "measured_at": measured_at,
        "measured_by": by,
    }


def new_experiment(api: Api) -> str:
    return str(api.ok("POST", "/v1/experiments", json=INT_GRID_SPEC)["id"])


def test_one_claim_is_granted_among_racing_agents(api: Api) -> None:
    eid = new_experiment(api)
    assert api.ok("GET", spend_path(eid))["measured_at"] is None

    def claim(n: int) -> bool:
        body = api.ok("POST", spend_path(eid) + "/claims", json={"instance_id": f"i-{n:04d}"})
        return bool(body["granted"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        granted = list(pool.map(claim, range(48)))
    assert granted.count(True) == 1
    winner = f"i-{granted.index(True):04d}"
    held = api.ok("POST", spend_path(eid) + "/claims", json={"instance_id": "i-late"})
    assert held["granted"] is False and held["claimed_by"] == winner

    # The winner reports; the claim ends and the fresh figure is not claimable.
    now = time.time()
    stored = api.ok("PUT", spend_path(eid), json=report(now, 12.5, by=winner))
    assert stored["usd"] == 12.5 and stored["measured_by"] == winner
    fresh = api.ok("POST", spend_path(eid) + "/claims", json={"instance_id": "i-late"})
    assert fresh["granted"] is False and fresh["claimed_by"] is None
    assert fresh["fleet_spend"]["usd"] == 12.5


def test_an_older_figure_never_replaces_a_newer_one(api: Api) -> None:
    eid = new_experiment(api)
    now = time.time()
    api.ok("PUT", spend_path(eid), json=report(now, 20.0))
    late = api.ok("PUT", spend_path(eid), json=report(now - 30, 5.0, by="i-slow"))
    assert late["usd"] == 20.0 and late["measured_at"] == now
    figure = api.ok("GET", spend_path(eid))
    assert figure["usd"] == 20.0 and figure["usd_per_s"] == 0.5 and figure["instances"] == 3
    assert figure["refresh_after_s"] == 60.0


def test_a_stale_figure_can_be_claimed_again(api: Api) -> None:
    eid = new_experiment(api)
    api.ok("PUT", spend_path(eid), json=report(time.time() - 61, 1.0))
    claim = api.ok("POST", spend_path(eid) + "/claims", json={"instance_id": "i-next"})
    assert claim["granted"] is True and claim["fleet_spend"]["usd"] == 1.0


def test_bad_input_names_the_field(api: Api) -> None:
    eid = new_experiment(api)
    cases: list[tuple[str, str, Any, str]] = [
        ("PUT", "", {**report(time.time(), 1.0), "usd": -1}, "usd"),
        ("PUT", "", {**report(time.time(), 1.0), "usd_per_s": "fast"}, "usd_per_s"),
        (
            "PUT",
            "",
            {k: v for k, v in report(time.time(), 1.0).items() if k != "seconds"},
            "seconds",
        ),
        ("PUT", "", {**report(time.time(), 1.0), "extra": 1}, "extra"),
        ("PUT", "", report(time.time() + 3600, 1.0), "measured_at"),
        ("POST", "/claims", {}, "instance_id"),
        ("POST", "/claims", {"instance_id": ""}, "instance_id"),
        ("POST", "/claims", [1], "body"),
    ]
    for method, suffix, body, field in cases:
        response = api.request(method, spend_path(eid) + suffix, json=body)
        assert response.status_code == 400, (body, response.text)
        assert field in response.json()["message"], (body, response.text)
    assert api.ok("GET", spend_path(eid))["measured_at"] is None  # nothing half-stored
    assert api.get(spend_path("999999999")).status_code == 404
    assert api.request("GET", spend_path(eid), auth=("wrong-token", "")).status_code == 403
