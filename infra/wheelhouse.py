"""Build the folders shipped as S3 assets: the agent's wheelhouse and the staged workload.

The wheelhouse holds optfleet's own wheel, built from this checkout at synth time, plus the
pinned pure-python dependency wheels that `make wheelhouse` downloads once
(requirements/agent.lock -> .stamps/wheelhouse). Instances install from it with
`pip --no-index`, so boot needs no package index. Nothing here downloads during tests: the own
wheel is built with the build backend from .stamps/build-wheels, without an index.

Builds are cached under build/optfleet-assets/ by a hash of their inputs, so a warm synth costs
a directory listing, and identical inputs give identical asset hashes (no needless redeploys).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Optional

from infra.user_data import AMI_PYTHON

# "3.11": the workers' interpreter, which the instances' wheels are chosen for.
AMI_PYTHON_VERSION = AMI_PYTHON.removeprefix("python")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEPENDENCY_WHEELS = REPO_ROOT / ".stamps" / "wheelhouse"
DEFAULT_BUILD_WHEELS = REPO_ROOT / ".stamps" / "build-wheels"
# The control plane's server and its dependencies for CPython 3.11 on x86_64 Linux
# (requirements/server.lock, downloaded by `make wheelhouse`).
DEFAULT_SERVER_WHEELS = REPO_ROOT / ".stamps" / "server-wheelhouse"
DEFAULT_CACHE = REPO_ROOT / "build" / "optfleet-assets"
# What setuptools needs to build the distribution (pyproject.toml's package list).
SOURCE_ITEMS = (
    "pyproject.toml",
    "README.md",
    "optfleet",
    "worker_bootstrap",
    "suggestion_server",
    "infra",
)
# Reproducible wheels: zip entries carry this timestamp instead of the files' mtimes.
SOURCE_DATE_EPOCH = "315532800"
BUILD_TIMEOUT_S = 300
WORKLOAD_WHEELS_DIR = ".optfleet-wheels"


class WheelhouseError(RuntimeError):
    """The wheelhouse cannot be built; the message says what to run or fix."""


@dataclass(frozen=True)
class WheelhousePaths:
    """Where the wheelhouse build reads its inputs and caches its output (injectable for tests)."""

    dependency_wheels: Path = DEFAULT_DEPENDENCY_WHEELS
    build_wheels: Path = DEFAULT_BUILD_WHEELS
    cache: Path = DEFAULT_CACHE
    source_root: Path = REPO_ROOT
    server_wheels: Path = DEFAULT_SERVER_WHEELS

    @classmethod
    def from_environment(cls) -> WheelhousePaths:
        """Defaults, overridable with OPTFLEET_DEPENDENCY_WHEELS / _BUILD_WHEELS / _ASSET_CACHE."""
        env = os.environ
        return cls(
            dependency_wheels=Path(
                env.get("OPTFLEET_DEPENDENCY_WHEELS", DEFAULT_DEPENDENCY_WHEELS)
            ),
            build_wheels=Path(env.get("OPTFLEET_BUILD_WHEELS", DEFAULT_BUILD_WHEELS)),
            cache=Path(env.get("OPTFLEET_ASSET_CACHE", DEFAULT_CACHE)),
            server_wheels=Path(env.get("OPTFLEET_SERVER_WHEELS", DEFAULT_SERVER_WHEELS)),
        )


def _source_files(root: Path) -> Iterator[Path]:
    for item in SOURCE_ITEMS:
        path = root / item
        if path.is_file():
            yield path
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                    yield file


def _digest(files: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def build_wheelhouse(
    paths: Optional[WheelhousePaths] = None, *, include_server: bool = False
) -> Path:
    """Return a folder with optfleet's wheel and its dependency wheels, building it if needed.

    ``include_server`` adds the `server` extra's wheels for CPython 3.11 (the control plane's
    instances); the fleet's wheelhouse stays the small pure-python one.
    """
    paths = paths or WheelhousePaths.from_environment()
    dependency_wheels = sorted(paths.dependency_wheels.glob("*.whl"))
    if not dependency_wheels:
        raise WheelhouseError(
            f"no dependency wheels in {paths.dependency_wheels}: run `make wheelhouse` first"
        )
    prefix = "wheelhouse-"
    if include_server:
        server_wheels = sorted(paths.server_wheels.glob("*.whl"))
        if not server_wheels:
            raise WheelhouseError(
                f"no server wheels in {paths.server_wheels}: run `make wheelhouse` first"
            )
        dependency_wheels = server_wheels
        prefix = "server-wheelhouse-"
    key = _digest([*_source_files(paths.source_root), *dependency_wheels], paths.source_root.parent)
    target = paths.cache / f"{prefix}{key}"
    if target.is_dir():
        return target
    paths.cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="wheelhouse-", dir=paths.cache))
    try:
        _build_own_wheel(paths, staging)
        for wheel in dependency_wheels:
            shutil.copy2(wheel, staging / wheel.name)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another synth finished the same build first: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(paths.cache, prefix, keep=target)
    return target


def _prune(cache: Path, prefix: str, keep: Path, keep_count: int = 3) -> None:
    """Drop all but the newest few cached builds (each wheelhouse is ~16 MB)."""
    builds = sorted(
        (
            p
            for p in cache.glob(prefix + "*")
            if p.is_dir() and p != keep and not p.name.startswith("tmp")
        ),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in builds[keep_count - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def _build_own_wheel(paths: WheelhousePaths, out_dir: Path) -> None:
    """Build optfleet's wheel from a clean copy of the sources (no stale build/ leftovers)."""
    if not any(paths.build_wheels.glob("setuptools-*.whl")):
        raise WheelhouseError(
            f"no build backend wheels in {paths.build_wheels}: run `make wheelhouse` first"
        )
    with tempfile.TemporaryDirectory(prefix="optfleet-src-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for item in SOURCE_ITEMS:
            path = paths.source_root / item
            if path.is_dir():
                shutil.copytree(
                    path,
                    src / item,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
                )
            elif path.is_file():
                shutil.copy2(path, src / item)
        command = [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--no-index", "--find-links", str(paths.build_wheels),
            "--wheel-dir", str(out_dir), str(src),
        ]  # fmt: skip
        env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PIP_NO_INPUT": "1"}
        result = subprocess.run(  # noqa: S603 - fixed command line
            command, capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise WheelhouseError(f"building the optfleet wheel failed: {last}")


def stage_workload(
    workload: Path, *, architecture: str, paths: Optional[WheelhousePaths] = None
) -> Path:
    """Return a staged copy of ``workload`` with wheels for its requirements.txt, if it has one.

    Wheels are downloaded for the instances' Python (3.11) and architecture. When every requirement
    has a wheel, `.optfleet-wheels/COMPLETE` tells the boot script it can skip the package index;
    otherwise the instances fall back to the index for the rest ("where possible").
    """
    paths = paths or WheelhousePaths.from_environment()
    files = [f for f in sorted(workload.rglob("*")) if f.is_file() and "__pycache__" not in f.parts]
    key = _digest(files, workload) + "-" + architecture
    target = paths.cache / f"workload-{key}"
    if target.is_dir():
        return target
    paths.cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="workload-", dir=paths.cache))
    try:
        shutil.copytree(
            workload, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
        requirements = staging / "requirements.txt"
        if requirements.is_file():
            _download_workload_wheels(requirements, staging / WORKLOAD_WHEELS_DIR, architecture)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(paths.cache, "workload-", keep=target)
    return target


def _download_workload_wheels(requirements: Path, out_dir: Path, architecture: str) -> None:
    out_dir.mkdir()
    arch = "aarch64" if architecture == "arm64" else "x86_64"
    platforms = [
        f"manylinux_2_34_{arch}",
        f"manylinux_2_28_{arch}",
        f"manylinux2014_{arch}",
        "linux_" + arch,
        "any",
    ]
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--python-version", AMI_PYTHON_VERSION, "--implementation", "cp",
        *[arg for platform in platforms for arg in ("--platform", platform)],
        "--dest", str(out_dir), "--requirement", str(requirements),
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603 - fixed command line
        command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )  # fmt: skip
    if result.returncode == 0:
        (out_dir / "COMPLETE").write_text("every requirement has a wheel here\n", encoding="utf-8")
    else:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(
            f"optfleet: workload wheels incomplete, instances will use the package index: {reason}",
            file=sys.stderr,
        )


def wheel_problems_for_python(
    wheelhouse: Path, python_version: str = AMI_PYTHON_VERSION
) -> list[str]:
    """Return why any wheel in ``wheelhouse`` cannot install on CPython ``python_version`` (static).

    Checks the tags in the file name (pure python: `py3-none-any`-like) and the
    `Requires-Python` field of the wheel's METADATA.
    """
    from packaging.specifiers import SpecifierSet
    from packaging.utils import parse_wheel_filename

    major, minor = python_version.split(".")[:2]
    pure_interpreters = {f"py{major}", f"py{major}{minor}"}
    problems: list[str] = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        name, _version, _build, tags = parse_wheel_filename(wheel.name)
        if not any(
            t.abi == "none" and t.platform == "any" and t.interpreter in pure_interpreters
            for t in tags
        ):
            problems.append(f"{wheel.name}: not a pure-python py{major} wheel")
            continue
        with zipfile.ZipFile(wheel) as archive:
            metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = Parser().parsestr(archive.read(metadata_name).decode("utf-8"))
        requires = metadata.get("Requires-Python")
        if requires and python_version not in SpecifierSet(requires):
            problems.append(
                f"{wheel.name}: Requires-Python {requires} excludes {python_version} ({name})"
            )
    return problems
