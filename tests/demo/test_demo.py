"""`optfleet demo --short --json`: the local fleet, checked against the server it leaves running.

The demo's own summary is asserted, and then checked independently with the official `sigopt`
client against the server kept alive by ``--keep-server``: exactly one observation per suggestion,
nothing open, every observation stamped with an instance that existed in the demo.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sigopt import Connection

from suggestion_server.domain.stopping_savings import stopping_savings
from tests.cli.conftest import REPO


@pytest.fixture(scope="module")
def demo_run() -> Iterator[dict[str, Any]]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SIGOPT_", "OPTFLEET_", "AWS_"))
    }
    completed = subprocess.run(
        [sys.executable, "-m", "optfleet.cli", "demo", "--short", "--json", "--keep-server"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=240,
    )
    summary: dict[str, Any] = {}
    try:
        summary = json.loads(completed.stdout)
    except ValueError:
        pytest.fail(
            f"no JSON summary (exit {completed.returncode}):\n{completed.stdout[-2000:]}\n"
            f"{completed.stderr[-4000:]}"
        )
    try:
        yield {"summary": summary, "returncode": completed.returncode, "stderr": completed.stderr}
    finally:
        kept = summary.get("server") or {}
        if kept.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(kept["pid"]), signal.SIGTERM)
        if kept.get("log"):
            shutil.rmtree(Path(kept["log"]).parent, ignore_errors=True)


def test_short_demo_resumes_adopts_and_leaves_nothing_open(demo_run: dict[str, Any]) -> None:
    summary = demo_run["summary"]
    assert demo_run["returncode"] == 0, demo_run["stderr"][-4000:]
    assert summary["timed_out"] is False
    assert summary["resumed"] >= 1
    assert summary["adopted"] >= 1
    assert summary["duplicates"] == 0
    assert summary["open_left"] == 0
    assert summary["observations"] >= 12
    assert {i["kind"]: i["verified"] for i in summary["injections"]} == {
        "reboot": True,
        "termination": True,
        "spot-interruption": True,
    }
    for failure in summary["failures"]:
        assert failure["reason"] and failure["reason"] != "(no reason recorded)"
    assert set(summary) >= {
        "observations",
        "failed",
        "resumed",
        "adopted",
        "duplicates",
        "open_left",
        "wall_s",
        "best",
    }
    assert summary["best"]["assignments"].keys() == {"x1", "x2", "x3", "x4", "x5", "x6"}


def test_the_server_agrees_with_the_summary(demo_run: dict[str, Any]) -> None:
    summary = demo_run["summary"]
    server = summary["server"]
    conn = Connection(client_token=server["token"])
    conn.set_api_url(server["url"])
    experiment = conn.experiments(summary["experiment_id"])
    observations = list(experiment.observations().fetch().iterate_pages())
    existed = {i["instance_id"] for i in summary["instances"]}

    assert len(observations) == summary["observations"]
    assert {o.metadata["instance_id"] for o in observations} <= existed
    per_suggestion = Counter(o.suggestion for o in observations)
    assert max(per_suggestion.values()) == 1
    assert experiment.suggestions().fetch(state="open", limit=0).count == 0
    for observation in observations:
        if observation.failed:
            assert observation.metadata.get("failure_reason")
    adopted = [o for o in observations if o.metadata.get("adopted_by")]
    assert len(adopted) == summary["adopted"]
    # Runs the example's training_monitor (ASHA at step 5) stopped early: reported once each,
    # with the step and the server's reason.
    stopped = [o for o in observations if o.metadata.get("stopped_early")]
    assert len(stopped) == summary["stopped_early"]
    for observation in stopped:
        assert observation.metadata["stopped_at_step"] == 5
        assert observation.metadata["stopping_reason"] == "asha_rung_5"
        assert not observation.failed
    # What they spent and saved (issue 21): the summary's figures are the server's function over
    # the observations the server holds, and every observation of the demo is priced.
    stopping = summary["cost"]["stopping"]
    pairs = [(bool(o.failed), dict(o.metadata or {})) for o in observations]
    assert stopping == stopping_savings(pairs).as_json()
    assert stopping["stopped"] == summary["stopped_early"]
    assert stopping["unknown_cost"] == 0
    if stopping["stopped"]:
        assert stopping["spent"]["usd"] > 0
    if stopping["stopped"] and stopping["full_length"]:
        assert stopping["estimated_saving"]["usd"] is not None and stopping["note"] == ""
    for observation in adopted:
        previous = str(observation.metadata["previous_instance_ids"]).split(",")
        assert set(previous) <= existed
        assert observation.metadata["adopted_by"] in existed
    # The terminated and the interrupted instance never finish the suggestion they were hit
    # during: an adopter does.
    for injection in summary["injections"]:
        if injection["kind"] != "reboot":
            finished = [o for o in observations if o.suggestion == injection["suggestion"]]
            assert len(finished) == 1
            meta = finished[0].metadata
            assert meta["instance_id"] != injection["victim"]
            assert meta["adopted_by"] == meta["instance_id"]
            assert injection["victim"] in str(meta["previous_instance_ids"]).split(",")
    # Every instance the demo terminated never reports after it is gone. Before, it may well
    # have finished (or adopted and finished) other suggestions, even another victim's.
    gone = {g["instance_id"]: set(g["reported_before_gone"]) for g in summary["gone"]}
    assert {i["victim"] for i in summary["injections"] if i["kind"] != "reboot"} <= set(gone)
    for observation in observations:
        reporter = observation.metadata["instance_id"]
        if reporter in gone:
            assert observation.suggestion in gone[reporter], (reporter, observation.suggestion)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "2"], "--workers: expected 3 to 32"),
        (["--workers", "4", "--evaluations", "5"], "--evaluations: expected at least 8"),
        (["--eval-seconds", "0"], "--eval-seconds: expected 0.2 to 600 seconds, got 0"),
        (["--timeout", "-1"], "--timeout: expected a positive number of seconds"),
    ],
)
def test_bad_flags_are_clear_errors_before_anything_starts(flags: list[str], message: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "optfleet.cli", "demo", *flags],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
