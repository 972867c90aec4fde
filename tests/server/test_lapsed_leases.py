"""``lease_expired_by``: the list filter behind the agents' cheap orphan scan (both databases)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import Api

NOW = 1_800_000_000
SPEC: dict[str, Any] = {
    "name": "lapsed leases",
    "type": "random",
    "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
}


def _suggestion(api: Api, eid: str, metadata: dict[str, Any] | None) -> str:
    body = {"assignments": {"x": 0.5}, "metadata": metadata}
    return str(api.ok("POST", f"/v1/experiments/{eid}/suggestions", json=body)["id"])


def _lapsed(api: Api, eid: str, **params: Any) -> Any:
    query = {"state": "open", "lease_expired_by": str(NOW), **params}
    response = api.get(f"/v1/experiments/{eid}/suggestions", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["X-Optfleet-Lease-Filter"] == "applied"
    return response.json()


def test_only_open_owned_suggestions_with_a_lapsed_lease_or_an_interruption(api: Api) -> None:
    eid = str(api.ok("POST", "/v1/experiments", json=SPEC)["id"])
    owner = {"instance_id": "i-0a"}
    wanted = {
        "lapsed": _suggestion(api, eid, {**owner, "lease_expires_at": NOW - 0.5}),
        "lapsed exactly now": _suggestion(api, eid, {**owner, "lease_expires_at": NOW}),
        "integer lease": _suggestion(api, eid, {**owner, "lease_expires_at": NOW - 10}),
        "interrupted, fresh lease": _suggestion(
            api, eid, {**owner, "lease_expires_at": NOW + 600, "interrupted_at": NOW - 3}
        ),
        "no lease (created + ttl decides)": _suggestion(api, eid, owner),
        "lease as a string (the agent decides)": _suggestion(
            api, eid, {**owner, "lease_expires_at": str(NOW + 600)}
        ),
    }
    unwanted = {
        "fresh": _suggestion(api, eid, {**owner, "lease_expires_at": NOW + 0.5}),
        "no owner": _suggestion(api, eid, {"lease_expires_at": NOW - 100}),
        "no metadata": _suggestion(api, eid, None),
    }
    closed = _suggestion(api, eid, {**owner, "lease_expires_at": NOW - 100})
    api.ok("POST", f"/v1/experiments/{eid}/observations", json={"suggestion": closed, "value": 1})
    deleted = _suggestion(api, eid, {**owner, "lease_expires_at": NOW - 100})
    api.ok("DELETE", f"/v1/experiments/{eid}/suggestions/{deleted}")

    page = _lapsed(api, eid)
    got = [s["id"] for s in page["data"]]
    assert got == sorted(wanted.values(), key=int, reverse=True), (got, wanted, unwanted)
    assert page["count"] == len(wanted)
    # Paging works as for any list: newest first, following paging.before.
    first = _lapsed(api, eid, limit=4)
    rest = _lapsed(api, eid, limit=4, before=first["paging"]["before"])
    assert [s["id"] for s in first["data"] + rest["data"]] == got
    # Without the filter: every open suggestion, and no header.
    plain = api.get(f"/v1/experiments/{eid}/suggestions", params={"state": "open"})
    assert plain.json()["count"] == len(wanted) + len(unwanted)
    assert "X-Optfleet-Lease-Filter" not in plain.headers


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"state": "open", "lease_expired_by": "soon"}, "Invalid value for lease_expired_by"),
        ({"state": "open", "lease_expired_by": "nan"}, "expected unix seconds"),
        ({"state": "open", "lease_expired_by": "-1"}, "expected unix seconds"),
        ({"lease_expired_by": "1"}, "lease_expired_by needs state=open"),
        ({"state": "open", "lease_expired_by": "1", "id": "1"}, "combined with id"),
        (
            {"state": "open", "lease_expired_by": "1", "metadata.instance_id": "i-0a"},
            "combined with metadata.instance_id",
        ),
    ],
)
def test_bad_filter_is_a_400_naming_it(api: Api, params: dict[str, str], message: str) -> None:
    eid = str(api.ok("POST", "/v1/experiments", json=SPEC)["id"])
    response = api.get(f"/v1/experiments/{eid}/suggestions", params=params)
    assert response.status_code == 400 and message in response.json()["message"], response.text
