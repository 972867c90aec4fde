"""What a benchmark needs beyond the dev lock, and whether this machine has it.

Each function returns what is missing, in words a user can act on (empty when nothing is), for
``_report.keep_unavailable_section``: a script that cannot run here leaves its section alone.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

from benchmarks._provenance import REPO


def missing_modules(modules: Sequence[str], install: str = "") -> list[str]:
    """The Python modules among ``modules`` that cannot be imported (with how to install)."""
    absent = [name for name in modules if importlib.util.find_spec(name) is None]
    if not absent:
        return []
    return [f"the Python module(s) {', '.join(absent)}" + (f" ({install})" if install else "")]


def missing_postgres() -> list[str]:
    """PostgreSQL's server binaries (tests.support.postgres installs them only as root)."""
    if glob.glob("/usr/lib/postgresql/*/bin/initdb") or os.geteuid() == 0:
        return []
    return ["PostgreSQL (/usr/lib/postgresql/*/bin/initdb; `make system-deps` installs it as root)"]


def missing_chromium() -> list[str]:
    """Debian's Chromium and Playwright, which drive the web page benchmark."""
    from tests.support.chromium import CHROMIUM

    missing = missing_modules(["playwright"], "the dev lock has it: `make deps`")
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (`make system-deps` installs Debian's chromium)")
    return missing


def missing_twin() -> list[str]:
    """Root, systemd-nspawn and the twin's root file system (tests/twin)."""
    from tests.twin.conftest import TWIN_ROOT, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        return [reason]
    if not (TWIN_ROOT / "usr/bin/systemd").exists():
        return [
            f"the instance twin's root file system {TWIN_ROOT.relative_to(REPO)} (`make twin-root`)"
        ]
    return []


def missing_cdk() -> list[str]:
    """The pinned CDK CLI (node_modules) and the CDK's Python library."""
    from tests.infra.support import CDK_CLI

    missing = missing_modules(["aws_cdk"], "the infra extra: `make deps`")
    if not CDK_CLI.exists():
        missing.append(f"the CDK CLI {CDK_CLI.relative_to(REPO)} (`make deps` runs npm ci)")
    return missing
