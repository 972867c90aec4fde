"""`optfleet status` runs against AWS: it imports nothing of the demo or its emulators."""

from __future__ import annotations

from pathlib import Path

from tests.server.test_layers import REPO, imported_modules

DEMO_ONLY = (
    "optfleet.fleet_demo",
    "optfleet.fleet_sim",
    "optfleet.demo_report",
    "optfleet.demo_view",
    "optfleet.cost.demo_cost",
    "optfleet.commands.demo",
    "emulators",
)


def module_path(module: str) -> Path | None:
    """The source file of one of our optfleet modules, None for anything else."""
    base = REPO / Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if module.startswith("optfleet") and path.is_file():
            return path
    return None


def optfleet_imports_of(start: str) -> set[str]:
    """Every module ``start`` imports, following optfleet's own modules transitively."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        path = module_path(module)
        if path is None:
            continue
        for imported in imported_modules(path):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def test_status_imports_nothing_of_the_demo() -> None:
    found = optfleet_imports_of("optfleet.commands.status")
    assert "optfleet.cost.experiment_cost" in found  # the walk follows optfleet's modules
    demo = sorted(m for m in found if any(m == d or m.startswith(d + ".") for d in DEMO_ONLY))
    assert demo == []
