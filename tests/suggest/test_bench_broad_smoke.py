"""The broad benchmark's ``--quick`` mode runs end to end (skipped without its packages)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("cocoex", reason="coco-experiment: make bench-quality-deps")
pytest.importorskip("sklearn")

from benchmarks import bench_broad
from benchmarks.broad_fleet import near, scaled
from benchmarks.broad_problems import PROBLEMS, instance_index
from suggestion_server.optimizer.api import ParameterSpec


def test_quick_mode_writes_one_file_per_run_and_its_section(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    results = tmp_path / "runs"
    argv = ["--quick", "--jobs", "1", "--results", str(results), "--out", str(report)]
    assert bench_broad.main(argv) == 0

    files = sorted(results.rglob("*.json"))
    # 4 problems x 3 methods x 2 seeds
    assert len(files) == 24
    run = json.loads(files[0].read_text())
    assert run["commit"] and run["split"] == "dev"
    assert len(run["true_values"]) == run["budget"]
    text = report.read_text()
    assert "<!-- section: broad-dev-quick -->" in text
    assert "Near-duplicates" in text and "COCO-style aggregate" in text

    # Resumed: nothing runs again; files of another commit are refused.
    assert bench_broad.main([*argv, "--report-only"]) == 0
    run["commit"] = "0000000"
    files[0].write_text(json.dumps(run))
    with pytest.raises(SystemExit, match="different commits"):
        bench_broad.main(argv)


def test_splits_never_share_an_instance() -> None:
    dev = {instance_index("dev", s) for s in range(40)}
    test = {instance_index("test", s) for s in range(40)}
    assert not dev & test and len(test) == 10
    for problem in PROBLEMS.values():
        if problem.group == "real":
            assert len(problem.splits) == 1


def test_near_duplicates_are_within_a_thousandth_of_the_range() -> None:
    key = scaled(
        (
            ParameterSpec(name="x", type="double", low=0.0, high=10.0),
            ParameterSpec(name="lr", type="double", low=1e-4, high=1.0, log=True),
            ParameterSpec(name="c", type="categorical", categories=("a", "b")),
        )
    )
    base = key({"x": 5.0, "lr": 1e-2, "c": "a"})
    assert near(base, key({"x": 5.009, "lr": 1e-2 * 1.009, "c": "a"}))
    assert not near(base, key({"x": 5.011, "lr": 1e-2, "c": "a"}))
    assert not near(base, key({"x": 5.0, "lr": 1e-2, "c": "b"}))


def test_paired_outcomes_and_first_or_tied() -> None:
    from benchmarks.broad_report import Cell, first_or_tied, paired

    def cell(values: list[float]) -> Cell:
        ordered = sorted(values)
        return Cell(ordered[len(values) // 2], ordered[2], ordered[-3], dict(enumerate(values)))

    low = cell([0.01 * (1 + s) for s in range(10)])
    high = cell([0.1 * (1 + s) for s in range(10)])
    assert paired(low, high)[0] == "win"
    assert paired(high, low)[0] == "loss"
    assert paired(low, low) == ("tie", 1.0)
    mixed = cell([0.01 * (1 + s) if s % 2 else 0.1 * (1 + s) for s in range(10)])
    assert paired(mixed, high)[0] == "tie"  # better on half the seeds only
    table = {("p", "optfleet", 8, "10d"): high, ("p", "gp", 8, "10d"): low}
    assert first_or_tied(table, "p", 8, "10d", "optfleet", ["optfleet", "gp"]) == (False, "gp")
    table["p", "gp", 8, "10d"] = mixed
    assert first_or_tied(table, "p", 8, "10d", "optfleet", ["optfleet", "gp"])[0]
