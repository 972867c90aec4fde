"""A benchmark that cannot run here leaves its section as last measured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import bench_quality
from benchmarks._report import UNAVAILABLE, keep_unavailable_section, section_body

MEASURED = "## Quality\n\n- Commit: `abc1234`\n\n| method | score |\n|---|---|\n| optfleet | 83 |"
OTHER = "<!-- section: other -->\nother text\n<!-- end: other -->\n"


def report_with(tmp_path: Path, *sections: tuple[str, str]) -> Path:
    report = tmp_path / "benchmarks.md"
    blocks = [
        f"<!-- section: {name} -->\n{body}\n<!-- end: {name} -->\n" for name, body in sections
    ]
    report.write_text("# Benchmarks\n\n" + "\n".join(blocks))
    return report


def test_an_existing_section_keeps_its_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = report_with(tmp_path, ("quality", MEASURED), ("other", "other text"))
    before = report.read_text()

    status = keep_unavailable_section("quality", "Quality", ["torch (install it)"], report=report)

    assert status == UNAVAILABLE
    assert report.read_text() == before
    err = capsys.readouterr().err
    assert "missing torch (install it)" in err
    assert "'quality'" in err and "left as it was" in err
    assert "Run where it is available: " in err


def test_a_missing_section_says_what_is_missing_and_what_to_run(tmp_path: Path) -> None:
    report = report_with(tmp_path, ("other", "other text"))

    keep_unavailable_section("twin", "Instance twin", ["root"], report=report)

    text = report.read_text()
    assert section_body(text, "other") == "other text"
    body = section_body(text, "twin")
    assert body is not None
    assert body.startswith("## Instance twin\n")
    assert "- Commit: `" in body and "- Command: `" in body
    assert "Not measured yet: the machine above lacks root." in body
    assert "not run" not in body


def test_without_writing_the_report_is_not_touched(tmp_path: Path) -> None:
    report = report_with(tmp_path, ("other", "other text"))
    before = report.read_text()

    assert keep_unavailable_section("twin", "Twin", ["root"], report=report, write=False) == 77
    assert report.read_text() == before


def test_quality_without_optional_packages_keeps_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_quality, "missing_packages", lambda needs: list(needs))
    report = report_with(tmp_path, ("quality", MEASURED))
    before = report.read_text()
    argv = ["--seeds", "1", "--problems", "branin", "--methods", "random,gp", "--budget", "8"]

    assert bench_quality.main([*argv, "--jobs", "1", "--out", str(report)]) == UNAVAILABLE

    assert report.read_text() == before
    assert "scipy, torch (`make bench-quality-deps` installs them)" in capsys.readouterr().err


def test_load_without_postgres_runs_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import bench_load

    monkeypatch.setattr(bench_load, "missing_postgres", lambda: ["PostgreSQL (initdb)"])
    monkeypatch.setattr(sys, "argv", ["bench_load", "--no-report"])

    assert bench_load.main() == UNAVAILABLE
    assert "missing PostgreSQL (initdb)" in capsys.readouterr().err
