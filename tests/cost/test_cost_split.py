"""One table of cost-split cases, run against every way the split is reached: the server's pure
function, the experiment page's payload (metadata as the stored JSON text) and the CLI's
``experiment_cost`` (`optfleet status`, the demo). They must all say the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from optfleet.cost.experiment_cost import experiment_cost
from suggestion_server.domain.cost_split import cost_split
from suggestion_server.http.web.page_cost import page_cost

UNKNOWN = None
# (case, failed, metadata, expected): each expected part is (seconds, usd); "unknown" counts the
# successful observations whose earlier attempts have seconds but no recorded cost.
CASES: list[tuple[str, bool, dict[str, Any], dict[str, Any]]] = [
    (
        "one attempt",
        False,
        {"instance_seconds": 10, "earlier_attempts_seconds": 0, "cost_usd": 1.0,
         "earlier_attempts_cost_usd": 0.0},
        {"evaluating": (10, 1.0), "failed": (0, 0.0), "earlier": (0, 0.0), "total": (10, 1.0),
         "unknown": 0},
    ),
    (
        "earlier attempts priced",
        False,
        {"instance_seconds": 10, "earlier_attempts_seconds": 4, "cost_usd": 10.0,
         "earlier_attempts_cost_usd": 4.0},
        {"evaluating": (6, 6.0), "failed": (0, 0.0), "earlier": (4, 4.0), "total": (10, 10.0),
         "unknown": 0},
    ),
    (
        "failed: every attempt wasted",
        True,
        {"instance_seconds": 3, "earlier_attempts_seconds": 1, "cost_usd": 3.0,
         "earlier_attempts_cost_usd": 1.0},
        {"evaluating": (0, 0.0), "failed": (3, 3.0), "earlier": (0, 0.0), "total": (3, 3.0),
         "unknown": 0},
    ),
    (
        "price unknown",
        False,
        {"instance_seconds": 2, "cost_unknown_reason": "no price"},
        {"evaluating": (2, UNKNOWN), "failed": (0, 0.0), "earlier": (0, 0.0),
         "total": (2, UNKNOWN), "unknown": 0},
    ),
    (
        # Where the page (0) and the CLI (unknown) used to disagree.
        "earlier attempts without a cost, total known",
        False,
        {"instance_seconds": 10, "earlier_attempts_seconds": 4, "cost_usd": 10.0},
        {"evaluating": (6, UNKNOWN), "failed": (0, 0.0), "earlier": (4, UNKNOWN),
         "total": (10, 10.0), "unknown": 1},
    ),
    (
        "earlier attempts without a cost, total unknown",
        False,
        {"instance_seconds": 10, "earlier_attempts_seconds": 4},
        {"evaluating": (6, UNKNOWN), "failed": (0, 0.0), "earlier": (4, UNKNOWN),
         "total": (10, UNKNOWN), "unknown": 1},
    ),
    (
        # Where the CLI (unknown) and the page (cost_usd) used to disagree: cost_usd covers it.
        "failed, earlier attempts without a cost",
        True,
        {"instance_seconds": 5, "earlier_attempts_seconds": 2, "cost_usd": 5.0},
        {"evaluating": (0, 0.0), "failed": (5, 5.0), "earlier": (0, 0.0), "total": (5, 5.0),
         "unknown": 0},
    ),
    (
        "no cost keys at all",
        False,
        {"instance_id": "i-0bythehand"},
        {"evaluating": (0, UNKNOWN), "failed": (0, 0.0), "earlier": (0, 0.0),
         "total": (0, UNKNOWN), "unknown": 0},
    ),
    (
        "numbers as strings",
        False,
        {"instance_seconds": "10", "cost_usd": "0.5"},
        {"evaluating": (10, 0.5), "failed": (0, 0.0), "earlier": (0, 0.0), "total": (10, 0.5),
         "unknown": 0},
    ),
    (
        "not a finite number",
        False,
        {"instance_seconds": 10, "cost_usd": "inf"},
        {"evaluating": (10, UNKNOWN), "failed": (0, 0.0), "earlier": (0, 0.0),
         "total": (10, UNKNOWN), "unknown": 0},
    ),
]  # fmt: skip


def part(seconds: float, usd: float | None) -> dict[str, float | None]:
    return {"seconds": float(seconds), "usd": usd}


def expected_split(expected: dict[str, Any]) -> dict[str, Any]:
    return {
        "evaluating": part(*expected["evaluating"]),
        "failed": part(*expected["failed"]),
        "earlier_attempts": part(*expected["earlier"]),
        "total": part(*expected["total"]),
        "unknown_attempts": expected["unknown"],
    }


def observation(failed: bool, metadata: dict[str, Any], n: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"id": str(n), "suggestion": str(n), "created": n, "failed": failed}
    return {**body, "metadata": metadata, "values": [] if failed else [{"value": 1.0}]}


@pytest.mark.parametrize(
    ("case", "failed", "metadata", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_the_split_is_one_rule_for_the_server_the_page_and_the_cli(
    case: str, failed: bool, metadata: dict[str, Any], expected: dict[str, Any]
) -> None:
    want = expected_split(expected)
    server = cost_split([(failed, metadata)]).as_json()
    assert {key: server[key] for key in want} == want
    page = page_cost([(failed, json.dumps(metadata))])
    assert {key: page[key] for key in want} == want
    assert page["cumulative_usd"] == [want["total"]["usd"]]
    cli = experiment_cost(None, [observation(failed, metadata)], [], {}).as_json()
    assert cli["evaluating"] == want["evaluating"]
    assert cli["wasted"]["failed"] == want["failed"]
    assert cli["wasted"]["interrupted"] == want["earlier_attempts"]
    assert cli["wasted"]["unknown_attempts"] == want["unknown_attempts"]


def test_sums_running_total_and_counts_over_a_whole_experiment() -> None:
    oldest_first = [(failed, metadata) for _, failed, metadata, _ in CASES[:3]]
    split = cost_split(oldest_first)
    assert split.total.as_json() == part(23, 14.0)
    assert split.wasted.as_json() == part(7, 7.0)  # failed 3 + earlier attempts 4
    assert split.cumulative_usd == [1.0, 11.0, 14.0]
    assert split.priced == 3
    with_gap = cost_split([*oldest_first, (False, CASES[4][2]), (False, {"cost_usd": 1.0})])
    assert with_gap.cumulative_usd == [1.0, 11.0, 14.0, 24.0, 25.0]
    assert with_gap.earlier_attempts.usd is None and with_gap.unknown_attempts == 1
    page = page_cost([(failed, json.dumps(meta)) for failed, meta in reversed(oldest_first)])
    assert page["cumulative_usd"] == [1.0, 11.0, 14.0]  # given newest first, as the rows come
    assert page["metadata_key"] == "cost_usd"
    cli = experiment_cost(
        None, [observation(f, m, n) for n, (f, m) in enumerate(oldest_first, 1)], [], {}
    )
    assert [o.cumulative_usd for o in cli.observations] == split.cumulative_usd


def test_the_page_skips_metadata_without_cost_keys() -> None:
    page = page_cost([(False, '{"instance_id": "i-0a"}'), (False, None)])
    assert page["priced"] == 0 and page["total"] == part(0, None)
    assert page["cumulative_usd"] == [None, None]
