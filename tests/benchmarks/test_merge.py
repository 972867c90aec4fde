"""Merging saved benchmark results refuses results of different commits unless forced."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks import bench_quality
from benchmarks._provenance import (
    NOT_RECORDED,
    MixedCommitsError,
    current_commit,
    describe_commits,
    merged_commits,
)
from benchmarks._report import section_body
from benchmarks.quality_report import RunRecord

FLAG = "--allow-mixed-commits"
BUDGET = 8


def test_results_of_one_commit_merge() -> None:
    tally = merged_commits(
        [("abc1234", "a.jsonl"), ("abc1234", "b.jsonl")], allow_mixed=False, flag=FLAG
    )
    assert describe_commits(tally) == "`abc1234` (1 result from a.jsonl, 1 result from b.jsonl)"


def test_results_of_two_commits_do_not_merge() -> None:
    results = [("abc1234", "a.jsonl"), ("def5678", "b.jsonl")]
    with pytest.raises(MixedCommitsError) as refused:
        merged_commits(results, allow_mixed=False, flag=FLAG)
    message = str(refused.value)
    for part in ("abc1234", "def5678", "a.jsonl", "b.jsonl", FLAG):
        assert part in message


def test_results_without_a_commit_do_not_merge_unless_forced() -> None:
    with pytest.raises(MixedCommitsError, match="without a recorded commit"):
        merged_commits([("", "old.jsonl")], allow_mixed=False, flag=FLAG)
    tally = merged_commits([("", "old.jsonl"), ("abc1234", "new")], allow_mixed=True, flag=FLAG)
    assert set(tally) == {NOT_RECORDED, "abc1234"}


def save_runs(path: Path, commits: list[str]) -> None:
    """One random-search run on Branin per seed, recorded at the given commits."""
    values = [float(10 - n) for n in range(BUDGET)]
    records = [
        RunRecord("branin", "random", seed, 8, values, 8, 0, 0.1, 0.1, commit)
        for seed, commit in enumerate(commits)
    ]
    path.write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))


def quality_argv(seeds: int, runs: Path, *extra: str) -> list[str]:
    argv = ["--seeds", str(seeds), "--problems", "branin", "--methods", "random"]
    return [*argv, "--budget", str(BUDGET), "--jobs", "1", "--json", str(runs), *extra]


def test_report_only_refuses_runs_of_two_commits(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    save_runs(runs, ["abc1234", "def5678"])

    with pytest.raises(SystemExit) as refused:
        bench_quality.main(quality_argv(2, runs, "--report-only", "--no-write"))

    message = str(refused.value.code)
    assert "abc1234" in message and "def5678" in message and str(runs) in message


def test_resume_refuses_runs_of_another_commit(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    save_runs(runs, ["abc1234"])

    with pytest.raises(SystemExit) as refused:
        bench_quality.main(quality_argv(2, runs, "--resume", "--no-write"))

    message = str(refused.value.code)
    assert "abc1234" in message and current_commit().label in message
    assert str(runs) in message and "this invocation" in message
    assert runs.read_text().count("\n") == 1  # nothing was run


def test_forced_merge_lists_every_commit(tmp_path: Path) -> None:
    runs, report = tmp_path / "runs.jsonl", tmp_path / "benchmarks.md"
    save_runs(runs, ["abc1234", ""])

    assert (
        bench_quality.main(quality_argv(2, runs, "--report-only", FLAG, "--out", str(report))) == 0
    )

    body = section_body(report.read_text(), "quality")
    assert body is not None
    assert f"`abc1234` (1 run from {runs})" in body
    assert f"`{NOT_RECORDED}` (1 run from {runs})" in body
    assert f"merged with {FLAG}" in body
