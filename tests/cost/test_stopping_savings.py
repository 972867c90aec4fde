"""What early stopping spent and saved (issue 21): one table of cases, run against every way the
figures are reached: the server's pure function, the experiment page's payload (metadata as the
stored JSON text) and the CLI's ``experiment_cost`` (`optfleet status`, the demo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from emulators.pricing import PricingEmulator
from optfleet.cost.demo_cost import print_cost_table
from optfleet.cost.experiment_cost import experiment_cost, stopping_line
from suggestion_server.domain.stopping_savings import stopping_savings
from suggestion_server.http.web.page_cost import page_cost
from tests.agent.helpers import Api
from tests.cli.conftest import MotoServer, run_cli
from tests.cost.conftest import TOKEN, create_experiment
from tests.cost.test_cost_cap import launch
from tests.cost.test_status_cost import observe
from tests.support.server import RunningServer

UNKNOWN = None
STOP = {"stopped_early": 1, "stopped_at_step": 3, "stopping_reason": "asha_rung_3"}


def run(seconds: float | None, usd: float | None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(extra)
    if seconds is not None:
        metadata["instance_seconds"] = seconds
    if usd is not None:
        metadata["cost_usd"] = usd
    return metadata


FULL = [(False, run(10, 1.0)), (False, run(12, 1.2)), (False, run(14, 1.4))]
# A failed run costs far more: counted in the median, it would move it from 12 to 13.
FAILED = (True, run(100, 10.0))

# (case, [(failed, metadata)], expected): spent, median and saving are (seconds, usd).
CASES: list[tuple[str, list[tuple[bool, dict[str, Any]]], dict[str, Any]]] = [
    (
        "no stopped runs: nothing spent, nothing saved",
        [*FULL, FAILED],
        {"stopped": 0, "full_length": 3, "spent": (0, 0.0), "median": (12, 1.2),
         "saving": (0, 0.0), "unknown_cost": 0, "note": ""},
    ),
    (
        "stopped runs against the median full-length run, failed ones excluded",
        # The second stopped run cost more than the median (retried): it saved nothing, not < 0.
        [*FULL, FAILED, (False, run(4, 0.4, **STOP)), (False, run(13, 1.3, **STOP))],
        {"stopped": 2, "full_length": 3, "spent": (17, 1.7), "median": (12, 1.2),
         "saving": (8, 0.8), "unknown_cost": 0, "note": ""},
    ),
    (
        "stopped runs and no full-length run yet: the saving is unknown, not 0",
        [FAILED, (False, run(4, 0.4, **STOP))],
        {"stopped": 1, "full_length": 0, "spent": (4, 0.4), "median": (UNKNOWN, UNKNOWN),
         "saving": (UNKNOWN, UNKNOWN), "unknown_cost": 0,
         "note": "no full-length run yet to compare with"},
    ),
    (
        "a stopped run of unknown cost: its USD is unknown, its seconds are not",
        [*FULL, (False, run(4, 0.4, **STOP)), (False, run(6, None, **STOP))],
        {"stopped": 2, "full_length": 3, "spent": (10, UNKNOWN), "median": (12, 1.2),
         "saving": (14, UNKNOWN), "unknown_cost": 1, "note": "1 stopped run has no recorded cost"},
    ),
    (
        "a full-length run of unknown cost: the median of the priced ones; flags as strings",
        [(False, run(10, 1.0)), (False, run(30, None)), (False, run(20, 3.0)),
         (False, run("2", "0.5", stopped_early="1"))],
        {"stopped": 1, "full_length": 3, "spent": (2, 0.5), "median": (20, 2.0),
         "saving": (18, 1.5), "unknown_cost": 0, "note": ""},
    ),
    (
        "no full-length run carries a cost (a peer without prices)",
        [(False, run(10, None)), (False, run(4, 0.2, **STOP))],
        {"stopped": 1, "full_length": 1, "spent": (4, 0.2), "median": (10, UNKNOWN),
         "saving": (6, UNKNOWN), "unknown_cost": 0,
         "note": "no full-length run has recorded cost"},
    ),
]  # fmt: skip


def expected_json(expected: dict[str, Any]) -> dict[str, Any]:
    def pair(value: tuple[float | None, float | None]) -> dict[str, float | None]:
        return {"seconds": value[0], "usd": value[1]}

    return {
        "stopped": expected["stopped"],
        "full_length": expected["full_length"],
        "spent": pair(expected["spent"]),
        "median_full_length": pair(expected["median"]),
        "estimated_saving": pair(expected["saving"]),
        "unknown_seconds": 0,
        "unknown_cost": expected["unknown_cost"],
        "note": expected["note"],
    }


def as_observations(rows: list[tuple[bool, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        {
            "id": str(n + 1),
            "suggestion": str(n + 1),
            "created": n,
            "failed": failed,
            "values": [] if failed else [{"name": None, "value": 1.0}],
            "metadata": metadata,
        }
        for n, (failed, metadata) in enumerate(rows)
    ]


@pytest.mark.parametrize(("case", "rows", "expected"), CASES, ids=[c[0] for c in CASES])
def test_pure_function_page_and_cli_say_the_same(
    case: str, rows: list[tuple[bool, dict[str, Any]]], expected: dict[str, Any]
) -> None:
    want = expected_json(expected)
    assert stopping_savings(rows).as_json() == want
    newest_first = [(failed, json.dumps(metadata)) for failed, metadata in reversed(rows)]
    page = page_cost(newest_first)["stopping"]
    assert isinstance(page, dict)
    assert {k: v for k, v in page.items() if k != "metadata_keys"} == want
    assert experiment_cost(None, as_observations(rows), [], {}).as_json()["stopping"] == want


def test_a_stopped_run_without_instance_seconds_makes_the_seconds_unknown() -> None:
    savings = stopping_savings([*FULL, (False, {"stopped_early": 1, "cost_usd": 0.1})])
    assert (savings.spent.seconds, savings.estimated_saving.seconds) == (None, None)
    assert (savings.spent.usd, savings.estimated_saving.usd) == (0.1, pytest.approx(1.1))
    assert savings.unknown_seconds == 1
    assert savings.note() == "1 stopped run has no instance-seconds"


def test_failed_stopped_observations_count_as_failed() -> None:
    savings = stopping_savings([*FULL, (True, run(5, 0.5, **STOP))])
    assert (savings.stopped, savings.full_length) == (0, 3)


def test_the_cli_line_says_unknown_never_zero() -> None:
    known = experiment_cost(None, as_observations(CASES[1][1]), [], {}).as_json()["stopping"]
    assert stopping_line(known) == (
        "stopped early: 2 runs spent $1.7000 (17 instance-seconds); estimated saving $0.8000 "
        "(8 instance-seconds) against the median of 3 full-length runs ($1.2000 each)"
    )
    alone = experiment_cost(None, as_observations(CASES[2][1]), [], {}).as_json()["stopping"]
    assert stopping_line(alone) == (
        "stopped early: 1 run spent $0.4000 (4 instance-seconds); estimated saving unknown "
        "(unknown instance-seconds) against the median of 0 full-length runs (unknown each); "
        "unknown: no full-length run yet to compare with"
    )
    assert stopping_line(stopping_savings(FULL).as_json()) == ""


def test_the_demo_cost_table_prints_the_saving() -> None:
    cost = experiment_cost(None, as_observations(CASES[1][1]), [], {}).as_json()
    cost["prices"] = "prices are simulated"
    console = Console(record=True, width=300)
    print_cost_table(console, cost)
    text = console.export_text()
    assert "stopped early: 2 runs spent $1.7000" in text
    assert "estimated saving $0.8000 (8 instance-seconds)" in text


def test_status_prints_the_stopped_runs_spend_and_saving(
    server: RunningServer, moto: MotoServer, pricing: PricingEmulator, tmp_path: Path
) -> None:
    api = Api(server.url, TOKEN)
    eid = create_experiment(api, "stopping-status")
    [instance] = launch(moto, eid, 1)
    for failed, metadata in CASES[1][1]:
        body: dict[str, Any] = {"failed": True} if failed else {"values": [{"value": 0.5}]}
        observe(api, eid, instance, metadata, **body)
    env = {
        **moto.env,
        "AWS_ENDPOINT_URL_PRICING": pricing.url,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SIGOPT_API_URL": server.url,
        "SIGOPT_API_TOKEN": TOKEN,
    }
    result = run_cli("status", "--experiment", eid, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.json()["cost"]["stopping"] == expected_json(CASES[1][2])
    text = run_cli("status", "--experiment", eid, env=env)
    assert text.returncode == 0, text.stderr
    assert (
        "stopped early: 2 runs spent $1.7000 (17 instance-seconds); estimated saving $0.8000 "
        "(8 instance-seconds) against the median of 3 full-length runs ($1.2000 each)"
    ) in " ".join(text.stdout.split())  # rich wraps long lines
