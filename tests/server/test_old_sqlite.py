"""SQLite before 3.35 has no ``UPDATE … RETURNING``: the lease renewal then updates and reads
back in its serialized transaction. SQLAlchemy's dialect flag is what tells the two apart, so
the test turns it off on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from suggestion_server.app import create_app
from suggestion_server.services import experiments, suggestions
from suggestion_server.storage.tokens import register_token
from suggestion_server.wire.errors import ApiError
from suggestion_server.wire.schemas import ExperimentCreate, SuggestionCreate, SuggestionUpdate
from tests.server.conftest import INT_GRID_SPEC


def test_lease_renewal_without_returning(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'old.db'}", bootstrap_token="old-sqlite")
    ctx = app.state.context
    try:
        owner = register_token(ctx.store, "old-sqlite", name="owner")
        other = register_token(ctx.store, "someone-else", name="other")
        spec = ExperimentCreate.model_validate(INT_GRID_SPEC)
        eid = int(experiments.create_experiment(ctx, owner, spec)["id"])
        given = SuggestionCreate.model_validate({"assignments": {"x": 1, "y": 2}})
        sid = int(suggestions.create_suggestion(ctx, owner, eid, given)["id"])
        ctx.store.engine.dialect.update_returning = False

        lease = SuggestionUpdate.model_validate({"metadata": {"instance_id": "i-0old"}})
        renewed = suggestions.update_suggestion(ctx, owner, eid, sid, lease)
        assert renewed["metadata"] == {"instance_id": "i-0old"}
        assert renewed["assignments"] == {"x": 1, "y": 2} and renewed["state"] == "open"
        assert suggestions.fetch_suggestion(ctx, owner, eid, sid)["metadata"] == {
            "instance_id": "i-0old"
        }
        for client, suggestion in ((other, sid), (owner, sid + 1)):
            with pytest.raises(ApiError) as info:
                suggestions.update_suggestion(ctx, client, eid, suggestion, lease)
            assert info.value.status == 404
    finally:
        ctx.store.dispose()
