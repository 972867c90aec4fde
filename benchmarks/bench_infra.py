"""infra timings: `cdk synth` through the CLI, and the boot script's install on Python 3.9.

    .venv/bin/python benchmarks/bench_infra.py [--repeats 3]

Baselines in the same invocation: `cdk synth` of a one-stack app with nothing in it (the CLI +
Python + jsii floor), and the bare install the boot script wraps (`python3.9 -m venv` +
`pip install --no-index` of the same wheels). Writes the `infra` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import (
    REPO,
    keep_unavailable_section,
    machine_description,
    markdown_table,
    median,
    write_section,
)
from benchmarks._requirements import missing_cdk
from infra.wheelhouse import WheelhousePaths, build_wheelhouse
from tests.infra.support import CDK_CLI, tool_env
from tests.infra.test_user_data import _ami_python

SECTION = "infra"
TITLE = "infra: `cdk synth` and the boot script"
EMPTY_APP = """
import aws_cdk as cdk
app = cdk.App()
cdk.Stack(app, "empty")
app.synth()
"""


def _timed(command: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s of the children) of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed: {result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def synth_timings(repeats: int, work: Path) -> list[list[object]]:
    env = tool_env()
    build_wheelhouse()  # warm the asset cache: the warm runs measure what a user sees on re-synth
    ours = [
        _timed(
            [str(CDK_CLI), "synth", "--quiet", "-o", str(work / f"o{i}"), "-c", "experiment_id=42"],
            cwd=REPO,
            env=env,
        )
        for i in range(repeats)
    ]
    (work / "empty.py").write_text(EMPTY_APP)
    floor = [
        _timed(
            [
                str(CDK_CLI),
                "synth",
                "--quiet",
                "-o",
                str(work / f"e{i}"),
                "--app",
                f"{sys.executable} {work / 'empty.py'}",
            ],
            cwd=work,
            env=env,
        )
        for i in range(repeats)
    ]
    cold_env = {**env, "OPTFLEET_ASSET_CACHE": str(work / "cold-cache")}
    cold = _timed(
        [str(CDK_CLI), "synth", "--quiet", "-o", str(work / "cold"), "-c", "experiment_id=42"],
        cwd=REPO,
        env=cold_env,
    )
    ours_wall, floor_wall = median([w for w, _ in ours]), median([w for w, _ in floor])
    ours_cpu = median([c for _, c in ours])
    floor_is = "`cdk synth` of an empty one-stack app"
    return [
        ["`cdk synth -c experiment_id=42`, warm asset cache (median)", f"{ours_wall:.1f}",
         f"{ours_cpu:.1f}", f"{floor_wall:.1f}", floor_is, f"{ours_wall / floor_wall:.2f}"],
        ["same, cold cache (builds optfleet's wheel)", f"{cold[0]:.1f}", f"{cold[1]:.1f}",
         f"{floor_wall:.1f}", floor_is, f"{cold[0] / floor_wall:.2f}"],
    ]  # fmt: skip


def boot_timings(work: Path) -> list[list[object]]:
    from infra.settings import load_settings
    from infra.user_data import AssetLocation, agent_settings, render_user_data

    python = _ami_python()
    wheelhouse = build_wheelhouse(WheelhousePaths.from_environment())
    assets = work / "assets"
    assets.mkdir()
    with zipfile.ZipFile(assets / "wheelhouse.zip", "w", zipfile.ZIP_DEFLATED) as out:
        for wheel in sorted(wheelhouse.glob("*.whl")):
            out.write(wheel, wheel.name)
    settings = load_settings(
        {"experiment_id": "42", "token_secret": "optfleet/api-token"}, cwd=REPO
    )
    script = work / "user-data.sh"
    script.write_text(
        render_user_data(
            experiment_id="42",
            agent_pairs=agent_settings(settings, region="us-east-1"),
            wheelhouse=AssetLocation(s3_url="s3://bucket/wheelhouse.zip", asset_hash="c" * 64),
            workload=None,
            region="us-east-1",
            log_group_name="/optfleet/42/agent",
        )
    )
    env = {
        "PATH": os.environ["PATH"],
        "OPTFLEET_ROOT": str(work / "root"),
        "OPTFLEET_LOCAL_ASSETS": str(assets),
        "OPTFLEET_PYTHON": python,
        "PIP_NO_INDEX": "1",
    }
    first = _timed(["bash", str(script)], cwd=work, env=env)
    again = _timed(["bash", str(script)], cwd=work, env=env)
    bare_venv = work / "bare-venv"
    bare = [
        _timed([python, "-m", "venv", str(bare_venv)], cwd=work, env=env),
        _timed(
            [
                str(bare_venv / "bin/python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                "optfleet[aws]",
            ],
            cwd=work,
            env=env,
        ),
    ]
    bare_wall = sum(w for w, _ in bare)
    size_mb = (assets / "wheelhouse.zip").stat().st_size / 1e6
    bare_is = "bare `python -m venv` + `pip install --no-index` of the same wheels"
    first_is = (
        f"boot script, first run (unzip {size_mb:.1f} MB, venv, pip, units), {Path(python).name}"
    )
    return [
        [first_is, f"{first[0]:.1f}", f"{first[1]:.1f}", f"{bare_wall:.1f}", bare_is,
         f"{first[0] / bare_wall:.2f}"],
        ["boot script, second run (idempotent: everything up to date)", f"{again[0]:.1f}",
         f"{again[1]:.1f}", f"{first[0]:.1f}", "the first run", f"{again[0] / first[0]:.2f}"],
    ]  # fmt: skip


def main() -> int:
    """Measure and rewrite the `infra` section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if missing := missing_cdk():
        return keep_unavailable_section(SECTION, TITLE, missing)
    with tempfile.TemporaryDirectory(prefix="bench-infra-") as tmp:
        work = Path(tmp)
        load_before = os.getloadavg()[0]
        rows = synth_timings(args.repeats, work) + boot_timings(work)
        load_after = os.getloadavg()[0]
    body = "\n".join(
        [
            f"## {TITLE}",
            "",
            machine_description(["aws-cdk-lib", "cdk-nag"]),
            f"- Load average while measuring: {load_before:.1f} -> {load_after:.1f} "
            f"on {os.cpu_count()} cores (other work shares the machine; wall times scale "
            "with it, CPU times much less).",
            "",
            markdown_table(
                ["measure", "wall s", "CPU s", "baseline wall s", "baseline is", "ratio"], rows
            ),
        ]
    )
    write_section(SECTION, body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
