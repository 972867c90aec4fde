"""A throwaway PostgreSQL cluster on loopback for tests and benchmarks.

PostgreSQL refuses to run as root, so the cluster runs as the ``postgres`` user in a directory
owned by it. Installs the Debian package first when the binaries are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port


def _pg_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass
class PostgresCluster:
    """A running cluster; ``url(db)`` gives a SQLAlchemy/psycopg URL for one database."""

    root: Path
    port: int
    bin_dir: Path

    @classmethod
    def start(cls) -> PostgresCluster:
        bin_dir = _pg_bin_dir()
        root = Path(tempfile.mkdtemp(prefix="optfleet-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        port = free_port()
        data = root / "data"
        subprocess.run(
            _as_postgres(
                [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        cluster = cls(root=root, port=port, bin_dir=bin_dir)
        cluster._pg_ctl("start", "-o", cluster._options())
        return cluster

    def _options(self) -> str:
        """Loopback only, a socket directory of its own, no fsync (test data is disposable)."""
        return f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=300 -c fsync=off"

    def _pg_ctl(self, action: str, *extra: str) -> None:
        args = [
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "log"),
            "-w",
        ]
        subprocess.run(_as_postgres([*args, *extra, action]), check=True, stdout=subprocess.DEVNULL)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-q",
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return self.url(name)

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast", "-o", self._options())

    def pause(self) -> None:
        """Stop the database server, keeping its data (``resume`` starts it again)."""
        self._pg_ctl("stop", "-m", "fast")

    def resume(self) -> None:
        self._pg_ctl("start", "-o", self._options())

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")
        shutil.rmtree(self.root, ignore_errors=True)
