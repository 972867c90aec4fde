"""``--db-pool-size``: the connections a server process keeps, so that N processes (or servers)
can be fitted under PostgreSQL's max_connections."""

from __future__ import annotations

from pathlib import Path

import pytest

from suggestion_server.__main__ import build_parser
from suggestion_server.app import create_app


def test_the_flag_sizes_the_pool(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--db-pool-size", "5"])
    assert args.db_pool_size == 5
    app = create_app(f"sqlite:///{tmp_path / 'pool.db'}", db_pool_size=args.db_pool_size)
    try:
        assert app.state.context.store.engine.pool.size() == 5
    finally:
        app.state.context.store.dispose()
    assert build_parser().parse_args([]).db_pool_size == 32


@pytest.mark.parametrize("bad", ["0", "-3", "many"])
def test_bad_pool_sizes_are_refused(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--db-pool-size", bad])
    assert info.value.code == 2
    assert "--db-pool-size" in capsys.readouterr().err


def test_postgres_pool_follows_the_flag(pg_cluster: object) -> None:
    url = pg_cluster.create_database()  # type: ignore[attr-defined]
    app = create_app(url, db_pool_size=7)
    try:
        pool = app.state.context.store.engine.pool
        assert pool.size() == 7 and pool._max_overflow == 3
    finally:
        app.state.context.store.dispose()
