"""Shared helpers for benchmark scripts: percentiles, the provenance header, report sections.

Each script owns one section of docs/benchmarks.md delimited by
``<!-- section: NAME -->`` ... ``<!-- end: NAME -->`` and rewrites only that block. A script
that cannot run on this machine (a missing optional dependency, no root, no PostgreSQL) leaves
its section as last measured: ``keep_unavailable_section``.
"""

from __future__ import annotations

import fcntl
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks._provenance import REPO, command_line, provenance_header

REPORT = REPO / "docs" / "benchmarks.md"
_TITLE = (
    "# Benchmarks\n\n"
    "Measured by the scripts in `benchmarks/`; each section is rewritten by its script.\n"
)
# Exit status of a script that could not run here and left its section alone (automake's
# "skipped"): benchmarks.run_all reports it as unavailable, not as a failure.
UNAVAILABLE = 77


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; samples need not be sorted."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    """The 50th percentile."""
    return statistics.median(samples)


def machine_description(packages: Sequence[str] = ()) -> str:
    """The header every section starts with: date, commit, command, machine, versions."""
    return provenance_header(packages)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- section: {name} -->", f"<!-- end: {name} -->"


def section_body(text: str, name: str) -> str | None:
    """The body of section ``name`` in the report's ``text``, or None when it has none."""
    start, end = _markers(name)
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def _edit_report(report: Path, edit: Callable[[str], str]) -> None:
    """Rewrite the report with ``edit(text)`` under a lock file, so that two scripts never
    lose each other's section."""
    report.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "optfleet-benchmarks.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = report.read_text() if report.exists() else _TITLE
        edited = edit(text)
        if not report.exists() or edited != text:
            report.write_text(edited)


def _with_section(text: str, name: str, body: str) -> str:
    start, end = _markers(name)
    block = f"{start}\n{body.rstrip()}\n{end}"
    if section_body(text, name) is None:
        return text.rstrip() + "\n\n" + block + "\n"
    before, rest = text.split(start, 1)
    return before + block + rest.split(end, 1)[1]


def write_section(name: str, body: str, report: Path = REPORT) -> None:
    """Replace (or append) the ``name`` section of the report with ``body``."""
    _edit_report(report, lambda text: _with_section(text, name, body))


def keep_unavailable_section(
    name: str,
    title: str,
    missing: Sequence[str],
    *,
    report: Path = REPORT,
    write: bool = True,
) -> int:
    """This machine lacks ``missing``: leave section ``name`` as it was last measured.

    Only when the report has no such section yet (and ``write``), a short one is added that
    names what is missing and the command to run. Says so on stderr; returns ``UNAVAILABLE``
    for the script to exit with.
    """
    lacking = "; ".join(missing)
    command = command_line()
    placeholder = "\n".join(
        [
            f"## {title}",
            "",
            provenance_header(),
            f"- Not measured yet: the machine above lacks {lacking}. Run the command above "
            "where it is available.",
        ]
    )
    outcome = ["not written (--no-write)"]

    def keep(text: str) -> str:
        if section_body(text, name) is not None:
            outcome[0] = "left as it was"
            return text
        outcome[0] = "added, saying what is missing"
        return _with_section(text, name, placeholder)

    if write:
        _edit_report(report, keep)
    try:
        shown = report.resolve().relative_to(REPO)
    except ValueError:
        shown = report
    print(
        f"This benchmark cannot run here: missing {lacking}.\n"
        f"Section {name!r} of {shown}: {outcome[0]}. "
        f"Run where it is available: {command}",
        file=sys.stderr,
        flush=True,
    )
    return UNAVAILABLE


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
