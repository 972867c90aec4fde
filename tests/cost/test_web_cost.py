"""The experiment page shows each observation's cost and plots best value against spend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.helpers import Api
from tests.cost.conftest import TOKEN, create_experiment
from tests.support.ports import wait_until
from tests.support.server import RunningServer
from tests.web.conftest import Fleet, sign_in

COSTS = [0.25, 0.5, 0.125]  # chronological; the third observation failed


@pytest.fixture(scope="module")
def costed(server: RunningServer) -> Fleet:
    api = Api(server.url, TOKEN)
    eid = create_experiment(api, "cost page")
    for n, cost in enumerate(COSTS):
        suggestion = api.create_suggestion(eid, {"instance_id": f"i-0webcost00000{n}"})
        body: dict[str, Any] = {
            "suggestion": suggestion["id"],
            "metadata": {"instance_id": f"i-0webcost00000{n}", "cost_usd": cost},
        }
        if n == 2:
            body["failed"] = True
        else:
            body["values"] = [{"value": 1.0 + n}]
        api.call("POST", f"/experiments/{eid}/observations", json=body)
    return Fleet(server=server, api=api, experiment_id=eid, other_token="")


@pytest.fixture()
def page(browser: Any, costed: Fleet) -> Iterator[Any]:
    context, page = sign_in(browser, costed)
    yield page
    context.close()


def test_cost_column_summary_and_cost_axis(page: Any, costed: Fleet) -> None:
    page.goto(costed.page_url)
    page.wait_for_selector("#app[data-rendered]")
    summary = page.locator("#summary").text_content()
    assert "observations cost $0.8750 (wasted: failed $0.1250, earlier attempts $0.0000)" in summary
    page.click("[data-tab=history]")
    headers = page.locator("#history-table thead th").all_text_contents()
    assert headers[4] == "Cost (USD)"
    cells = page.locator("#history-table tbody td.cost").all_text_contents()
    assert [float(c) for c in cells] == list(reversed(COSTS))  # newest first
    page.click("[data-tab=analysis]")
    page.wait_for_selector("#app[data-plotted]", timeout=60_000)
    plotted = int(page.get_attribute("#app", "data-plotted") or "0")
    page.select_option("#history-x", "cost")
    wait_until(
        lambda: int(page.get_attribute("#app", "data-plotted") or "0") > plotted, 30, "replot"
    )
    xs = page.evaluate("document.getElementById('plot-history').data[1].x")
    title = page.evaluate("document.getElementById('plot-history').layout.xaxis.title.text")
    assert title == "cumulative cost (USD)"
    assert xs == [0.25, 0.75]  # best so far against what had been spent (failed one not drawn)
