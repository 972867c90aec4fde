"""Where the database lives: the default URL and normalising the URLs users type."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DB_DIR = Path.home() / ".optfleet"


def default_db_url() -> str:
    """The default database: a SQLite file under ``~/.optfleet/`` (the directory is created)."""
    DEFAULT_DB_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DB_DIR / 'optfleet.db'}"


def normalize_db_url(url: str) -> str:
    """Rewrite ``postgresql://`` and ``postgres://`` to the psycopg 3 driver; keep the rest."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
