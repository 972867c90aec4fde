"""The agent must run on Python 3.9 (Amazon Linux 2023's python3): compile and import it there.

The full agent suite also runs with the agent under 3.9 when OPTFLEET_AGENT_PYTHON points at a
3.9 interpreter that has ``requests`` (see docs/agent.md).
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "worker_bootstrap"
# Modules that need only the standard library (requests may be absent from a bare 3.9).
PURE = ["config", "journal", "results", "metadata", "crash", "logs", "retry", "evaluation",
        "install", "scan_cadence", "steps", "stop_flags", "clocks", "run_summary", "drain",
        "cost.keys", "cost.pricing", "cost.fleet_spend", "cost.attempt_spend",
        "cost.cap", "progress", "progress_keys"]  # fmt: skip


def python39() -> str | None:
    candidates = [
        shutil.which("python3.9"),
        *sorted(glob.glob("/root/.pyenv/versions/3.9*/bin/python3.9")),
    ]
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0
        ):
            return candidate
    return None


PY39 = python39()


@pytest.mark.skipif(PY39 is None, reason="no Python 3.9 interpreter on this machine")
def test_sources_compile_and_pure_modules_import_on_python39() -> None:
    assert PY39 is not None
    files = sorted(str(p) for p in PACKAGE.rglob("*.py"))
    compiled = subprocess.run([PY39, "-m", "py_compile", *files], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    code = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(PACKAGE.parent)!r})\n"
        + "".join(f"import worker_bootstrap.{name}\n" for name in PURE)
        + "from worker_bootstrap.results import outcome_from_text\n"
        "from worker_bootstrap.config import settings_from\n"
        "print(json.dumps([outcome_from_text('{\"value\": 2}').values,\n"
        "  settings_from({'OPTFLEET_EXPERIMENT_ID': '1', 'SIGOPT_API_URL': 'https://h'}).api_url]))\n"
    )
    done = subprocess.run([PY39, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '[[{"value": 2.0}], "https://h"]'
