"""The header every benchmark section starts with: commit, command, machine and date."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path

from benchmarks._provenance import (
    DIRTY,
    NOT_RECORDED,
    cpu_model,
    current_commit,
    provenance_header,
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def checkout(tmp_path: Path) -> Path:
    """A repository with one commit: a benchmark script and a doc."""
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "bench_x.py").write_text("print('x')\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("notes\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def test_header_names_commit_command_machine_and_date(tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    argv = [str(repo / ".venv/bin/python"), "-m", "benchmarks.bench_x", "--title", "a b"]
    at = dt.datetime(2026, 12, 1, 0, 22, tzinfo=dt.timezone.utc)

    header = provenance_header(["pytest"], repo=repo, argv=argv, now=lambda: at)

    lines = header.splitlines()
    assert lines[0].startswith("- Date: 2026-12-01 00:22 UTC; load average at start ")
    assert lines[1] == f"- Commit: `{git(repo, 'rev-parse', '--short', 'HEAD')}`"
    assert lines[2] == "- Command: `.venv/bin/python -m benchmarks.bench_x --title 'a b'`"
    assert lines[3].startswith("- Machine: ")
    for part in ("cores (nproc)", "GiB memory", cpu_model(), platform.system()):
        assert part in lines[3]
    version = importlib.metadata.version("pytest")
    assert lines[4] == f"- Python {platform.python_version()}; pytest {version}"


def test_dirty_only_for_tracked_code(tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    head = git(repo, "rev-parse", "--short", "HEAD")
    (repo / "docs" / "notes.md").write_text("edited\n")
    (repo / "benchmarks" / "new_untracked.py").write_text("")
    assert current_commit(repo).label == head

    (repo / "benchmarks" / "bench_x.py").write_text("print('y')\n")
    commit = current_commit(repo)
    assert commit.label == head + DIRTY
    assert commit.changed == ("benchmarks/bench_x.py",)
    assert "benchmarks/bench_x.py" in commit.describe()


def test_outside_a_checkout_the_commit_is_not_recorded(tmp_path: Path) -> None:
    assert current_commit(tmp_path).label == NOT_RECORDED
