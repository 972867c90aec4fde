"""The layers of docs/architecture.md hold: a module imports only the layers below its own.

Read from the source (every ``import`` and ``from ... import``, lazy ones inside functions
included), so a new cross-layer import fails here before anyone has to notice it in review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "suggestion_server"

# Layer -> the server packages (or single modules, dotted below suggestion_server) it may import.
# The root modules (app, __main__) compose everything; config is read by storage for its settings.
ALLOWED: dict[str, set[str]] = {
    "wire": set(),
    "optimizer": set(),
    "storage": {"wire", "optimizer.api", "config"},
    "domain": {"wire", "optimizer"},
    "pool": {"storage", "domain", "optimizer", "wire", "config"},
    "services": {"pool", "storage", "domain", "optimizer.api", "wire", "config"},
    "http": {"services", "storage", "domain", "wire", "config"},
}
ROOT_MODULES = {"__init__", "__main__", "app", "config"}

# Which top-level packages each distribution part may import (design: dependencies point one way).
PACKAGE_RULES: dict[str, set[str]] = {
    "worker_bootstrap": set(),
    "suggestion_server": set(),
    "infra": {"worker_bootstrap"},
    # Test equipment (the IMDS and pricing emulators): the standard library only, so the demo,
    # tests and benchmarks can run it beside any of the others.
    "emulators": set(),
}
OUR_PACKAGES = {"worker_bootstrap", "suggestion_server", "infra", "optfleet", "emulators"}


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module name ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def layer_of(path: Path) -> str:
    parts = path.relative_to(SERVER).parts
    return parts[0] if len(parts) > 1 else path.stem


def allowed(layer: str, target: str) -> bool:
    """Whether ``layer`` may import ``target`` (dotted below suggestion_server)."""
    if target.split(".")[0] == layer:
        return True
    return any(target == rule or target.startswith(rule + ".") for rule in ALLOWED[layer])


def server_violations() -> list[str]:
    found = []
    for path in sorted(SERVER.rglob("*.py")):
        layer = layer_of(path)
        if layer in ROOT_MODULES:
            continue
        assert layer in ALLOWED, f"{path}: package {layer!r} belongs to no layer; add it to ALLOWED"
        for module in imported_modules(path):
            if not module.startswith("suggestion_server."):
                continue
            target = module.removeprefix("suggestion_server.")
            if not allowed(layer, target):
                found.append(f"{path.relative_to(REPO)} ({layer}) imports {module}")
    return found


def test_server_modules_import_only_the_layers_below() -> None:
    assert server_violations() == []


@pytest.mark.parametrize("package", sorted(PACKAGE_RULES))
def test_packages_import_only_what_the_design_allows(package: str) -> None:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        # The control plane's runtime runs the server; only it may import the server.
        extra = {"suggestion_server"} if path.is_relative_to(REPO / "infra" / "runtime") else set()
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in OUR_PACKAGES and top != package and top not in PACKAGE_RULES[package] | extra:
                bad.append(f"{path.relative_to(REPO)} imports {module}")
    assert bad == []


def test_the_layer_check_catches_a_cross_layer_import() -> None:
    # The rule itself can fail: the optimizer reaching up into storage is refused.
    assert not allowed("optimizer", "storage.queries")
    assert not allowed("storage", "services.render")
    assert not allowed("http", "optimizer.gp.model")
    assert allowed("pool", "optimizer.padding")
    assert allowed("storage", "optimizer.api")
    assert not allowed("storage", "optimizer.gp")
