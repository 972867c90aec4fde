"""Apply the Alembic migrations shipped inside the package (run at every server start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant: serializes concurrent starts of several server processes on one PostgreSQL.
_PG_MIGRATION_LOCK_KEY = 7_042_001


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when several processes start at once."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
