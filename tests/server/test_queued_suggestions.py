"""Queued suggestions (§1 #21) through the official client, on SQLite and PostgreSQL: the next
suggestions created take the queued assignments oldest first, then the engine takes over."""

from __future__ import annotations

import copy

import sigopt

from tests.server.conftest import INT_GRID_SPEC, Api, expect_api_error


def _experiment(conn: sigopt.Connection) -> str:
    return str(conn.experiments().create(**copy.deepcopy(INT_GRID_SPEC)).id)


def test_queued_assignments_are_served_first_oldest_first(conn: sigopt.Connection) -> None:
    eid = _experiment(conn)
    queue = conn.experiments(eid).queued_suggestions()
    first = queue.create(assignments={"x": 1, "y": 2})
    second = queue.create(assignments={"x": 3, "y": 4})
    assert first.assignments.to_json() == {"x": 1, "y": 2}
    assert first.experiment == eid and isinstance(first.created, int)
    listed = [q.id for q in conn.experiments(eid).queued_suggestions().fetch().iterate_pages()]
    assert listed == [second.id, first.id]  # newest first, as every list
    assert conn.experiments(eid).queued_suggestions(first.id).fetch().id == first.id

    served = [
        conn.experiments(eid).suggestions().create(metadata={"instance_id": f"i-{n}"})
        for n in range(3)
    ]
    assert served[0].assignments.to_json() == {"x": 1, "y": 2}
    assert served[1].assignments.to_json() == {"x": 3, "y": 4}
    assert served[0].metadata["instance_id"] == "i-0" and served[0].state == "open"
    assert served[2].assignments.to_json() not in ({"x": 1, "y": 2}, {"x": 3, "y": 4})
    # Served ones are gone from the queue.
    assert conn.experiments(eid).queued_suggestions().fetch().count == 0
    expect_api_error(404, lambda: conn.experiments(eid).queued_suggestions(first.id).fetch())


def test_manual_suggestions_leave_the_queue_alone(conn: sigopt.Connection) -> None:
    eid = _experiment(conn)
    conn.experiments(eid).queued_suggestions().create(assignments={"x": 5, "y": 5})
    manual = conn.experiments(eid).suggestions().create(assignments={"x": 0, "y": 0})
    assert manual.assignments.to_json() == {"x": 0, "y": 0}
    assert conn.experiments(eid).queued_suggestions().fetch().count == 1


def test_delete_one_and_all(conn: sigopt.Connection) -> None:
    eid = _experiment(conn)
    queue = conn.experiments(eid).queued_suggestions()
    kept, dropped = (
        queue.create(assignments={"x": 1, "y": 1}),
        queue.create(assignments={"x": 2, "y": 2}),
    )
    conn.experiments(eid).queued_suggestions(dropped.id).delete()
    remaining = [q.id for q in conn.experiments(eid).queued_suggestions().fetch().iterate_pages()]
    assert remaining == [kept.id]
    conn.experiments(eid).queued_suggestions().delete()
    assert conn.experiments(eid).queued_suggestions().fetch().count == 0
    engine = conn.experiments(eid).suggestions().create()
    assert engine.state == "open"


def test_bad_queued_suggestions_are_rejected(conn: sigopt.Connection, api: Api) -> None:
    eid = _experiment(conn)
    path = f"/v1/experiments/{eid}/queued_suggestions"
    cases = [
        ({"assignments": {"x": 12, "y": 1}}, "x"),
        ({"assignments": {"x": 1}}, "y"),
        ({}, "assignments"),
        ({"assignments": {"x": 1, "y": 1}, "metadata": {"a": 1}}, "metadata"),
    ]
    for body, named in cases:
        response = api.post(path, json=body)
        assert response.status_code == 400, (body, response.text)
        assert named in response.json()["message"], (body, response.text)
    assert api.ok("GET", path)["count"] == 0
    assert api.get(f"{path}/999999").status_code == 404
    assert (
        api.post(path, json={"assignments": {"x": 1, "y": 1}}, auth=("nobody", "")).status_code
        == 403
    )


def test_assignments_that_no_longer_fit_are_dropped_when_served(
    conn: sigopt.Connection, api: Api
) -> None:
    """Bounds narrowed after queueing: the stale entry is skipped, the next one served."""
    eid = _experiment(conn)
    queue = conn.experiments(eid).queued_suggestions()
    queue.create(assignments={"x": 9, "y": 9})
    queue.create(assignments={"x": 2, "y": 3})
    narrowed = [
        {"name": "x", "bounds": {"min": 0, "max": 5}},
        {"name": "y", "bounds": {"min": 0, "max": 9}},
    ]
    api.ok("PUT", f"/v1/experiments/{eid}", json={"parameters": narrowed})
    served = conn.experiments(eid).suggestions().create()
    assert served.assignments.to_json() == {"x": 2, "y": 3}
    assert conn.experiments(eid).queued_suggestions().fetch().count == 0
