"""Before/after of a code change in one invocation: each benchmark at both commits, in turn.

For each benchmark, the before commit's own script runs in a clean worktree of that commit, then
the after commit's script in a clean worktree of that one (`git worktree add --detach` in a
temporary folder, removed at the end). Each worktree gets symlinks to this checkout's `.venv`,
`node_modules` and `.stamps` (the same interpreter, packages, pinned CDK CLI, dependency wheels and
twin root file system for both); the script runs there as `.venv/bin/python -m benchmarks.bench_X`
with the worktree as working directory and PYTHONPATH, so that commit's code is imported (checked
before the runs), and writes its section into the worktree's docs/benchmarks.md, read from there.

docs/benchmarks.md then gets the section `before-after-19` (``--section``): the headline figures
of each benchmark side by side (before, after, ratio after/before), with both commits, the
command and the load averages. The after commit's own sections are copied into
docs/benchmarks.md as they came out (their header names the after commit, clean); ``--after-only
SECTION,...`` re-runs more sections at the after commit alone (e.g. load-pace, load-fleet, twin,
with run_all's arguments for them).

    .venv/bin/python -m benchmarks.before_after [--before f182d35] [--after HEAD]
        [--benchmarks demo,fleet_traffic,load,infra] [--after-only load-pace,load-fleet,twin]
        [--section before-after-19] [--title TITLE] [--note TEXT]
        [--after-first] [--no-copy] [--no-write]

``--after-first`` runs each pair in the other order (a second invocation with it shows how much
of a ratio is the machine's load drifting between the two runs); ``--no-copy`` leaves the after
commit's own sections as they are (the before-after section alone is written).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._provenance import REPO, command_line, machine
from benchmarks._report import UNAVAILABLE, markdown_table, section_body, write_section
from benchmarks.run_all import EXTRA_RUNS, SCRIPT_TIMEOUT_S

SECTION = "before-after-19"
TITLE = "Issue 19's re-layout: before and after in one invocation"
# Shared with the worktrees as symlinks: interpreter and packages, CDK CLI, wheels, twin root.
SHARED = (".venv", "node_modules", ".stamps")
PACKAGES = ("suggestion_server", "optfleet", "worker_bootstrap")
PYTHON = ".venv/bin/python"

Table = list[dict[str, str]]
# (measure shown, table column that names the row, the row's name, the column read)
Pick = tuple[str, str, str, str]


@dataclass(frozen=True)
class Bench:
    """One benchmark: its script, arguments, section and headline figures."""

    module: str
    section: str
    args: tuple[str, ...] = ()
    picks: tuple[Pick, ...] = ()


def grid(
    key_column: str, rows: Sequence[tuple[str, str]], columns: Sequence[tuple[str, str]]
) -> tuple[Pick, ...]:
    """Every (row, column) of one table: (row's name, shown) x (column, shown)."""
    return tuple(
        (f"{row_shown}: {column_shown}", key_column, row, column)
        for row, row_shown in rows
        for column, column_shown in columns
    )


def _same(*names: str) -> list[tuple[str, str]]:
    return [(name, name) for name in names]


_NEW, _OLD = "new, our server (filter + stretched)", "old (fixed interval), baseline"
BENCHES: dict[str, Bench] = {
    "demo": Bench(
        "bench_demo",
        "demo",
        picks=grid(
            "command",
            _same("`optfleet demo --short`", "`optfleet demo`"),
            _same("demo wall s", "server start s", "bare wall s", "ratio demo/bare"),
        ),
    ),
    "load": Bench(
        "bench_load",
        "load",
        picks=grid(
            "database",
            _same("sqlite", "postgresql"),
            [
                ("obs/s", "observations/s"),
                *_same("create p50 ms", "create p99 ms", "observe p50 ms", "observe p99 ms"),
                ("baseline req/s", "baseline `/health` req/s"),
                *_same("ratio req/s load/baseline"),
                ("batch %", "suggestions from batch picks %"),
                ("missing", "observations missing (must be 0)"),
                ("open duplicates", "open duplicates (must be 0)"),
            ],
        ),
    ),
    "infra": Bench(
        "bench_infra",
        "infra",
        args=("--repeats", "2"),
        picks=(
            *grid(
                "measure",
                [
                    ("`cdk synth -c experiment_id=42`, warm", "`cdk synth`, warm cache"),
                    ("same, cold cache", "`cdk synth`, cold cache"),
                    *_same("boot script, first run", "boot script, second run"),
                ],
                _same("wall s", "CPU s", "ratio"),
            ),
            ("empty CDK app synth (baseline): wall s", "measure", "`cdk synth", "baseline wall s"),
        ),
    ),
    "fleet_traffic": Bench(
        "bench_fleet_traffic",
        "fleet_traffic",
        picks=(
            *grid(
                "per agent",
                [
                    (row, row.strip("*"))
                    for row in (
                        "**requests/s, all**",
                        "body KB/s",
                        "**server CPU ms/s**",
                        "evaluations/s",
                        "server CPU ms per evaluation",
                        "requests per evaluation",
                    )
                ],
                [
                    (_NEW, "new cadence, our server"),
                    (_OLD, "old cadence (baseline)"),
                    ("ratio new, our server / old", "ratio new/old"),
                ],
            ),
            *grid(
                "request (1,000 open suggestions)",
                _same("orphan scan, full list (page)", "create suggestion", "create observation"),
                [("server CPU ms", "server CPU ms per request")],
            ),
        ),
    ),
    "agent": Bench(
        "bench_agent",
        "agent",
        picks=grid(
            "measure",
            [
                ("start-up -> first API request (s", "start-up -> first request s"),
                ("start-up -> first API request, CPU", "start-up -> first request, CPU s"),
                ("resume among 1000", "resume among 1000 foreign open suggestions s"),
                *_same("API calls per evaluation"),
            ],
            _same("agent", "baseline", "ratio agent/baseline"),
        ),
    ),
}
# Sections that other invocations of the scripts write (run_all.EXTRA_RUNS): section -> bench.
AFTER_ONLY: dict[str, Bench] = {
    "twin": Bench("bench_twin", "twin", args=("--repeat", "5")),
    **{
        extra[extra.index("--section") + 1]: Bench(module, extra[extra.index("--section") + 1],
                                                    args=tuple(extra))
        for module, extras in EXTRA_RUNS.items()
        for extra in extras
    },
}  # fmt: skip


def parse_tables(body: str) -> list[Table]:
    """The Markdown tables of a section: each a list of rows, each row a column -> cell dict."""
    tables: list[Table] = []
    lines: list[str] = []
    for line in [*body.splitlines(), ""]:
        if line.startswith("|"):
            lines.append(line)
            continue
        if len(lines) >= 2:
            cells = [_cells(row) for row in lines]
            header = cells[0]
            tables.append([dict(zip(header, row)) for row in cells[2:]])
        lines = []
    return tables


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def pick(tables: Sequence[Table], key_column: str, row_name: str, column: str) -> str | None:
    """The cell in ``column`` of the first row whose ``key_column`` starts with ``row_name``."""
    for table in tables:
        for row in table:
            if row.get(key_column, "").startswith(row_name) and column in row:
                return row[column]
    return None


def number(cell: str | None) -> float | None:
    """The first number in a cell ("1,140", "3.00 (33 total)", "7.9x", "**0.81**")."""
    if cell is None:
        return None
    found = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell)
    return float(found.group().replace(",", "")) if found else None


def ratio(before: str | None, after: str | None) -> str:
    """after / before, when both are numbers and before is not 0."""
    low, high = number(before), number(after)
    if low is None or high is None or low == 0:
        return "-"
    return f"{high / low:.2f}"


@dataclass
class Run:
    """One script's run in one worktree."""

    commit: str
    command: str
    status: int = 0
    seconds: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    body: str | None = None
    error: str = ""
    tables: list[Table] = field(default_factory=list)

    def outcome(self) -> str:
        """How the run went, for the section."""
        load = f"load average {self.load[0]:.1f} -> {self.load[1]:.1f}"
        if self.status == 0 and self.body is not None:
            return f"ran in {self.seconds:.0f} s, {load}"
        if self.status == UNAVAILABLE:
            return f"could not run here (exit 77: {self.error}), {load}"
        return f"FAILED (exit {self.status}: {self.error}), {load}"


class Worktree:
    """A clean detached worktree of one commit, with this checkout's shared folders linked."""

    def __init__(self, commit: str, parent: Path) -> None:
        self.commit = commit
        self.path = parent / commit
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(self.path), commit],
            check=True,
            capture_output=True,
        )
        for name in SHARED:
            if (REPO / name).exists():
                (self.path / name).symlink_to(REPO / name)
        self.env = {**os.environ, "PYTHONPATH": str(self.path)}
        self._check_imports()

    def _check_imports(self) -> None:
        code = "; ".join(f"import {name}; print({name}.__file__)" for name in PACKAGES)
        done = subprocess.run(
            [PYTHON, "-c", code],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        outside = [f for f in done.stdout.split() if not f.startswith(str(self.path) + "/")]
        if outside:
            raise SystemExit(f"{self.commit}: imported from outside its worktree: {outside}")

    def run(self, bench: Bench) -> Run:
        """Run the bench's script here; its section as written into this worktree's report."""
        argv = [PYTHON, "-m", f"benchmarks.{bench.module}", *bench.args]
        run = Run(self.commit, command_line(argv))
        print(f"== {self.commit}: {run.command}", flush=True)
        load_before, started = os.getloadavg()[0], time.monotonic()
        stderr = self.path / f"{bench.section}.stderr"
        with open(stderr, "w") as err:
            try:
                done = subprocess.run(
                    argv,
                    cwd=self.path,
                    env=self.env,
                    stderr=err,
                    timeout=SCRIPT_TIMEOUT_S,
                    check=False,
                )
                run.status = done.returncode
            except subprocess.TimeoutExpired:
                run.status = 124
        run.seconds = time.monotonic() - started
        run.load = (load_before, os.getloadavg()[0])
        tail = [line for line in stderr.read_text().splitlines() if line.strip()]
        run.error = tail[-1].strip()[:300] if tail else ""
        if run.status == 0:
            run.body = section_body(
                (self.path / "docs" / "benchmarks.md").read_text(), bench.section
            )
            run.tables = parse_tables(run.body or "")
        print(f"== {self.commit}: {run.outcome()}", flush=True)
        return run

    def remove(self) -> None:
        """Remove the worktree (with its build output)."""
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(self.path)],
            check=False,
            capture_output=True,
        )


def _short(ref: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def comparison(name: str, bench: Bench, before: Run, after: Run, after_first: bool = False) -> str:
    """The subsection of one benchmark: both runs and the headline figures side by side."""
    runs = [
        f"- Before (`{before.commit}`): `{before.command}`, {before.outcome()}.",
        f"- After (`{after.commit}`): `{after.command}`, {after.outcome()}.",
    ]
    lines = [f"### {name}", "", *(runs[::-1] if after_first else runs), ""]
    if before.body is None or after.body is None:
        lines.append("No comparison: the run above that did not finish gives no figures.")
        return "\n".join(lines)
    rows = []
    for shown, key_column, row_name, column in bench.picks:
        old = pick(before.tables, key_column, row_name, column)
        new = pick(after.tables, key_column, row_name, column)
        if old is None and new is None:
            continue
        rows.append([shown, old or "not reported", new or "not reported", ratio(old, new)])
    lines.append(
        markdown_table(
            ["measure", f"before ({before.commit})", f"after ({after.commit})", "after/before"],
            rows,
        )
    )
    return "\n".join(lines)


def _driver() -> str:
    """This checkout's commit, and whether this script has uncommitted changes."""
    head = _short("HEAD")
    status = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "benchmarks/before_after.py"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return f"`{head}`" + (" (with uncommitted changes to it)" if status.strip() else "")


def report(
    args: argparse.Namespace,
    before: str,
    after: str,
    results: dict[str, tuple[Run, Run]],
    load_start: Sequence[float],
    started: str,
    seconds: float,
) -> str:
    """The before-after section."""
    load = ", ".join(f"{x:.1f}" for x in load_start)
    first, then = ("after", "before") if args.after_first else ("before", "after")
    header = [
        f"## {args.title}",
        "",
        f"- Date: {started} UTC; load average at start {load} (the machine is shared); "
        f"total {seconds / 60:.0f} min",
        f"- Commits: before `{before}`, after `{after}`, each run from a clean worktree of it "
        "(`git worktree add --detach`, removed at the end) that imports its own code (checked)",
        f"- Command: `{command_line()}`; driver benchmarks/before_after.py at {_driver()}",
        f"- Machine: {machine()}",
        f"- Each benchmark ran with the {first} commit's own script, then at once with the "
        f"{then} commit's, one after the other (never two at once), on the same interpreter and "
        "packages (the checkout's `.venv`). Ratios are after/before; the figures are wall-clock "
        "times on a shared 2-core machine, so a ratio within the spread of a section's own "
        "samples (its baseline moves as much) is noise."
        + (
            ""
            if args.no_copy
            else " The after runs' full sections are the sections of the same name in this file."
        ),
    ]
    if args.note:
        header.append(f"- {args.note}")
    parts = ["\n".join(header)]
    parts += [
        comparison(name, BENCHES[name], *runs, after_first=args.after_first)
        for name, runs in results.items()
    ]
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks at both commits; write the before-after section and the after's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="f182d35")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--benchmarks", default="demo,fleet_traffic,load,infra")
    parser.add_argument("--after-only", default="", help="sections run at the after commit only")
    parser.add_argument("--section", default=SECTION)
    parser.add_argument("--title", default=TITLE)
    parser.add_argument("--note", default="", help="one more line for the section's header")
    parser.add_argument(
        "--after-first", action="store_true", help="run the after commit first (drift check)"
    )
    parser.add_argument(
        "--no-copy", action="store_true", help="leave the after commit's own sections alone"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    names = [n for n in args.benchmarks.split(",") if n]
    only = [n for n in args.after_only.split(",") if n]
    unknown = [n for n in names if n not in BENCHES] + [n for n in only if n not in AFTER_ONLY]
    if unknown:
        parser.error(
            f"unknown: {unknown}; known {sorted(BENCHES)}, after-only {sorted(AFTER_ONLY)}"
        )
    before, after = _short(args.before), _short(args.after)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load_start, clock = os.getloadavg(), time.monotonic()
    results: dict[str, tuple[Run, Run]] = {}
    copied: list[str] = []
    with tempfile.TemporaryDirectory(prefix="optfleet-before-after-") as tmp:
        trees: list[Worktree] = []
        try:
            trees = [Worktree(before, Path(tmp)), Worktree(after, Path(tmp))]
            old, new = trees
            for name in names:
                bench = BENCHES[name]
                if args.after_first:
                    after_run = new.run(bench)
                    results[name] = (old.run(bench), after_run)
                else:
                    results[name] = (old.run(bench), new.run(bench))
                _copy(results[name][1], bench.section, args, copied)
                _write(args, before, after, results, load_start, started, clock)
            for name in only:
                _copy(new.run(AFTER_ONLY[name]), name, args, copied, after_only=True)
        finally:
            for tree in trees:
                tree.remove()
    body = _write(args, before, after, results, load_start, started, clock)
    print(body)
    print(f"\nSections copied from the after commit ({after}): {', '.join(copied) or 'none'}")
    failed = [name for name, runs in results.items() if any(r.body is None for r in runs)]
    return 1 if failed else 0


def _copy(
    run: Run, section: str, args: argparse.Namespace, copied: list[str], after_only: bool = False
) -> None:
    if run.body is not None and not args.no_write and (after_only or not args.no_copy):
        write_section(section, run.body)
        copied.append(section)


def _write(
    args: argparse.Namespace,
    before: str,
    after: str,
    results: dict[str, tuple[Run, Run]],
    load_start: Sequence[float],
    started: str,
    clock: float,
) -> str:
    body = report(args, before, after, results, load_start, started, time.monotonic() - clock)
    if results and not args.no_write:
        write_section(args.section, body)
    return body


if __name__ == "__main__":
    sys.exit(main())
