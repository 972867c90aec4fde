"""The example objective obeys the agent's evaluation contract (run as a real process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import wait_until

OBJECTIVE = Path(__file__).resolve().parents[2] / "examples" / "hartmann6.py"
OPTIMUM = {
    "x1": 0.20169,
    "x2": 0.150011,
    "x3": 0.476874,
    "x4": 0.275332,
    "x5": 0.311652,
    "x6": 0.6573,
}


def contract_env(
    tmp_path: Path, assignments: dict[str, float], seconds: float = 0.05
) -> dict[str, str]:
    checkpoints = tmp_path / "checkpoint"
    checkpoints.mkdir(exist_ok=True)
    return {
        **os.environ,
        "OPTFLEET_SUGGESTION_ID": "17",
        "OPTFLEET_ASSIGNMENTS": json.dumps(assignments),
        "OPTFLEET_RESULT_FILE": str(tmp_path / "result.json"),
        "OPTFLEET_CHECKPOINT_DIR": str(checkpoints),
        "OPTFLEET_RESUMED": "0",
        "OPTFLEET_ATTEMPT": "1",
        "HARTMANN6_SECONDS": str(seconds),
        "HARTMANN6_STEPS": "10",
    }


def run_objective(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(OBJECTIVE)], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_known_optimum_gives_the_published_minimum(tmp_path: Path) -> None:
    done = run_objective(contract_env(tmp_path, OPTIMUM))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["value"] == pytest.approx(-3.32237, abs=1e-4)
    assert result["metadata"] == {"steps": 10, "resumed_from_step": 0}


def test_each_step_appends_a_progress_line_ending_at_the_result(tmp_path: Path) -> None:
    env = {**contract_env(tmp_path, OPTIMUM), "OPTFLEET_PROGRESS_FILE": str(tmp_path / "p.jsonl")}
    done = run_objective(env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, 11))
    values = [line["value"] for line in lines]
    assert values == sorted(values, reverse=True)  # minimized: better at every step
    result = json.loads((tmp_path / "result.json").read_text())
    assert values[-1] == pytest.approx(result["value"])


def test_the_diverging_region_reports_a_failure_with_its_reason(tmp_path: Path) -> None:
    done = run_objective(contract_env(tmp_path, {**OPTIMUM, "x1": 0.9, "x2": 0.8}))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["failed"] is True
    assert "diverged" in result["reason"] and "x1 + x2 = 1.700 > 1.4" in result["reason"]


def test_a_restart_continues_from_the_checkpoint(tmp_path: Path) -> None:
    env = contract_env(tmp_path, OPTIMUM)
    checkpoint = Path(env["OPTFLEET_CHECKPOINT_DIR"]) / "hartmann6-checkpoint.json"
    checkpoint.write_text(json.dumps({"step": 6, "steps": 10, "suggestion_id": "17"}))
    done = run_objective(env)
    assert done.returncode == 0, done.stderr
    assert "resuming from checkpoint at step 6/10" in done.stderr
    assert json.loads((tmp_path / "result.json").read_text())["metadata"]["resumed_from_step"] == 6


def test_sigterm_saves_the_checkpoint_and_writes_no_result(tmp_path: Path) -> None:
    env = contract_env(tmp_path, OPTIMUM, seconds=30)
    checkpoint = Path(env["OPTFLEET_CHECKPOINT_DIR"]) / "hartmann6-checkpoint.json"
    proc = subprocess.Popen(
        [sys.executable, str(OBJECTIVE)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(checkpoint.exists, timeout_s=30, what="first checkpoint")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "checkpoint saved" in stderr
    saved = json.loads(checkpoint.read_text())
    assert saved["suggestion_id"] == "17" and saved["step"] >= 1
    assert not (tmp_path / "result.json").exists()


def test_bad_assignments_are_rejected_naming_the_parameter(tmp_path: Path) -> None:
    missing = run_objective(contract_env(tmp_path, {"x1": 0.5}))
    assert missing.returncode != 0
    assert "missing parameter 'x2'" in missing.stderr
    outside = run_objective(contract_env(tmp_path, {**OPTIMUM, "x3": 1.5}))
    assert outside.returncode != 0
    assert "x3=1.5 is outside [0, 1]" in outside.stderr
