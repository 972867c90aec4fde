"""Experiment web page load time with 5,000 observations, in real headless Chromium.

A real server (SQLite) gets 5,000 observations with agent-like metadata (50 instances, 5% failed
with a failure reason) and 32 open suggestions, all through the API. Then, in the same run:

- baseline: fetching the same 5,000 observations through ``/v1`` (5 pages of 1,000, what a
  script or the official client does), with ``requests``;
- ``data.json``: the page's one compact payload, with ``requests`` (gzip, as browsers ask);
- page load: a fresh signed-in Chromium context opens ``/experiments/{id}`` and the time from
  navigation start until the tables are rendered (the ``optfleet-rendered`` performance mark);
  cold (empty cache) and warm (reload);
- Analysis tab: from the click until Plotly has drawn all three plots, cold (Plotly's bundle not
  yet cached) and warm.

Run: .venv/bin/python -m benchmarks.bench_web [--observations 5000] [--repeats 5] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import requests

from benchmarks._api import Api, in_parallel, loss_of, random_assignments
from benchmarks._report import (
    keep_unavailable_section,
    machine_description,
    markdown_table,
    median,
    write_section,
)
from benchmarks._requirements import missing_chromium
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.server import RunningServer

BENCH_TOKEN = "bench-web-token"  # noqa: S105 - a throwaway token for a loopback server
SECTION = "web"
TITLE = "Experiment web page: load time with 5,000 observations"


def agent_like_metadata(rng: random.Random, instance: int, failed: bool) -> dict[str, Any]:
    """What the agent stamps on an observation."""
    meta: dict[str, Any] = {
        "instance_id": f"i-0{instance:016x}",
        "instance_type": rng.choice(["c7g.large", "c7g.xlarge"]),
        "availability_zone": rng.choice(["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
        "lifecycle": rng.choice(["spot", "on-demand"]),
        "agent_version": "0.1.0",
        "duration_s": round(rng.uniform(30, 900), 3),
        "attempt": 1,
        "resumed": 0,
    }
    if failed:
        meta["failure_reason"] = "evaluation exited 1: CUDA out of memory"
        meta["exit_code"] = 1
    return meta


def seed(api: Api, experiment_id: str, observations: int, open_suggestions: int) -> None:
    """Observations and open suggestions through the API (8 clients at a time)."""

    def observe(i: int) -> None:
        rng = random.Random(i)
        failed = rng.random() < 0.05
        assignments = random_assignments(rng)
        body: dict[str, Any] = {
            "assignments": assignments,
            "metadata": agent_like_metadata(rng, i % 50, failed),
        }
        if failed:
            body["failed"] = True
        else:
            body["values"] = [{"name": "loss", "value": loss_of(assignments)}]
        api.call("POST", f"/experiments/{experiment_id}/observations", body)

    def suggest(i: int) -> None:
        meta = agent_like_metadata(random.Random(10**6 + i), i, False)
        api.call("POST", f"/experiments/{experiment_id}/suggestions", {"metadata": meta})

    in_parallel(observations, observe)
    in_parallel(open_suggestions, suggest)


def api_fetch_ms(url: str, token: str, experiment_id: str, expected: int) -> float:
    """Milliseconds to page through every observation via ``/v1`` (limit 1000)."""
    session = requests.Session()
    session.auth = (token, "")
    started = time.perf_counter()
    items = 0
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = session.get(
            f"{url}/v1/experiments/{experiment_id}/observations", params=params, timeout=60
        ).json()
        items += len(page["data"])
        before = page["paging"]["before"]
        if not page["data"] or not before:
            break
        params = {"limit": 1000, "before": before}
    elapsed = (time.perf_counter() - started) * 1000
    if items != expected:
        raise RuntimeError(f"/v1 listed {items} observations, expected {expected}")
    return elapsed


def data_json_ms(url: str, token: str, experiment_id: str, expected: int) -> tuple[float, int]:
    """(milliseconds, bytes on the wire) of one ``data.json`` fetch."""
    started = time.perf_counter()
    response = requests.get(
        f"{url}/experiments/{experiment_id}/data.json",
        auth=(token, ""),
        headers={"Accept-Encoding": "gzip"},
        timeout=60,
        stream=True,
    )
    raw = response.raw.read(decode_content=False)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"data.json -> {response.status_code}")
    count = len(
        requests.get(
            f"{url}/experiments/{experiment_id}/data.json", auth=(token, ""), timeout=60
        ).json()["observations"]
    )
    if count != expected:
        raise RuntimeError(f"data.json had {count} observations, expected {expected}")
    return elapsed, len(raw)


def browser_timings(browser: Any, server: RunningServer, experiment_id: str) -> dict[str, float]:
    """Cold and warm page load and Analysis tab times (ms) in one fresh browser context."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/signin")
        page.fill("#token", server.token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")
        result = {}
        for label in ("cold", "warm"):
            page.goto(f"{server.url}/experiments/{experiment_id}")
            page.wait_for_selector("#app[data-rendered]", timeout=60_000)
            result[f"page_{label}"] = float(
                page.evaluate("performance.getEntriesByName('optfleet-rendered')[0].startTime")
            )
            started = page.evaluate("performance.now()")
            page.click("[data-tab=analysis]")
            page.wait_for_selector("#app[data-plotted]", timeout=120_000)
            result[f"analysis_{label}"] = float(page.evaluate("performance.now()")) - started
        return result
    finally:
        context.close()


def main() -> int:
    """Seed, measure, and write the ``web`` section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--observations", type=int, default=5000)
    parser.add_argument("--open-suggestions", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if missing := missing_chromium():
        return keep_unavailable_section(SECTION, TITLE, missing, write=not args.no_write)

    from playwright.sync_api import sync_playwright

    with RunningServer.start(token=BENCH_TOKEN) as server:
        api = Api(server.url, server.token)
        eid = api.create_experiment("web page benchmark")
        started = time.perf_counter()
        seed(api, eid, args.observations, args.open_suggestions)
        seeded_s = time.perf_counter() - started
        n = args.observations
        baseline = [api_fetch_ms(server.url, server.token, eid, n) for _ in range(args.repeats)]
        payload = [data_json_ms(server.url, server.token, eid, n) for _ in range(args.repeats)]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                runs = [browser_timings(browser, server, eid) for _ in range(args.repeats)]
            finally:
                browser.close()

    base = median(baseline)
    rows = [
        ["GET /v1 observations, 5 pages of 1,000 (baseline)", f"{base:.0f}", "1.00", ""],
        [
            "GET data.json (whole page payload, gzip)",
            f"{median([p[0] for p in payload]):.0f}",
            f"{median([p[0] for p in payload]) / base:.2f}",
            f"{payload[0][1] / 1024:.0f} KiB on the wire",
        ],
    ]
    for key, label in (
        ("page_cold", "page load, cold cache: navigation → tables rendered"),
        ("page_warm", "page load, warm (reload)"),
        ("analysis_cold", "Analysis tab, cold: click → 3 plots drawn (incl. loading Plotly)"),
        ("analysis_warm", "Analysis tab, warm"),
    ):
        values = [run[key] for run in runs]
        rows.append(
            [
                label,
                f"{median(values):.0f}",
                f"{median(values) / base:.2f}",
                f"max {max(values):.0f}",
            ]
        )
    body = "\n".join(
        [
            f"## {TITLE}",
            "",
            machine_description(["plotly", "playwright", "fastapi"]),
            f"- Data: {n} observations with agent-like metadata (50 instances, ~5% failed with a "
            f"failure reason), {args.open_suggestions} open suggestions, SQLite; seeded through "
            f"the API in {seeded_s:.0f} s. Browser: Debian Chromium headless (software rendering), "
            f"via Playwright, on the same machine as the server.",
            f"- Median of {args.repeats} runs, milliseconds; ratio = against the /v1 baseline "
            "measured in the same run. Target: the page loads in ≤ 1 s.",
            "",
            markdown_table(["what", "median ms", "x baseline", "note"], rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
