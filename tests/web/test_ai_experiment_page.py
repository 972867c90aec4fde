"""AI experiments on the web page (issue 20): the index lists them with their project, and an AI
experiment's page shows its runs (states, metadata columns, the detail dialog) and the plots.

The runs are made by the official ``sigopt`` client, unmodified, in its own process: a project,
an AI experiment, ``experiment.loop()`` with checkpoints and the metadata optfleet's agent
stamps (one run fails), one run left active, and a project run outside any experiment.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.server.test_runs_official_client import run_script
from tests.support.server import RunningServer
from tests.web.conftest import SCREENSHOTS, _new_token, rendered_summary, sign_in

TOKEN = "web-ai-token-93c0f1"
PROJECT = f"web-ai-{uuid.uuid4().hex[:8]}"
BUDGET = 5
FAILING = 2  # the loop's run number that raises
STOPPED = 3  # the loop's run number whose third checkpoint is the worst (ASHA stops it)
INSTANCES = ("i-0ai0000000000ok1", "i-0ai0000000000ok2")
SCRIPT = textwrap.dedent(
    """
    import json
    import sigopt

    INSTANCES = %r
    sigopt.create_project()
    experiment = sigopt.create_experiment(
        name="ai page <b>demo</b>",
        parameters=[
            dict(name="lr", type="double", bounds=dict(min=0.001, max=1.0), transformation="log"),
            dict(name="depth", type="int", bounds=dict(min=1, max=8)),
            dict(name="act", type="categorical", categorical_values=["relu", "tanh"]),
        ],
        metrics=[{"name": "accuracy", "objective": "maximize"}],
        budget=%d,
        parallel_bandwidth=1,
        training_monitor={
            "max_checkpoints": 10,
            "early_stopping": {"rule": "asha", "reduction_factor": 3, "grace_step": 1},
        },
    )
    out = {"experiment": experiment.id, "runs": []}
    for number, run in enumerate(experiment.loop()):
        instance = INSTANCES[number %% 2]
        try:
            with run:
                run.log_metadata("instance_id", instance)
                run.log_metadata("instance_type", "c5.large")
                run.log_metadata("availability_zone", "eu-west-1a")
                run.log_metadata("lifecycle", "spot" if number %% 2 else "on-demand")
                run.log_metadata("instance_seconds", 10 + number)
                run.log_metadata("cost_usd", 0.25)
                for epoch in range(1, 4):
                    low = number == %d and epoch == 3  # the bottom of rung 3: told to stop
                    run.log_checkpoint({"accuracy": 0.0 if low else 0.1 * epoch + 0.01 * number})
                if number == %d:
                    run.log_metadata("failure_reason", "diverged at epoch 3")
                    raise ValueError("diverged")
                run.log_metric("accuracy", 0.3 + 0.01 * number)
        except ValueError:
            pass
        out["runs"].append({"id": run.id, "instance": instance})
    active = experiment.create_run(name="still training")
    active.log_metadata("instance_id", INSTANCES[0])
    active.log_checkpoint({"accuracy": 0.05})
    out["active"] = active.id
    with sigopt.create_run(name="plain run") as plain:
        plain.log_metadata("instance_id", INSTANCES[1])
        plain.params.batch_size = 32
        plain.log_metric("loss", 0.5)
    out["plain"] = plain.id
    print(json.dumps(out))
    """
) % (INSTANCES, BUDGET, STOPPED, FAILING)


@dataclass
class AiFleet:
    """The server, the AI experiment and what the script printed (``sign_in`` takes it)."""

    server: RunningServer
    experiment_id: str
    other_token: str
    out: dict[str, Any]

    @property
    def page_url(self) -> str:
        return f"{self.server.url}/experiments/{self.experiment_id}"


@pytest.fixture(scope="module")
def ai_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AiFleet]:
    work = tmp_path_factory.mktemp("web-ai")
    with RunningServer.start(token=TOKEN) as server:
        out = run_script(server, PROJECT, work, SCRIPT)
        yield AiFleet(server, str(out["experiment"]), _new_token(server), out)


@pytest.fixture()
def page(browser: Any, ai_fleet: AiFleet) -> Iterator[Any]:
    context, page = sign_in(browser, ai_fleet)
    yield page
    context.close()


def api_runs(fleet: AiFleet) -> dict[str, dict[str, Any]]:
    """The experiment's runs as the API lists them, by id."""
    client = get(fleet, "/v1/tokens/self").json()["client"]
    response = requests.get(
        f"{fleet.server.url}/v1/clients/{client}/projects/{PROJECT}/training_runs",
        auth=(TOKEN, ""),
        params={"limit": 100},
        timeout=30,
    )
    response.raise_for_status()
    return {r["id"]: r for r in response.json()["data"] if r["experiment"] == fleet.experiment_id}


def test_the_index_lists_the_ai_experiment_with_its_project(page: Any, ai_fleet: AiFleet) -> None:
    row = page.locator(f"#experiments tr[data-id='{ai_fleet.experiment_id}']")
    assert row.locator("td.project").text_content() == PROJECT
    assert row.locator(".tag").text_content() == "AI experiment"
    row.locator(f"a[href='/experiments/{ai_fleet.experiment_id}']").click()
    page.wait_for_selector("#app[data-rendered]")
    assert page.locator("#exp-project").text_content() == PROJECT
    assert "<b>demo</b>" in str(page.locator("#exp-name").text_content())


def test_the_runs_table_shows_states_and_metadata_columns(page: Any, ai_fleet: AiFleet) -> None:
    summary = rendered_summary(page, ai_fleet.page_url)
    runs = api_runs(ai_fleet)
    assert len(runs) == BUDGET + 1
    assert summary.startswith(
        f"{BUDGET + 1} runs of a budget of {BUDGET} · 1 active · {BUDGET - 1} completed · 1 failed"
    )
    # Every ended run stamped cost_usd 0.25: the cost figures come from the runs' metadata.
    assert f"runs cost ${0.25 * BUDGET:.4f} (wasted: failed $0.2500" in summary
    tabs = page.locator("[data-tab]").all_text_contents()
    assert tabs == ["Runs", "Analysis"]
    headers = page.locator("#history-table thead th").all_text_contents()
    assert headers[:6] == [
        "Id",
        "Created (UTC)",
        "State",
        "instance_id",
        "Cost (USD)",
        "Stopped early",
    ]
    assert headers[6:10] == ["accuracy", "act", "depth", "lr"]
    for key in ("instance_type", "availability_zone", "lifecycle", "instance_seconds"):
        assert key in headers, key
    rows = page.locator("#history-table tbody tr")
    assert rows.count() == len(runs)
    shown = {
        rows.nth(i).get_attribute("data-id"): (
            rows.nth(i).locator("td").nth(2).text_content(),
            rows.nth(i).locator("td.instance").text_content(),
        )
        for i in range(rows.count())
    }
    expected_instances = {r["id"]: r["instance"] for r in ai_fleet.out["runs"]}
    expected_instances[ai_fleet.out["active"]] = INSTANCES[0]
    assert shown == {rid: (r["state"], expected_instances[rid]) for rid, r in runs.items()}
    assert ai_fleet.out["plain"] not in shown  # a project run is no run of the experiment
    # Stopped early: the server's answer to the runs' checkpoints (their metadata has no stamp).
    answers = get(ai_fleet, f"/experiments/{ai_fleet.experiment_id}/runs.json").json()["runs"]
    expected_stops = {
        str(r["id"]): ""
        if r["stopped_at_step"] is None
        else f"step {r['stopped_at_step']} · {r['stopping_reason']}"
        for r in answers
    }
    assert expected_stops[ai_fleet.out["runs"][STOPPED]["id"]] == "step 3 · asha_rung_3"
    stops = {
        rows.nth(i).get_attribute("data-id"): rows.nth(i).locator("td.stopped").text_content()
        for i in range(rows.count())
    }
    assert stops == expected_stops
    page.screenshot(path=str(SCREENSHOTS / "ai_runs.png"))
    page.check("#filter-failed")
    assert page.locator("#history-table tbody tr").count() == 1
    assert page.locator("#history-count").text_content() == f"1 of {len(runs)} runs"


def test_clicking_a_failed_run_opens_its_details(page: Any, ai_fleet: AiFleet) -> None:
    rendered_summary(page, ai_fleet.page_url)
    failed_id = ai_fleet.out["runs"][FAILING]["id"]
    failed = api_runs(ai_fleet)[failed_id]
    page.locator(f"#history-table tbody tr[data-id='{failed_id}']").click()
    dialog = page.locator("dialog#detail")
    dialog.wait_for(state="visible")
    assert (
        page.locator("#detail-title").text_content()
        == f"Run {failed_id} · {failed['name']} (failed)"
    )
    cell = lambda key: dialog.locator(f'td[data-key="{key}"]').text_content()  # noqa: E731
    assert cell("state") == "failed"
    assert cell("observation") == str(failed["observation"])
    assert cell("suggestion") == str(failed["suggestion"])
    assert cell("metadata.failure_reason") == "diverged at epoch 3"
    assert cell("metadata.instance_id") == ai_fleet.out["runs"][FAILING]["instance"]
    assert cell("metadata.lifecycle") == failed["metadata"]["lifecycle"]
    assert cell("lr") and cell("depth") == str(failed["assignments"]["depth"])
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def test_the_plots_draw_the_runs(page: Any, ai_fleet: AiFleet) -> None:
    page.goto(f"{ai_fleet.page_url}#analysis")
    page.wait_for_selector("#app[data-plotted]", timeout=60_000)
    page.wait_for_selector("#app[data-runs-plotted]", timeout=60_000)
    assert page.locator("#plot-status").text_content() == ""
    history = page.evaluate("document.getElementById('plot-history').data.map(t => t.x.length)")
    assert history == [BUDGET - 1, BUDGET - 1]  # completed runs, and the best so far
    traces = page.evaluate(
        "document.getElementById('plot-runs').data.map(t => ({x: t.x, meta: t.meta || null}))"
    )
    lines = [t for t in traces if "run" in (t["meta"] or {})]
    assert len(lines) == BUDGET + 1  # every run, the active one (one checkpoint) included
    stopped = {t["meta"]["run"] for t in lines if t["meta"]["stopped"]}
    assert int(ai_fleet.out["runs"][STOPPED]["id"]) in stopped
    assert sorted(len(t["x"]) for t in lines) == [1] + [3] * BUDGET
    full = page.evaluate("document.getElementById('plot-full').data.length")
    assert full >= 1
    dimensions = page.evaluate(
        "document.getElementById('plot-parcoords').data[0].dimensions.map(d => d.values.length)"
    )
    assert dimensions and set(dimensions) == {BUDGET - 1}  # the failed run has no value
    assert "ended runs" in str(page.locator("#parcoords-status").text_content())


def get(fleet: AiFleet, path: str, token: str = TOKEN) -> requests.Response:
    return requests.get(f"{fleet.server.url}{path}", auth=(token, ""), timeout=30)


def test_data_json_carries_the_runs(ai_fleet: AiFleet) -> None:
    data = get(ai_fleet, f"/experiments/{ai_fleet.experiment_id}/data.json").json()
    assert data["experiment"]["runs_only"] is True
    assert data["experiment"]["project"] == PROJECT
    assert data["experiment"]["active_run_count"] == 1
    runs = {str(r[0]): r for r in data["runs"]}
    assert set(runs) == set(api_runs(ai_fleet))
    active = runs[ai_fleet.out["active"]]
    assert active[2] == "active" and active[4] is None and active[8] == "still training"
    assert data["cost"]["total"]["usd"] == pytest.approx(0.25 * BUDGET)


def test_another_clients_ai_experiment_is_not_found(ai_fleet: AiFleet) -> None:
    eid = ai_fleet.experiment_id
    other = ai_fleet.other_token
    page = get(ai_fleet, f"/experiments/{eid}", token=other)
    assert page.status_code == 404 and "no such experiment" in page.text
    for path in (f"/experiments/{eid}/data.json", f"/experiments/{eid}/runs.json"):
        assert get(ai_fleet, path, token=other).status_code == 404
    assert get(ai_fleet, "/experiments/999999/data.json").status_code == 404
    assert get(ai_fleet, "/experiments/x1/data.json").status_code == 404
    assert get(ai_fleet, "/", token=other).text.count(f'/experiments/{eid}"') == 0


def test_runs_json_serves_an_ai_experiments_runs(ai_fleet: AiFleet) -> None:
    body = get(ai_fleet, f"/experiments/{ai_fleet.experiment_id}/runs.json").json()
    assert body["total"] == BUDGET + 1
    states = sorted(r["state"] for r in body["runs"])
    assert states == ["active"] + ["completed"] * (BUDGET - 1) + ["failed"]


def test_the_project_page_lists_its_experiments_and_runs_outside_them(
    page: Any, ai_fleet: AiFleet
) -> None:
    page.locator(f"#experiments tr[data-id='{ai_fleet.experiment_id}'] td.project a").click()
    page.wait_for_url(f"{ai_fleet.server.url}/projects/{PROJECT}")
    assert page.locator("#project-experiments tbody tr").get_attribute("data-id") == (
        ai_fleet.experiment_id
    )
    cells = page.locator("#project-experiments tbody td").all_text_contents()
    assert cells[3:6] == [f"{BUDGET + 1} / {BUDGET}", "1", str(BUDGET)]
    headers = page.locator("#project-runs thead th").all_text_contents()
    assert headers == ["Id", "Name", "Created (UTC)", "State", "loss", "batch_size", "instance_id"]
    [row] = page.locator("#project-runs tbody tr").all()
    assert row.get_attribute("data-id") == ai_fleet.out["plain"]
    cells = row.locator("td").all_text_contents()
    assert [cells[1], *cells[3:]] == ["plain run", "completed", "0.5", "32", INSTANCES[1]]
    page.screenshot(path=str(SCREENSHOTS / "project.png"))


def test_another_clients_project_is_not_found(ai_fleet: AiFleet) -> None:
    for path, token in ((f"/projects/{PROJECT}", ai_fleet.other_token), ("/projects/nope", TOKEN)):
        answer = get(ai_fleet, path, token=token)
        assert answer.status_code == 404 and "no such project" in answer.text
