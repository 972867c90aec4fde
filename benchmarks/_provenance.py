"""Where a benchmark figure came from: commit, command line, machine and date.

Every section a benchmark script writes starts with ``provenance_header()``, so each figure in
docs/benchmarks.md can be traced to the code that produced it and re-run. Scripts that merge
results saved by earlier invocations check with ``merged_commits`` that they all come from one
commit.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The code a benchmark measures: uncommitted changes to tracked files here make a run "+dirty".
CODE_DIRS = (
    "suggestion_server",
    "worker_bootstrap",
    "optfleet",
    "infra",
    "benchmarks",
    "emulators",
)
DIRTY = "+dirty"
# The commit of results saved before commits were recorded (and of a tree that is not a checkout).
NOT_RECORDED = "not recorded"
_DIRTY_NAMED = 3  # changed files named in the header; the rest are counted


@dataclass(frozen=True)
class Commit:
    """The checked-out commit and the tracked files under ``CODE_DIRS`` changed since."""

    short: str
    changed: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """E.g. ``f182d35`` or ``f182d35+dirty``: what results record and merges compare."""
        return self.short + (DIRTY if self.changed else "")

    def describe(self) -> str:
        """The label, and which files were changed when the tree is dirty."""
        if not self.changed:
            return f"`{self.label}`"
        named = ", ".join(self.changed[:_DIRTY_NAMED])
        more = len(self.changed) - _DIRTY_NAMED
        return f"`{self.label}` (uncommitted changes to {named}" + (
            f" and {more} more files)" if more > 0 else ")"
        )


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def current_commit(repo: Path = REPO, code_dirs: Sequence[str] = CODE_DIRS) -> Commit:
    """``git rev-parse --short HEAD`` and the tracked files under ``code_dirs`` changed since."""
    head = _git(repo, "rev-parse", "--short", "HEAD")
    if head is None:
        return Commit(NOT_RECORDED)
    status = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", *code_dirs) or ""
    # "XY path" or "R  old -> new": the path as it is now.
    changed = tuple(line[3:].split(" -> ")[-1] for line in status.splitlines() if line.strip())
    return Commit(head.strip(), changed)


def command_line(argv: Sequence[str] | None = None, repo: Path = REPO) -> str:
    """The command as typed (``-m module`` kept), paths inside the repository made relative."""
    if argv is None:
        argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    shown = [os.path.relpath(arg, repo) if arg.startswith(str(repo)) else arg for arg in argv]
    return " ".join(shlex.quote(arg) for arg in shown)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    """Total memory in GiB (MemTotal of /proc/meminfo, else the physical pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def machine() -> str:
    """E.g. "2 cores (nproc), 7.8 GiB memory, AMD EPYC 7R13 Processor, Linux 6.18.44"."""
    return (
        f"{os.cpu_count()} cores (nproc), {memory_gib():.1f} GiB memory, {cpu_model()}, "
        f"{platform.system()} {platform.release()}"
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def provenance_header(
    packages: Sequence[str] = (),
    *,
    repo: Path = REPO,
    argv: Sequence[str] | None = None,
    now: Callable[[], dt.datetime] = _utc_now,
) -> str:
    """Markdown lines: date (UTC), commit, command, machine, Python and package versions."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    python = f"- Python {platform.python_version()}"
    if packages:
        python += "; " + ", ".join(f"{name} {_version(name)}" for name in packages)
    return "\n".join(
        [
            f"- Date: {now():%Y-%m-%d %H:%M} UTC; load average at start {load} "
            "(the machine is shared)",
            f"- Commit: {current_commit(repo).describe()}",
            f"- Command: `{command_line(argv, repo)}`",
            f"- Machine: {machine()}",
            python,
        ]
    )


class MixedCommitsError(ValueError):
    """Results to be merged were recorded at different commits (or without one)."""


CommitTally = dict[str, Counter[str]]  # commit label -> {where the results came from: count}


def tally_commits(results: Iterable[tuple[str, str]]) -> CommitTally:
    """(commit label or "", where) pairs counted by commit, then by where they came from."""
    tally: CommitTally = {}
    for commit, where in results:
        tally.setdefault(commit or NOT_RECORDED, Counter())[where] += 1
    return tally


def describe_commits(tally: CommitTally, unit: str = "results") -> str:
    """E.g. "`f182d35` (40 runs from runs.jsonl), `26ff4e1` (8 runs from this invocation)"."""
    parts = []
    for commit, sources in sorted(tally.items()):
        where = ", ".join(
            f"{count} {unit if count != 1 else unit.removesuffix('s')} from {source}"
            for source, count in sorted(sources.items())
        )
        parts.append(f"`{commit}` ({where})")
    return ", ".join(parts)


def merged_commits(
    results: Iterable[tuple[str, str]], *, allow_mixed: bool, flag: str, unit: str = "results"
) -> CommitTally:
    """The commits of results about to be merged, given as (commit label, where) pairs.

    Raises ``MixedCommitsError`` naming every commit and where its results came from when
    there is more than one, or results without a recorded commit (nothing shows that they come
    from one), unless ``allow_mixed`` (the caller's ``flag`` says so); the caller then records
    ``describe_commits`` of the answer.
    """
    tally = tally_commits(results)
    if allow_mixed or (len(tally) <= 1 and NOT_RECORDED not in tally):
        return tally
    if len(tally) == 1:
        reason = "results without a recorded commit cannot be shown to come from one commit"
    else:
        reason = "refusing to merge results recorded at different commits"
    raise MixedCommitsError(
        f"{reason}: {describe_commits(tally, unit)}. Re-run them at one commit, or pass {flag} "
        "to merge them anyway (the section then lists every commit)."
    )
