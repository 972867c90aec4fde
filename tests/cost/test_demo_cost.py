"""`optfleet demo --max-cost`: every observation carries its cost and the cap drains the fleet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_stops_on_the_cap_and_prices_every_observation(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "optfleet.cli", "demo", "--short", "--json", "--max-cost", "0.15"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    summary = json.loads(completed.stdout)
    cost = summary["cost"]
    assert cost["prices"].startswith("prices are simulated")
    # The short demo's three instances cost about 0.025 USD/s (simulated): its budget of 12
    # evaluations of 2 s cannot be done for less than 0.19 USD, so the cap comes first.
    assert cost["max_cost_usd"] == 0.15 and cost["stopped_by_cap"] is True
    assert set(summary["stop_reasons"]) == {"cost_cap_reached"}
    assert summary["observations"] < 12
    assert summary["open_left"] == 0 and summary["duplicates"] == 0
    assert len(cost["observations"]) == summary["observations"]
    assert all(row["cost_usd"] > 0 for row in cost["observations"])
    assert cost["fleet"]["usd"] >= 0.15
    assert cost["evaluating"]["usd"] is not None
