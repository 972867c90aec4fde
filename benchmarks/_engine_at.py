"""The engine as it was at another commit, importable beside today's (before/after runs).

``engine_at(commit)`` extracts ``suggestion_server/optimizer`` of that commit (``git archive``,
nothing in the work tree or the index changes) into a cache directory as the package
``optfleet_engine_<commit>``, its imports renamed, and returns its ``StudySuggester`` class. The
optimizer imports nothing else of the server (tests/server/test_layers.py), so the copy stands
alone.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._provenance import REPO

CACHE = Path(tempfile.gettempdir()) / "optfleet-engines"


def _extract(commit: str, package: str) -> Path:
    root = CACHE / package
    if (root / package / "suggester.py").exists():
        return root
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "suggestion_server/optimizer"],
        capture_output=True,
        check=True,
    ).stdout
    staging = Path(tempfile.mkdtemp(dir=CACHE.parent if CACHE.exists() else None))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(staging, filter="data")
    target = staging / "out" / package
    target.parent.mkdir(parents=True)
    (staging / "suggestion_server" / "optimizer").rename(target)
    for source in target.rglob("*.py"):
        text = source.read_text().replace("suggestion_server.optimizer", package)
        source.write_text(text)
    CACHE.mkdir(parents=True, exist_ok=True)
    if not (root / package / "suggester.py").exists():
        (staging / "out").rename(root)
    return root


def engine_at(commit: str) -> Any:
    """``StudySuggester`` of ``commit`` (a short or full hash)."""
    full = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", commit],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    package = f"optfleet_engine_{full}"
    root = _extract(full, package)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{package}.suggester").StudySuggester
