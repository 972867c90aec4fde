"""Refused requests on the page's health view (issue 24): each 401/403 about a token counted per
reason, read from the JSON endpoint the view is made from and seen in Chromium; the callers'
answers say nothing of the reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.tokens import (
    Grant,
    create_token,
    resolve_token,
    revoke_token,
    rotate_token,
)
from tests.support.ports import wait_until
from tests.support.server import RunningServer

OPERATOR = f"health-{uuid.uuid4().hex}"
SPEC = {
    "name": "refusals",
    "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
    "observation_budget": 5,
}
EXPECTED = {
    "no_token": 1,
    "unknown_token": 2,
    "revoked_token": 1,
    "rotated_out": 1,
    "wrong_scope": 3,  # a create, the health JSON and the page's sign-in
}


def _token_id(store: Store, token: str) -> int:
    found = resolve_token(store, token)
    assert isinstance(found, Grant) and found.token_id is not None
    return found.token_id


def health_of(server: RunningServer) -> dict[str, Any]:
    """What the health view shows, from its JSON endpoint."""
    answer = requests.get(f"{server.url}/server/health.json", auth=(OPERATOR, ""), timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture(scope="module")
def refused() -> Iterator[RunningServer]:
    """A fresh server that has refused a known set of requests."""
    with RunningServer.start(token=OPERATOR) as server:
        url = server.url
        created = requests.post(f"{url}/v1/experiments", json=SPEC, auth=(OPERATOR, ""), timeout=30)
        eid = int(created.json()["id"])
        store = Store(make_engine(server.db_url, pool_size=1))
        try:
            scoped = create_token(store, "fleet", eid)
            revoked = create_token(store, "gone", eid)
            revoke_token(store, _token_id(store, revoked))
            rotated = create_token(store, "rotated", eid)
            assert rotate_token(store, _token_id(store, rotated), grace_s=0) is not None
        finally:
            store.dispose()
        experiment = f"{url}/v1/experiments/{eid}"
        answers = [
            requests.get(experiment, timeout=30),
            requests.get(experiment, auth=(f"nope-{uuid.uuid4().hex}", ""), timeout=30),
            requests.get(experiment, auth=("x" * 43, ""), timeout=30),
            requests.get(experiment, auth=(revoked, ""), timeout=30),
            requests.get(experiment, auth=(rotated, ""), timeout=30),
            requests.post(f"{url}/v1/experiments", json=SPEC, auth=(scoped, ""), timeout=30),
            requests.get(f"{url}/server/health.json", auth=(scoped, ""), timeout=30),
            requests.post(f"{url}/signin", data={"token": scoped}, timeout=30),
        ]
        assert [a.status_code for a in answers] == [401] + [403] * 7
        # Unknown, revoked and rotated-out values get one and the same answer.
        assert len({a.content for a in answers[1:5]}) == 1
        # The server writes its counts within a second.
        total = sum(EXPECTED.values())
        wait_until(lambda: health_of(server)["total"] >= total, 30, "the refusal counts")
        yield server


def test_health_json_counts_refusals_per_reason(refused: RunningServer) -> None:
    health = health_of(refused)
    assert {row["reason"]: row["count"] for row in health["refusals"]} == EXPECTED
    assert health["total"] == sum(EXPECTED.values())
    assert all(row["last"] for row in health["refusals"])
    log = refused.log_text()
    assert "reason=rotated_out token_id=" in log
    assert "reason=revoked_token token_id=" in log
    assert "route=POST /v1/experiments" in log


def test_health_view_shows_the_counts(browser: Any, refused: RunningServer) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{refused.url}/signin")
        page.fill("#token", OPERATOR)
        page.click("button[type=submit]")
        page.wait_for_url(f"{refused.url}/")
        page.click("header.top a[href='/server/health']")
        page.wait_for_selector("#refusals")
        cells = page.locator("#refusals tbody tr td.num")
        shown = {
            str(page.locator("#refusals tbody tr").nth(i).get_attribute("data-reason")): int(
                str(cells.nth(i).text_content())
            )
            for i in range(cells.count())
        }
        assert shown == EXPECTED
        assert page.locator("#refusals-total").text_content() == str(sum(EXPECTED.values()))
    finally:
        context.close()
