"""Shared helpers for benchmark scripts: percentiles, machine description, report sections.

Each script owns one section of docs/benchmarks.md delimited by
``<!-- section: NAME -->`` ... ``<!-- end: NAME -->`` and rewrites only that block.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import importlib.metadata
import os
import platform
import shlex
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPORT = REPO / "docs" / "benchmarks.md"
_TITLE = (
    "# Benchmarks\n\n"
    "Measured by the scripts in `benchmarks/`; each section is rewritten by its script.\n"
)


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


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_description(packages: Sequence[str] = ()) -> str:
    """Markdown lines: date, command, cores, CPU, Python and package versions."""
    # orig_argv keeps "-m module" as typed; paths inside the repo are shown relative to it.
    argv = [
        os.path.relpath(arg, REPO) if arg.startswith(str(REPO)) else arg
        for arg in getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    ]
    command = " ".join(shlex.quote(arg) for arg in argv)
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"- Date: {now}; load average at start {load} (the machine is shared)",
            f"- Command: `{command}`",
            f"- Machine: {os.cpu_count()} cores (nproc), {cpu_model()}, "
            f"{platform.system()} {platform.release()}",
            f"- Python {platform.python_version()}; {versions}",
        ]
    )


def write_section(name: str, body: str, report: Path = REPORT) -> None:
    """Replace (or append) the ``name`` section of the report with ``body``.

    A lock file serializes concurrent writers, so two scripts never lose each other's section.
    """
    start, end = f"<!-- section: {name} -->", f"<!-- end: {name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    report.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "optfleet-benchmarks.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = report.read_text() if report.exists() else _TITLE
        if start in text and end in text:
            before, rest = text.split(start, 1)
            _, after = rest.split(end, 1)
            text = before + block + after
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        report.write_text(text)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
