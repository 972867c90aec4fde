"""The experiment page shows early stopping (issue 21): the stopped runs' spend and estimated
saving in the summary, a "Stopped early" column, and "value vs step per run" from runs.json.

The runs are made through the API as an agent makes them: a training run per suggestion,
checkpoints answered by the server's ASHA rule (the stops are the server's own decisions), then
the observation with the agent's cost and stopping metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from suggestion_server.domain.stopping_savings import stopping_savings
from tests.agent.helpers import Api
from tests.support.server import RunningServer
from tests.web.conftest import SCREENSHOTS, Fleet, _new_token, rendered_summary, sign_in

TOKEN = "web-stopping-token-4b1c7e"
STEPS = 9
# (rung-1 value, later value, instance_seconds, cost_usd): three full-length runs, then two that
# lead at rung 1 and fall to the bottom by rung 3, where ASHA keeps only the top third.
FULL = [(0.1, 0.3, 10, 1.0), (0.2, 0.4, 12, 1.2), (0.3, 0.5, 14, 1.4)]
STOPPED = [(0.6, 0.05, 4, 0.4), (0.7, 0.05, 13, 1.3)]
FAILED_COST = (100, 10.0)  # counted in the median it would move it: failed runs take no part


class Builder:
    """Suggestions, runs, checkpoints and observations of one experiment."""

    def __init__(self, api: Api) -> None:
        self.api = api
        body = {
            "name": "early stopping page",
            "parameters": [{"name": "lr", "type": "double", "bounds": {"min": 0, "max": 1}}],
            "metrics": [{"name": "acc", "objective": "maximize"}],
            "training_monitor": {
                "max_checkpoints": 20,
                "early_stopping": {"rule": "asha", "reduction_factor": 3, "grace_step": 1},
            },
        }
        self.eid = str(api.call("POST", "/experiments", json=body)["id"])

    def run(self, curve: list[float]) -> tuple[str, dict[str, Any]]:
        """A suggestion and its run through ``curve`` (steps 1, 2, ...) until told to stop;
        returns the suggestion id and the last checkpoint's answer."""
        suggestion = self.api.call("POST", f"/experiments/{self.eid}/suggestions", json={})["id"]
        run = self.api.call(
            "POST", f"/experiments/{self.eid}/training_runs", json={"suggestion": suggestion}
        )
        answer: dict[str, Any] = {}
        for step, value in enumerate(curve, start=1):
            answer = self.api.call(
                "POST",
                f"/experiments/{self.eid}/training_runs/{run['id']}/checkpoints",
                json={"step": step, "values": [{"name": "acc", "value": value}]},
            )
            if answer["should_stop"]:
                break
        return str(suggestion), answer

    def observe(self, suggestion: str, metadata: dict[str, Any], **body: Any) -> None:
        self.api.call(
            "POST",
            f"/experiments/{self.eid}/observations",
            json={"suggestion": suggestion, "metadata": metadata, **body},
        )


def curve(first: float, later: float) -> list[float]:
    return [first, (first + later) / 2] + [later + step / 1000 for step in range(3, STEPS + 1)]


@pytest.fixture(scope="module")
def stopping() -> Iterator[Fleet]:
    with RunningServer.start(token=TOKEN) as server:
        api = Api(server.url, TOKEN)
        build = Builder(api)
        for first, later, seconds, usd in FULL:
            suggestion, answer = build.run(curve(first, later))
            assert not answer["should_stop"]
            cost = {"instance_seconds": seconds, "cost_usd": usd}
            build.observe(suggestion, cost, values=[{"name": "acc", "value": later}])
        suggestion, answer = build.run([0.9])  # first at rung 1: it goes on, then fails
        assert not answer["should_stop"]
        build.observe(
            suggestion,
            {"instance_seconds": FAILED_COST[0], "cost_usd": FAILED_COST[1]},
            failed=True,
        )
        for first, later, seconds, usd in STOPPED:
            suggestion, answer = build.run(curve(first, later))
            assert answer["should_stop"] and answer["step"] == 3, answer
            metadata = {
                "instance_seconds": seconds,
                "cost_usd": usd,
                "stopped_early": 1,
                "stopped_at_step": answer["step"],
                "stopping_reason": "asha_rung_3",
            }
            build.observe(suggestion, metadata, values=[{"name": "acc", "value": later}])
        yield Fleet(server=server, api=api, experiment_id=build.eid, other_token=_new_token(server))


@pytest.fixture()
def page(browser: Any, stopping: Fleet) -> Iterator[Any]:
    context, page = sign_in(browser, stopping)
    yield page
    context.close()


def get(fleet: Fleet, path: str, token: str = TOKEN, **params: Any) -> requests.Response:
    return requests.get(f"{fleet.page_url}/{path}", auth=(token, ""), params=params, timeout=30)


def test_the_payload_carries_the_pure_functions_figures(stopping: Fleet) -> None:
    figures = get(stopping, "data.json").json()["cost"]["stopping"]
    observations = stopping.api.observations(stopping.experiment_id)
    pairs = [(bool(o["failed"]), o["metadata"] or {}) for o in observations]
    assert {k: v for k, v in figures.items() if k != "metadata_keys"} == (
        stopping_savings(pairs).as_json()
    )
    assert (figures["stopped"], figures["full_length"]) == (2, 3)
    assert figures["spent"] == {"seconds": 17.0, "usd": 1.7}
    assert figures["median_full_length"] == {"seconds": 12.0, "usd": 1.2}
    assert figures["estimated_saving"] == {"seconds": 8.0, "usd": 0.8}  # 12-4 + max(0, 12-13)


def test_runs_json_pages_the_runs_with_their_checkpoints(stopping: Fleet) -> None:
    whole = get(stopping, "runs.json").json()
    assert whole["total"] == 6 and whole["next_before"] is None
    runs = whole["runs"]
    assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
    stopped = [r for r in runs if r["stopped_at_step"] is not None]
    assert [(r["stopped_at_step"], r["stopping_reason"]) for r in stopped] == [
        (3, "asha_rung_3"),
        (3, "asha_rung_3"),
    ]
    assert all([c[0] for c in r["checkpoints"]] == [1, 2, 3] for r in stopped)
    full = [r for r in runs if r["stopped_at_step"] is None and r["state"] == "completed"]
    assert len(full) == 3
    assert all([c[0] for c in r["checkpoints"]] == list(range(1, STEPS + 1)) for r in full)
    assert full[-1]["checkpoints"][0][1] == [{"name": "acc", "value": 0.1, "value_stddev": None}]

    first = get(stopping, "runs.json", limit=4).json()
    assert [r["id"] for r in first["runs"]] == [r["id"] for r in runs[:4]]
    assert first["next_before"] == runs[3]["id"]
    rest = get(stopping, "runs.json", limit=4, before=first["next_before"]).json()
    assert [r["id"] for r in rest["runs"]] == [r["id"] for r in runs[4:]]
    assert rest["next_before"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"before": "x"}, "before")],
)
def test_runs_json_refuses_bad_paging_naming_the_field(
    stopping: Fleet, params: dict[str, str], field: str
) -> None:
    response = get(stopping, "runs.json", **params)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"Invalid {field}: ")


def test_runs_json_is_the_clients_own(stopping: Fleet) -> None:
    assert get(stopping, "runs.json", token=stopping.other_token).status_code == 404
    assert get(stopping, "runs.json", token="wrong-token").status_code in (400, 403)
    unsigned = requests.get(f"{stopping.page_url}/runs.json", timeout=30)
    assert unsigned.status_code == 401


def test_summary_column_and_value_vs_step_plot(page: Any, stopping: Fleet) -> None:
    summary = rendered_summary(page, stopping.page_url)
    assert "stopped early: 2 runs spent $1.7000, estimated saving $0.8000" in summary

    page.click("[data-tab=history]")
    headers = page.locator("#history-table thead th").all_text_contents()
    assert headers[4:6] == ["Cost (USD)", "Stopped early"]
    assert "stopping_reason" not in headers and "stopped_at_step" not in headers
    cells = page.locator("#history-table tbody td.stopped").all_text_contents()
    # Newest first: the two stopped runs, the failed one, three full-length ones.
    assert cells == ["step 3 · asha_rung_3"] * 2 + [""] * 4

    page.click("[data-tab=analysis]")
    page.wait_for_selector("#app[data-runs-plotted]", timeout=60_000)
    traces = page.evaluate(
        "document.getElementById('plot-runs').data.map(t => ({x: t.x, dash: (t.line || {}).dash"
        " || null, meta: t.meta || null, mode: t.mode}))"
    )
    lines = [t for t in traces if "run" in (t["meta"] or {})]
    assert len(lines) == 6  # one per run (the failed run's single checkpoint is a point)
    assert sorted(t["mode"] for t in lines) == ["lines"] * 5 + ["markers"]
    dashed = [t for t in lines if t["dash"] == "dash"]
    assert len(dashed) == 2 and all(t["meta"]["stopped"] for t in dashed)
    assert all(t["x"] == [1, 2, 3] for t in dashed)
    assert sum(t["x"] == list(range(1, STEPS + 1)) for t in lines) == 3
    [stops] = [t for t in traces if (t["meta"] or {}).get("stops")]
    assert stops["x"] == [3, 3]  # a marker where each stopped run stopped
    assert "2 of these runs were stopped early" in page.locator("#runs-status").text_content()
    assert page.is_disabled("#runs-older") and page.is_disabled("#runs-newer")
    page.locator("#plot-runs").screenshot(path=str(SCREENSHOTS / "runs.png"))


def test_an_experiment_without_runs_shows_no_empty_plot(page: Any, stopping: Fleet) -> None:
    body = {
        "name": "no runs",
        "parameters": [{"name": "x", "type": "int", "bounds": {"min": 0, "max": 3}}],
    }
    eid = stopping.api.call("POST", "/experiments", json=body)["id"]
    page.goto(f"{stopping.server.url}/experiments/{eid}#analysis")
    page.wait_for_selector("#app[data-runs-plotted]", timeout=60_000)
    assert page.locator("#plot-runs").is_hidden()
    assert page.locator("#runs-status").text_content().startswith("No training runs")
    assert "stopped early" not in page.locator("#summary").text_content()
