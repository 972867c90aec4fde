"""Fixtures for the reliability suite: servers we may kill, and an audit of every log we write.

Every test here writes its logs (agents, evaluations, servers) under its ``tmp_path`` or registers
them with ``log_audit``; after the test, the audit reads all of them and fails if any API token
used in the test appears in any of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.server import RunningServer

TOKEN = "reliability-token-8c1f4e7a2b"


@dataclass
class LogAudit:
    """Files and directories to scan, and the secrets that must not appear in them."""

    secrets: set[str] = field(default_factory=lambda: {TOKEN})
    paths: list[Path] = field(default_factory=list)

    def watch(self, path: Path) -> None:
        self.paths.append(path)

    def secret(self, token: str) -> None:
        self.secrets.add(token)

    def files(self) -> list[Path]:
        found: list[Path] = []
        for path in self.paths:
            if path.is_dir():
                found.extend(p for p in path.rglob("*") if p.is_file() and _is_log(p))
            elif path.is_file():
                found.append(path)
        return found

    def leaks(self) -> list[str]:
        """``file: secret-prefix`` for every secret found in a scanned file."""
        found = []
        for path in self.files():
            text = path.read_text(errors="replace")
            for secret in self.secrets:
                if secret in text:
                    found.append(f"{path}: {secret[:6]}...")
        return found


def _is_log(path: Path) -> bool:
    # Logs and outputs; the env files holding the token (mode 0600, like /etc/optfleet) are config.
    return path.name != "agent.env"


@pytest.fixture()
def log_audit(tmp_path: Path) -> Iterator[LogAudit]:
    """Scan every log the test wrote (its tmp_path and registered files) for API tokens."""
    audit = LogAudit()
    audit.watch(tmp_path)
    yield audit
    leaks = audit.leaks()
    assert not leaks, f"API token found in logs: {leaks}"
    assert audit.files(), "the audit scanned no log at all"


@pytest.fixture()
def sqlite_server(log_audit: LogAudit) -> Iterator[RunningServer]:
    """A server of this test's own (SQLite), so the test may kill and restart it."""
    with RunningServer.start(token=TOKEN) as server:
        log_audit.watch(server.log_path)
        yield server
