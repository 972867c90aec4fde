"""The experiment web page in real headless Chromium against a server filled by a fleet run."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from tests.support.ports import wait_until
from tests.web.conftest import SCREENSHOTS, STUCK, XSS_INSTANCE, Fleet, sign_in


@pytest.fixture(scope="module")
def signed_in(browser: Any, fleet: Fleet) -> Any:
    """One signed-in browser context for the module; yields its page."""
    context, page = sign_in(browser, fleet)
    yield page
    context.close()


def open_experiment(page: Any, fleet: Fleet, tab: str = "suggestions") -> None:
    page.goto(fleet.page_url)
    page.wait_for_selector("#app[data-rendered]")
    page.click(f"[data-tab={tab}]")


def test_suggestions_tab_shows_instance_id_of_every_open_suggestion(
    signed_in: Any, fleet: Fleet
) -> None:
    page = signed_in
    open_experiment(page, fleet)
    open_ones = fleet.api.open_suggestions(fleet.experiment_id)
    assert {s["metadata"]["instance_id"] for s in open_ones} == {*STUCK, XSS_INSTANCE}
    headers = page.locator("#suggestions-table thead th").all_text_contents()
    assert headers[:3] == ["Id", "Age", "instance_id"]  # instance_id is the first metadata column
    rows = page.locator("#suggestions-table tbody tr")
    assert rows.count() == len(open_ones)
    shown = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        shown[row.get_attribute("data-id")] = row.locator("td.instance").text_content()
    assert shown == {str(s["id"]): s["metadata"]["instance_id"] for s in open_ones}
    # Every assignment and metadata key of the open suggestions has a column.
    for suggestion in open_ones:
        for key in [*suggestion["assignments"], *suggestion["metadata"]]:
            assert key in headers, key
    page.screenshot(path=str(SCREENSHOTS / "suggestions.png"))


def test_markup_in_metadata_is_shown_as_text(signed_in: Any, fleet: Fleet) -> None:
    page = signed_in
    open_experiment(page, fleet)
    cell = page.locator("#suggestions-table td.instance", has_text="onerror")
    assert cell.text_content() == XSS_INSTANCE
    assert page.locator("#suggestions-table img").count() == 0
    assert page.evaluate("window.__xss") is None
    # The experiment name is markup too: shown literally in the heading.
    assert "<b>demo</b>" in page.locator("#exp-name").text_content()


def test_clicking_a_failed_observation_shows_its_metadata(signed_in: Any, fleet: Fleet) -> None:
    page = signed_in
    open_experiment(page, fleet, "history")
    observations = fleet.api.observations(fleet.experiment_id)
    failed = [o for o in observations if o["failed"]]
    assert failed and len(failed) < len(observations)
    page.check("#filter-failed")
    rows = page.locator("#history-table tbody tr")
    wait_until(lambda: rows.count() == len(failed), 10, "failed-only filter")
    assert all("failed" in (rows.nth(i).get_attribute("class") or "") for i in range(rows.count()))
    newest_failed = max(failed, key=lambda o: int(o["id"]))
    rows.first.click()
    dialog = page.locator("dialog#detail")
    dialog.wait_for(state="visible")
    title = page.locator("#detail-title").text_content()
    assert title == f"Observation {newest_failed['id']} (failed)"
    for key, value in newest_failed["metadata"].items():
        text = dialog.locator(f'td[data-key="metadata.{key}"]').text_content()
        if isinstance(value, str):
            assert text == value, key
        else:
            assert float(text) == pytest.approx(value, rel=1e-5), key
    reason = dialog.locator('td[data-key="metadata.failure_reason"]').text_content()
    assert reason and reason == newest_failed["metadata"]["failure_reason"]
    page.screenshot(path=str(SCREENSHOTS / "history.png"))
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def test_history_filters_by_a_metadata_value(signed_in: Any, fleet: Fleet) -> None:
    page = signed_in
    open_experiment(page, fleet, "history")
    observations = fleet.api.observations(fleet.experiment_id)
    instance = "i-0web000000000ok1"
    expected = sorted(
        (o["id"] for o in observations if o["metadata"]["instance_id"] == instance),
        key=int,
        reverse=True,
    )
    assert expected
    page.select_option("#filter-key", label="instance_id")
    page.fill("#filter-value", instance)
    rows = page.locator("#history-table tbody tr")
    wait_until(lambda: rows.count() == len(expected), 10, "instance filter")
    assert [rows.nth(i).get_attribute("data-id") for i in range(rows.count())] == expected
    assert set(rows.locator("td.instance").all_text_contents()) == {instance}
    page.click("#filter-clear")
    wait_until(lambda: rows.count() == len(observations), 10, "filters cleared")


def test_parallel_coordinates_offer_metadata_axes(signed_in: Any, fleet: Fleet) -> None:
    page = signed_in
    open_experiment(page, fleet, "analysis")
    page.wait_for_selector("#app[data-plotted]", timeout=60_000)
    chooser = page.locator("#axes input[type=checkbox]")
    offered = {
        chooser.nth(i).get_attribute("value"): chooser.nth(i) for i in range(chooser.count())
    }
    wanted = ("p:x", "p:y", "p:layers", "p:optimizer", "m:score", "k:instance_id", "k:duration_s")
    for axis in wanted:
        assert axis in offered, (axis, sorted(offered))
    assert offered["k:instance_id"].get_attribute("data-categorical") == "1"
    assert offered["k:duration_s"].get_attribute("data-categorical") == "0"
    offered["k:instance_id"].check()
    offered["k:duration_s"].check()

    def plotted_dimensions() -> dict[str, Any]:
        dimensions = page.evaluate(
            "document.getElementById('plot-parcoords').data[0].dimensions"
            ".map(d => ({label: d.label, ticktext: d.ticktext || null, n: d.values.length}))"
        )
        return {d["label"]: d for d in dimensions}

    # Each check replots on its own: wait for the plot that has both new axes, not the first.
    wait_until(lambda: {"instance_id", "duration_s"} <= set(plotted_dimensions()), 30, "replot")
    by_label = plotted_dimensions()
    assert {"x", "y", "layers", "optimizer", "score", "instance_id", "duration_s"} <= set(by_label)
    # instance_id is a categorical axis whose ticks are the instances that reported a score.
    scored = {
        o["metadata"]["instance_id"]
        for o in fleet.api.observations(fleet.experiment_id)
        if not o["failed"]
    }
    assert scored <= set(by_label["instance_id"]["ticktext"])
    assert by_label["duration_s"]["ticktext"] is None
    assert by_label["optimizer"]["ticktext"] == ["adam", "sgd"]
    assert by_label["score"]["n"] == len(
        [o for o in fleet.api.observations(fleet.experiment_id) if not o["failed"]]
    )
    page.locator("#tab-analysis").screenshot(path=str(SCREENSHOTS / "analysis.png"))


def test_page_refreshes_while_the_fleet_runs(signed_in: Any, fleet: Fleet) -> None:
    page = signed_in
    open_experiment(page, fleet)
    before = page.locator("#suggestions-table tbody tr").count()
    late = fleet.api.create_suggestion(fleet.experiment_id, {"instance_id": "i-0web000000late"})
    row = page.locator(f'#suggestions-table tbody tr[data-id="{late["id"]}"] td.instance')
    row.wait_for(timeout=20_000)  # the page polls every few seconds; no reload here
    assert row.text_content() == "i-0web000000late"
    assert page.locator("#suggestions-table tbody tr").count() == before + 1
    fleet.api.call("DELETE", f"/experiments/{fleet.experiment_id}/suggestions/{late['id']}")
    page.locator(f'#suggestions-table tbody tr[data-id="{late["id"]}"]').wait_for(
        state="detached", timeout=20_000
    )


def test_experiment_list_links_to_the_page(signed_in: Any, fleet: Fleet) -> None:
    page = signed_in
    page.goto(f"{fleet.server.url}/")
    link = page.locator(f'#experiments a[href="/experiments/{fleet.experiment_id}"]')
    assert link.text_content() == "web page fleet <b>demo</b>"
    link.click()
    page.wait_for_selector("#app[data-rendered]")


def test_signin_without_a_valid_token_is_refused(browser: Any, fleet: Fleet) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(f"{fleet.page_url}")
        assert page.url == f"{fleet.server.url}/signin"  # not signed in: sent to the form
        assert response is not None
        page.fill("#token", "not-a-real-token")
        with page.expect_response(f"{fleet.server.url}/signin") as refused:
            page.click("button[type=submit]")
        assert refused.value.status == 403
        assert "not valid" in page.locator("#signin-error").text_content()
        assert context.cookies() == []
        page.goto(fleet.page_url)
        assert page.url == f"{fleet.server.url}/signin"
    finally:
        context.close()


def test_session_cookie_is_httponly_samesite_and_holds_no_token(browser: Any, fleet: Fleet) -> None:
    context, page = sign_in(browser, fleet)
    try:
        [cookie] = context.cookies()
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] in ("Lax", "Strict")
        assert cookie["secure"] is False  # plain http on loopback; set when served over https
        assert fleet.server.token not in cookie["value"]
        assert fleet.server.token not in page.url
        assert page.evaluate("document.cookie") == ""  # invisible to scripts
        page.click("form.signout button")
        page.wait_for_url(f"{fleet.server.url}/signin")
        assert context.cookies() == []
        page.goto(fleet.page_url)
        assert page.url == f"{fleet.server.url}/signin"
    finally:
        context.close()


def test_forged_or_foreign_cookie_is_ignored(browser: Any, fleet: Fleet) -> None:
    context, _page = sign_in(browser, fleet)
    try:
        [cookie] = context.cookies()
        token_id, expires, mac = cookie["value"].split(".")
        forged = f"{token_id}.{int(expires) + 10**6}.{mac}"  # longer life, same signature
        response = requests.get(
            f"{fleet.page_url}/data.json",
            cookies={cookie["name"]: forged},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 401
        good = requests.get(
            f"{fleet.page_url}/data.json", cookies={cookie["name"]: cookie["value"]}, timeout=30
        )
        assert good.status_code == 200
    finally:
        context.close()


def test_basic_auth_works_for_scripts(fleet: Fleet) -> None:
    auth = (fleet.server.token, "")
    data = requests.get(f"{fleet.page_url}/data.json", auth=auth, timeout=30)
    assert data.status_code == 200
    payload = data.json()
    api_observations = fleet.api.observations(fleet.experiment_id)
    assert [str(o[0]) for o in payload["observations"]] == [o["id"] for o in api_observations]
    by_id = {o["id"]: o for o in api_observations}
    for oid, created, failed, sid, assignments, values, metadata in payload["observations"]:
        wire = by_id[str(oid)]
        assert (created, bool(failed), str(sid)) == (
            wire["created"],
            wire["failed"],
            wire["suggestion"],
        )
        assert assignments == wire["assignments"] and metadata == wire["metadata"]
        assert [(v["name"], v["value"]) for v in values] == [
            (v["name"], v["value"]) for v in wire["values"]
        ]
    open_ids = [s["id"] for s in fleet.api.open_suggestions(fleet.experiment_id)]
    assert [str(row[0]) for row in payload["suggestions"]] == open_ids
    unchanged = requests.get(
        f"{fleet.page_url}/data.json",
        auth=auth,
        headers={"If-None-Match": data.headers["ETag"]},
        timeout=30,
    )
    assert unchanged.status_code == 304
    html = requests.get(fleet.page_url, auth=auth, timeout=30)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    listing = requests.get(f"{fleet.server.url}/", auth=auth, timeout=30)
    assert f'href="/experiments/{fleet.experiment_id}"' in listing.text
    bad = requests.get(f"{fleet.page_url}/data.json", auth=("wrong-token", ""), timeout=30)
    assert bad.status_code == 403 and "valid API token" in bad.json()["message"]
    anonymous = requests.get(f"{fleet.page_url}/data.json", timeout=30, allow_redirects=False)
    assert anonymous.status_code == 401 and "/signin" in anonymous.json()["message"]


def test_another_clients_token_sees_nothing(fleet: Fleet) -> None:
    auth = (fleet.other_token, "")
    assert requests.get(fleet.page_url, auth=auth, timeout=30).status_code == 404
    assert requests.get(f"{fleet.page_url}/data.json", auth=auth, timeout=30).status_code == 404
    listing = requests.get(f"{fleet.server.url}/", auth=auth, timeout=30)
    assert listing.status_code == 200
    assert f"/experiments/{fleet.experiment_id}" not in listing.text


def test_security_headers_and_no_inline_script(fleet: Fleet) -> None:
    auth = (fleet.server.token, "")
    for url in (fleet.page_url, f"{fleet.server.url}/", f"{fleet.server.url}/signin"):
        response = requests.get(url, auth=auth, timeout=30)
        csp = response.headers["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]*)", csp)
        assert script_src is not None and "'unsafe-inline'" not in script_src.group(1)
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        for tag in re.findall(r"<script[^>]*>", response.text):
            assert "src=" in tag, tag  # every script is a file from this server
        assert "onclick" not in response.text and "javascript:" not in response.text


def test_plotly_is_served_from_the_installed_package(fleet: Fleet) -> None:
    html = requests.get(fleet.page_url, auth=(fleet.server.token, ""), timeout=30).text
    match = re.search(r'data-plotly-url="([^"]+)"', html)
    assert match is not None
    bundle = requests.get(f"{fleet.server.url}{match.group(1)}", timeout=30)
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"plotly.js v" in bundle.content[:200]
    assert bundle.headers.get("content-encoding") == "gzip"  # requests asks for gzip
