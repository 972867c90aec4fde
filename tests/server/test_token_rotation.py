"""Token rotation (issue 24): the previous value of a rotated token is accepted for the grace
and refused after it; revoking refuses both; every refusal is logged with its reason and token
id (never the value) and counted per reason.

The server runs in this process on loopback (SQLite and PostgreSQL) with a clock the test sets,
so the grace is crossed by moving the clock, never by waiting.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from optfleet.cli import main as cli_main
from suggestion_server.app import create_app
from suggestion_server.http import refusal_log
from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.migrate import upgrade_to_head
from suggestion_server.storage.refusals import add_refusals, refusal_counts
from suggestion_server.storage.tokens import (
    REVOKED,
    ROTATED_OUT,
    UNKNOWN,
    Grant,
    Refusal,
    RetiredToken,
    create_token,
    register_token,
    resolve_token,
    revoke_token,
    rotate_token,
    token_info,
)
from tests.server.conftest import BACKENDS
from tests.support.clock import START, SettableClock
from tests.support.loopback import LoopbackApp
from tests.support.ports import wait_until

OPERATOR = f"operator-{uuid.uuid4().hex}"
SPEC = {
    "name": "rotation",
    "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
    "metrics": [{"name": "acc", "objective": "maximize"}],
    "observation_budget": 10,
}


@dataclass
class Served:
    url: str
    db_url: str
    store: Store
    clock: SettableClock
    experiment: str

    def status(self, token: str) -> int:
        response = requests.get(
            f"{self.url}/v1/experiments/{self.experiment}", auth=(token, ""), timeout=30
        )
        if response.status_code == 403:
            assert response.json()["token_status"] == "revoked"
        return response.status_code

    def counts(self) -> dict[str, int]:
        return {row.reason: row.count for row in refusal_counts(self.store)}

    def counted(self, expected: dict[str, int]) -> bool:
        """True once the counts are ``expected`` (a process writes them within a second)."""
        try:
            wait_until(lambda: self.counts() == expected, 30, f"refusal counts {expected}")
        except TimeoutError:
            return False
        return True


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Served]:
    if request.param == "postgres":
        db_url = request.getfixturevalue("pg_cluster").create_database()
    else:
        db_url = f"sqlite:///{request.getfixturevalue('tmp_path')}/rotation.db"
    clock = SettableClock()
    app = create_app(db_url, bootstrap_token=OPERATOR, clock=clock)
    with LoopbackApp(app) as loopback:
        created = requests.post(
            f"{loopback.url}/v1/experiments", json=SPEC, auth=(OPERATOR, ""), timeout=30
        )
        assert created.status_code == 200, created.text
        yield Served(
            loopback.url, db_url, app.state.context.store, clock, str(created.json()["id"])
        )


def scoped_token(served: Served) -> tuple[str, int]:
    """A token scoped to the experiment, and its id."""
    token = create_token(served.store, "fleet", int(served.experiment))
    found = resolve_token(served.store, token)
    assert isinstance(found, Grant) and found.token_id is not None
    return token, found.token_id


def test_previous_value_accepted_within_grace_refused_after(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    old, token_id = scoped_token(served)
    assert served.status(old) == 200  # now in the server's cache as a current value
    rotated = rotate_token(served.store, token_id, grace_s=600, now=served.clock.now)
    assert rotated is not None
    new, info = rotated
    assert new != old
    assert (info.name, info.scope, info.rotated) == (
        "fleet",
        f"experiment {served.experiment}",
        START,
    )
    assert info.previous_until == START + 600
    assert served.status(new) == 200 and served.status(old) == 200
    served.clock.now = START + 599
    assert served.status(old) == 200
    with caplog.at_level(logging.WARNING, logger="suggestion_server.auth"):
        served.clock.now = START + 600
        assert served.status(old) == 403
        assert served.status(new) == 200
    assert served.counted({ROTATED_OUT: 1}), served.counts()
    line = f"reason={ROTATED_OUT} token_id={token_id} route=GET /v1/experiments/{{experiment_id}}"
    assert line in caplog.text
    assert old not in caplog.text and new not in caplog.text


def test_second_rotation_refuses_the_first_value_at_once(served: Served) -> None:
    first, token_id = scoped_token(served)
    second = rotate_token(served.store, token_id, grace_s=3600, now=served.clock.now)
    assert second is not None
    third = rotate_token(served.store, token_id, grace_s=3600, now=served.clock.now)
    assert third is not None
    assert served.status(first) == 403
    assert served.status(second[0]) == 200 and served.status(third[0]) == 200
    assert resolve_token(served.store, first) == Refusal(ROTATED_OUT, token_id)


def test_revoked_token_refuses_both_values(served: Served) -> None:
    old, token_id = scoped_token(served)
    rotated = rotate_token(served.store, token_id, grace_s=3600, now=served.clock.now)
    assert rotated is not None
    new = rotated[0]
    assert served.status(old) == 200 and served.status(new) == 200
    assert revoke_token(served.store, token_id) is not None
    # Past the cache's minute, well within the grace.
    served.clock.now = START + 61
    assert served.status(old) == 403 and served.status(new) == 403
    assert resolve_token(served.store, old) == Refusal(REVOKED, token_id)
    assert resolve_token(served.store, new) == Refusal(REVOKED, token_id)
    assert served.counted({REVOKED: 2}), served.counts()


def test_refusals_are_counted_per_reason_and_answered_alike(served: Served) -> None:
    base = f"{served.url}/v1/experiments"
    assert requests.get(base, timeout=30).status_code == 401
    unknown = requests.get(base, auth=(f"never-{uuid.uuid4().hex}", ""), timeout=30)
    token, token_id = scoped_token(served)
    wrong_scope = requests.post(base, json=SPEC, auth=(token, ""), timeout=30)
    assert wrong_scope.status_code == 403 and "scoped to experiment" in wrong_scope.text
    rotated = rotate_token(served.store, token_id, grace_s=0, now=served.clock.now)
    assert rotated is not None
    served.clock.now += 61  # past the minute the server caches the value it has seen
    rotated_out = requests.get(base, auth=(token, ""), timeout=30)
    # The caller cannot tell an unknown value from a rotated-out one.
    assert (rotated_out.status_code, rotated_out.content) == (403, unknown.content)
    assert served.counted(
        {
            "no_token": 1,
            UNKNOWN: 1,
            "wrong_scope": 1,
            ROTATED_OUT: 1,
        }
    ), served.counts()


def test_rotating_a_missing_token_or_a_negative_grace(served: Served) -> None:
    assert rotate_token(served.store, 987654321) is None
    _token, token_id = scoped_token(served)
    with pytest.raises(ValueError, match="grace_s"):
        rotate_token(served.store, token_id, grace_s=-1)


def test_a_retired_bootstrap_value_is_not_registered_again(served: Served) -> None:
    token = create_token(served.store, "bootstrap-like")
    found = resolve_token(served.store, token)
    assert isinstance(found, Grant) and found.token_id is not None
    assert rotate_token(served.store, found.token_id, grace_s=0, now=START - 10) is not None
    with pytest.raises(RetiredToken, match=f"rotation \\(token {found.token_id}\\)"):
        register_token(served.store, token, name="bootstrap")


def test_token_cli_rotate(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", served.db_url]
    old, token_id = scoped_token(served)
    assert cli_main(["token", "rotate", *db, str(token_id), "--grace", "900"]) == 0
    out = capsys.readouterr()
    new = out.out.strip()
    assert len(new) >= 40 and new != old and old not in out.err
    assert served.status(new) == 200
    info = token_info(served.store, token_id)
    assert info is not None and info.rotated is not None and info.previous_until is not None
    assert info.previous_until - info.rotated == 900
    assert cli_main(["token", "show", *db, str(token_id)]) == 0
    shown = capsys.readouterr().out.strip().split("\t")
    assert shown[:4] == [str(token_id), f"experiment {served.experiment}", shown[2], "fleet"]
    assert shown[5] != "-" and shown[6] != "-"
    assert out.err.strip() == "rotated " + "\t".join(shown)
    assert cli_main(["token", "list", *db]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].endswith("\trotated (UTC)\tprevious accepted until (UTC)")
    assert "\t".join(shown) in listed
    assert cli_main(["token", "rotate", *db, "987654321"]) == 2
    assert "no token with id 987654321" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["token", "rotate", *db, str(token_id), "--grace", "-5"])
    assert "--grace: expected whole seconds >= 0" in capsys.readouterr().err


def test_operator_route_rotates_a_token_of_its_client(served: Served) -> None:
    old, token_id = scoped_token(served)
    url = f"{served.url}/v1/tokens/{token_id}/rotate"
    answer = requests.post(url, json={"grace_seconds": 120}, auth=(OPERATOR, ""), timeout=30)
    assert answer.status_code == 200, answer.text
    rotated = answer.json()
    assert rotated["object"] == "token_rotation" and rotated["id"] == str(token_id)
    assert rotated["experiment"] == served.experiment
    assert rotated["previous_accepted_until"] == rotated["rotated"] + 120 == START + 120
    assert served.status(rotated["token"]) == 200 and served.status(old) == 200
    served.clock.now = START + 120
    assert served.status(old) == 403
    # No body: the default grace.
    again = requests.post(url, auth=(OPERATOR, ""), timeout=30).json()
    assert again["previous_accepted_until"] - again["rotated"] == 3600
    # A scoped token may not rotate, not even itself.
    refused = requests.post(url, json={}, auth=(again["token"], ""), timeout=30)
    assert refused.status_code == 403 and "scoped to experiment" in refused.text


def test_operator_route_refuses_bad_input_and_other_clients_tokens(served: Served) -> None:
    _token, token_id = scoped_token(served)
    other = create_token(served.store, "another client")
    other_id = resolve_token(served.store, other)
    assert isinstance(other_id, Grant)
    base = f"{served.url}/v1/tokens"
    for path, body, status, words in (
        (f"{token_id}/rotate", {"grace_seconds": -1}, 400, "grace_seconds"),
        (f"{token_id}/rotate", {"grace_seconds": "60"}, 400, "grace_seconds"),
        (f"{token_id}/rotate", {"grace_seconds": 10**9}, 400, "grace_seconds"),
        (f"{token_id}/rotate", {"grace": 60}, 400, "'grace'"),
        (f"{token_id}/rotate", [60], 400, "the request body"),
        (f"{other_id.token_id}/rotate", {}, 404, "no such token"),
        ("987654321/rotate", {}, 404, "no such token"),
        ("self/rotate", {}, 404, ""),
    ):
        answer = requests.post(f"{base}/{path}", json=body, auth=(OPERATOR, ""), timeout=30)
        assert answer.status_code == status, (path, body, answer.text)
        assert words in answer.text, answer.text
    # The other client's token still works with its value.
    assert requests.get(f"{served.url}/v1/tokens/self", auth=(other, ""), timeout=30).ok


def test_a_flood_of_refusals_costs_few_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 refusals in a burst: every one counted, in at most two writes (the first at once,
    the rest a second later), not one write each."""
    store = Store(make_engine(f"sqlite:///{tmp_path}/flood.db"))
    upgrade_to_head(store.engine)
    writes: list[int] = []

    def counting(store: Store, counts: Mapping[str, int], last: Mapping[str, int]) -> None:
        writes.append(sum(counts.values()))
        add_refusals(store, counts, last)

    monkeypatch.setattr(refusal_log, "add_refusals", counting)
    counter = refusal_log.RefusalCounter(store, flush_s=0.2)

    async def burst() -> None:
        for n in range(1000):
            counter.add(UNKNOWN if n % 2 else "no_token", 1_000 + n)
        while sum(writes) < 1000:  # until the scheduled writes ran (bounded by the test's timeout)
            await asyncio.sleep(0.05)

    try:
        # A loop of its own in a thread of its own: an earlier test (the browser's sync API)
        # may have left an event loop running in this one.
        with ThreadPoolExecutor(max_workers=1) as thread:
            thread.submit(asyncio.run, asyncio.wait_for(burst(), timeout=30)).result()
        assert sum(writes) == 1000 and len(writes) <= 2, writes
        counts = {row.reason: (row.count, row.last) for row in refusal_counts(store)}
        assert counts == {UNKNOWN: (500, 1_999), "no_token": (500, 1_998)}
    finally:
        store.dispose()
