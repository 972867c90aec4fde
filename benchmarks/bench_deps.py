"""The engine's dependencies: installed size and install time of each option, in fresh venvs.

Each option is installed with pip into its own new virtualenv of this interpreter (downloads
included, pip's cache off); the size is the venv's on disk. Baseline in the same invocation: a
venv with NumPy alone, which every option needs. Writes the `deps` section of
docs/benchmarks.md.

    .venv/bin/python -m benchmarks.bench_deps [--options scipy,torch] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks._report import machine_description, markdown_table, write_section

SECTION = "deps"
TITLE = "The engine's dependencies: install size and time"


@dataclass(frozen=True)
class Option:
    """One way to give the server a Gaussian-process engine, as pip requirements."""

    label: str
    requirements: tuple[str, ...]
    note: str


# NumPy's pin is the lock file's: the baseline and every option install the same one.
NUMPY = "numpy==2.4.6"
BASELINE = Option("NumPy alone (baseline: every option needs it)", (NUMPY,), "")
OPTIONS = {
    "scipy": Option(
        "SciPy + threadpoolctl + NumPy (the engine optfleet ships)",
        (NUMPY, "scipy==1.17.1", "threadpoolctl==3.8.0"),
        "wheels on PyPI for every platform",
    ),
    "torch": Option(
        "PyTorch 2.13.0 + NumPy (what Optuna's GPSampler needs)",
        (NUMPY, "torch==2.13.0"),
        "PyPI's x86_64 wheel is the CUDA build (gigabytes); a CPU-only wheel where pip finds one",
    ),
}


def _size_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total / 1e6


def install(option: Option, work: Path) -> tuple[float, float]:
    """(install wall s, installed MB above an empty venv) of ``option`` in a fresh venv."""
    venv = work / option.requirements[-1].split("==")[0]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    empty = _size_mb(venv)
    command = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-cache-dir",
               "--disable-pip-version-check", *option.requirements]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return wall, _size_mb(venv) - empty


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", default=",".join(OPTIONS), help="comma-separated")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    chosen = [OPTIONS[name] for name in args.options.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="optfleet-deps-") as tmp:
        base_wall, base_mb = install(BASELINE, Path(tmp))
        for option in [BASELINE, *chosen]:
            wall, mb = (base_wall, base_mb) if option is BASELINE else install(option, Path(tmp))
            rows.append([option.label, f"{mb:.0f}", f"{wall:.0f}", f"{mb / base_mb:.1f}",
                         f"{wall / base_wall:.1f}", option.note])  # fmt: skip
            print(rows[-1], flush=True)
    body = "\n\n".join(
        [
            f"## {TITLE}",
            machine_description(["pip"]),
            "Each option installed with `pip install --no-cache-dir` into a fresh virtualenv of "
            "the interpreter above (downloads from the package index included, so the times "
            "depend on the network and on the machine's load); size is what the install added "
            "to the venv. Baseline in the same invocation: NumPy alone.",
            markdown_table(
                ["option", "installed MB", "install s", "MB / baseline", "s / baseline", "notes"],
                rows,
            ),
            "The server's engine is therefore written on NumPy and SciPy "
            "(`suggestion_server/optimizer/gp/`); PyTorch is needed only to run Optuna's "
            "GPSampler as a baseline in `bench_quality` (`make bench-quality-deps` installs it).",
        ]
    )
    if args.no_write:
        print(body)
    else:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
