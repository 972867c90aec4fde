"""Wire conformance driven by the official `sigopt` client against a running server, on SQLite
and on PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

import sigopt

from tests.server.conftest import MIXED_SPEC, expect_api_error


def _experiment(conn: sigopt.Connection, spec: dict[str, Any] = MIXED_SPEC) -> Any:
    return conn.experiments().create(**copy.deepcopy(spec))


def test_create_and_fetch_experiment(conn: sigopt.Connection) -> None:
    exp = _experiment(conn)
    assert isinstance(exp.id, str)
    assert exp.name == "mixed"
    assert exp.state == "active"
    assert exp.observation_budget == 20
    assert exp.parallel_bandwidth == 4
    assert [p.name for p in exp.parameters] == ["act", "layers", "lr"]  # sorted by name
    layers = next(p for p in exp.parameters if p.name == "layers")
    assert layers.bounds.min == 1.0 and layers.bounds.max == 8.0
    lr = next(p for p in exp.parameters if p.name == "lr")
    assert lr.transformation == "log"
    act = next(p for p in exp.parameters if p.name == "act")
    assert [c.name for c in act.categorical_values] == ["relu", "tanh", "gelu"]
    assert exp.metrics[0].name == "acc" and exp.metrics[0].objective == "maximize"
    assert exp.metadata["owner"] == "tests"

    fetched = conn.experiments(exp.id).fetch()
    assert fetched.id == exp.id
    assert fetched.progress.observation_count == 0
    assert fetched.progress.to_json()["open_suggestion_count"] == 0
    assert fetched.progress.best_observation is None


def test_suggestions_carry_metadata_and_respect_types(conn: sigopt.Connection) -> None:
    exp = _experiment(conn)
    s = conn.experiments(exp.id).suggestions().create(metadata={"instance_id": "i-0abc"})
    assert s.state == "open"
    assert s.metadata["instance_id"] == "i-0abc"
    assert isinstance(s.assignments["lr"], float) and 1e-5 <= s.assignments["lr"] <= 1.0
    assert isinstance(s.assignments["layers"], int) and 1 <= s.assignments["layers"] <= 8
    assert s.assignments["act"] in ("relu", "tanh", "gelu")
    again = conn.experiments(exp.id).suggestions(s.id).fetch()
    assert again.to_json()["assignments"] == s.to_json()["assignments"]
    assert again.to_json()["deleted"] is False
    assert s.to_json()["deleted"] is None  # the wire's create-response quirk


def test_open_suggestions_paginate_across_pages(conn: sigopt.Connection) -> None:
    exp = _experiment(conn)
    created = [
        conn.experiments(exp.id).suggestions().create(metadata={"instance_id": f"i-{n}"}).id
        for n in range(7)
    ]
    # One closed suggestion must not show up among the open ones.
    conn.experiments(exp.id).observations().create(suggestion=created[0], value=0.1)
    page = conn.experiments(exp.id).suggestions().fetch(state="open", limit=2)
    assert page.count == 6
    seen = [s.id for s in page.iterate_pages()]
    assert seen == list(reversed(created[1:]))  # newest first, each exactly once
    everything = conn.experiments(exp.id).suggestions().fetch(limit=3)
    assert [s.id for s in everything.iterate_pages()] == list(reversed(created))
    mine = [
        s.id
        for s in conn.experiments(exp.id).suggestions().fetch(state="open").iterate_pages()
        if (s.metadata or {}).get("instance_id") == "i-3"
    ]
    assert mine == [created[3]]


def test_observations_with_value_and_values(conn: sigopt.Connection) -> None:
    exp = _experiment(conn)
    s1 = conn.experiments(exp.id).suggestions().create()
    s2 = conn.experiments(exp.id).suggestions().create()
    o1 = (
        conn.experiments(exp.id)
        .observations()
        .create(suggestion=s1.id, value=0.9, value_stddev=0.01, metadata={"instance_id": "i-1"})
    )
    assert o1.values[0].name == "acc" and o1.values[0].value == 0.9
    assert o1.values[0].value_stddev == 0.01
    assert o1.value is None  # no top-level value on the wire
    o2 = (
        conn.experiments(exp.id)
        .observations()
        .create(suggestion=s2.id, values=[{"name": "acc", "value": 0.5}])
    )
    assert o2.suggestion == s2.id
    assert o2.to_json()["assignments"] == s2.to_json()["assignments"]
    o3 = (
        conn.experiments(exp.id)
        .observations()
        .create(assignments={"lr": 0.01, "layers": 3, "act": "gelu"}, values=[{"value": 0.7}])
    )
    assert o3.suggestion is None and o3.values[0].name == "acc"
    progress = conn.experiments(exp.id).fetch().progress
    assert progress.observation_count == 3
    assert progress.best_observation.id == o1.id
    assert progress.first_observation.id == o1.id
    assert progress.last_observation.id == o3.id
    assert conn.experiments(exp.id).suggestions(s1.id).fetch().state == "closed"
    listed = conn.experiments(exp.id).observations().fetch()
    assert [o.id for o in listed.iterate_pages()] == [o3.id, o2.id, o1.id]
    best = conn.experiments(exp.id).best_assignments().fetch()
    assert [b.id for b in best.iterate_pages()] == [o1.id]


def test_failed_observation_keeps_metadata(conn: sigopt.Connection) -> None:
    exp = _experiment(conn)
    s = conn.experiments(exp.id).suggestions().create(metadata={"instance_id": "i-9"})
    o = (
        conn.experiments(exp.id)
        .observations()
        .create(
            suggestion=s.id,
            failed=True,
            metadata={"instance_id": "i-9", "failure_reason": "exit code 3", "duration_s": 1.5},
        )
    )
    assert o.failed is True and o.values == []
    assert o.metadata["failure_reason"] == "exit code 3"
    fetched = conn.experiments(exp.id).observations(o.id).fetch()
    assert fetched.metadata["duration_s"] == 1.5
    progress = conn.experiments(exp.id).fetch().progress
    assert progress.observation_count == 1 and progress.best_observation is None


def test_suggestion_metadata_update_replaces(conn: sigopt.Connection) -> None:
    exp = _experiment(conn)
    s = conn.experiments(exp.id).suggestions().create(metadata={"a": "1", "b": 2})
    updated = conn.experiments(exp.id).suggestions(s.id).update(metadata={"c": "3"})
    assert updated.metadata.to_json() == {"c": "3"}
    unchanged = conn.experiments(exp.id).suggestions(s.id).update()
    assert unchanged.metadata.to_json() == {"c": "3"}
    cleared = conn.experiments(exp.id).suggestions(s.id).update(metadata=None)
    assert cleared.metadata is None


def test_bulk_delete_of_open_suggestions(conn: sigopt.Connection) -> None:
    exp = _experiment(conn)
    closed = conn.experiments(exp.id).suggestions().create()
    conn.experiments(exp.id).observations().create(suggestion=closed.id, value=1.0)
    for _ in range(3):
        conn.experiments(exp.id).suggestions().create()
    conn.experiments(exp.id).suggestions().delete(state="open")
    assert conn.experiments(exp.id).suggestions().fetch(state="open").count == 0
    remaining = conn.experiments(exp.id).suggestions().fetch()
    assert [s.id for s in remaining.iterate_pages()] == [closed.id]
    one = conn.experiments(exp.id).suggestions().create()
    conn.experiments(exp.id).suggestions(one.id).delete()
    expect_api_error(404, lambda: conn.experiments(exp.id).suggestions(one.id).fetch())
    expect_api_error(
        400, lambda: conn.experiments(exp.id).observations().create(suggestion=one.id, value=1)
    )


def test_errors_surface_with_the_right_status(conn: sigopt.Connection, server: Any) -> None:
    exp = _experiment(conn)
    s = conn.experiments(exp.id).suggestions().create()
    conn.experiments(exp.id).observations().create(suggestion=s.id, value=0.3)
    # The same report again is an idempotent retry; a different one conflicts.
    retry = conn.experiments(exp.id).observations().create(suggestion=s.id, value=0.3)
    assert retry.value is None and retry.values[0].value == 0.3
    conflict = expect_api_error(
        409, lambda: conn.experiments(exp.id).observations().create(suggestion=s.id, value=0.4)
    )
    assert "already has observation" in conflict.to_json()["message"]
    expect_api_error(404, lambda: conn.experiments("999999").fetch())
    expect_api_error(400, lambda: conn.experiments(exp.id).suggestions().fetch(state="closed"))
    expect_api_error(400, lambda: conn.experiments().create(name="x", parameters=[], bogus=1))
    bad = expect_api_error(
        400,
        lambda: (
            conn.experiments(exp.id)
            .observations()
            .create(assignments={"lr": 5.0, "layers": 3, "act": "relu"}, value=1.0)
        ),
    )
    assert "lr" in bad.to_json()["message"] and "out of bounds" in bad.to_json()["message"]

    stranger = sigopt.Connection(client_token="not-a-token")
    stranger.set_api_url(server.url)
    denied = expect_api_error(403, lambda: stranger.experiments(exp.id).fetch())
    assert denied.to_json()["token_status"] == "revoked"
    expect_api_error(400, lambda: conn.experiments(exp.id).observations().create(value=1.0))


def test_experiment_update_and_delete(conn: sigopt.Connection) -> None:
    exp = _experiment(conn)
    updated = conn.experiments(exp.id).update(
        parallel_bandwidth=8, observation_budget=50, metadata={"k": "v"}, name="renamed"
    )
    assert updated.parallel_bandwidth == 8 and updated.observation_budget == 50
    assert updated.name == "renamed" and updated.metadata.to_json() == {"k": "v"}
    widened = conn.experiments(exp.id).update(
        parameters=[{"name": "layers", "bounds": {"min": 1, "max": 16}}]
    )
    layers = next(p for p in widened.parameters if p.name == "layers")
    assert layers.bounds.max == 16.0
    conn.experiments(exp.id).delete()
    assert conn.experiments(exp.id).fetch().state == "deleted"
    expect_api_error(400, lambda: conn.experiments(exp.id).suggestions().create())
    listed = [e.id for e in conn.experiments().fetch().iterate_pages()]
    assert exp.id not in listed
