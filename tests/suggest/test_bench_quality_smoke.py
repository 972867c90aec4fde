"""The quality benchmark's harness keeps its protocol (no torch, cmaes or scikit-learn needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench_quality
from benchmarks.quality_fleet import FleetRun, run_fleet, same_point
from benchmarks.quality_methods import METHODS
from benchmarks.quality_problems import PROBLEMS, Problem
from suggestion_server.optimizer.api import AssignmentValue

BUDGET = 12
WORKERS = 8


class Recording:
    """Wraps an optimizer and checks the open set on every ask and tell."""

    def __init__(self, problem: Problem, method: str) -> None:
        self.inner = METHODS[method].make(problem, 0)
        self.open: dict[int, dict[str, AssignmentValue]] = {}
        self.max_open = 0
        self.duplicates = 0
        self.tells = 0

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]:
        handle, assignments = self.inner.ask()
        assert handle not in self.open
        self.duplicates += any(same_point(assignments, a) for a in self.open.values())
        self.open[handle] = assignments
        self.max_open = max(self.max_open, len(self.open))
        return handle, assignments

    def tell(self, handle: int, value: float) -> None:
        del self.open[handle]
        self.tells += 1
        self.inner.tell(handle, value)


@pytest.mark.parametrize("method", ["random", "optfleet"])
def test_fleet_protocol(method: str) -> None:
    problem = PROBLEMS["branin"]
    optimizer = Recording(problem, method)
    run: FleetRun = run_fleet(problem, optimizer, seed=0, budget=BUDGET, workers=WORKERS)

    assert optimizer.max_open == run.max_open == WORKERS
    assert optimizer.tells == len(run.values) == run.asks == BUDGET
    assert not optimizer.open
    assert optimizer.duplicates == run.duplicate_open == 0
    best = run.best_so_far()
    assert all(later <= earlier for earlier, later in zip(best, best[1:]))
    assert min(run.values) >= problem.optimum  # type: ignore[operator]


def test_cli_writes_its_section(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\n<!-- section: quality -->\nold\n<!-- end: quality -->\n")
    raw = tmp_path / "runs.json"
    argv = ["--seeds", "1", "--problems", "branin", "--methods", "random,optfleet"]
    argv += ["--budget", str(BUDGET), "--jobs", "1", "--out", str(report), "--json", str(raw)]
    assert bench_quality.main(argv) == 0

    text = report.read_text()
    assert "old" not in text
    assert text.count("<!-- section: quality -->") == 1
    assert "Branin (2-D)" in text
    assert "optfleet engine (8 workers)" in text
    assert raw.exists()


def test_missing_dependency_is_reported_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_quality, "missing_packages", lambda needs: list(needs))
    reasons = bench_quality.not_run_reasons(["branin"], ["random", "gp"])
    assert reasons == {("branin", "gp"): "not run (missing torch, scipy)"}


def test_http_mode_drives_a_real_server(tmp_path: Path) -> None:
    raw = tmp_path / "runs.jsonl"
    argv = ["--seeds", "1", "--problems", "branin", "--methods", "optfleet", "--http"]
    argv += ["--budget", str(BUDGET), "--jobs", "1", "--no-write", "--json", str(raw)]
    assert bench_quality.main(argv) == 0

    runs = {r.method: r for r in bench_quality.load_runs(raw)}
    assert set(runs) == {"optfleet", "optfleet_http"}
    http = runs["optfleet_http"]
    assert len(http.values) == BUDGET
    assert http.max_open == WORKERS
    assert http.duplicate_open == 0
