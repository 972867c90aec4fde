"""A small in-memory store implementing ``RowSource``, so engine tests run real Optuna on rows."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field

from suggestion_server.optimizer.api import (
    AssignmentValue,
    ObservationRow,
    OpenSuggestionRow,
    SearchSpec,
    Suggester,
)


@dataclass
class MemoryRows:
    """Suggestions and observations of one experiment, with a version like the real store.

    Ids come from one counter per table, as database sequences would. ``reads`` records the
    ``observations_after`` arguments so tests can see incremental reading.
    """

    spec: SearchSpec
    version: int = 1
    suggestions: dict[int, dict[str, AssignmentValue]] = field(default_factory=dict)
    observations: dict[int, ObservationRow] = field(default_factory=dict)
    deleted_suggestions: set[int] = field(default_factory=set)
    closed_suggestions: set[int] = field(default_factory=set)
    reads: list[int] = field(default_factory=list)
    _next_suggestion_id: int = 1
    _next_observation_id: int = 1

    # RowSource ---------------------------------------------------------------------------

    def observations_after(
        self, observation_id: int, known: Container[int] = ()
    ) -> Sequence[ObservationRow]:
        self.reads.append(observation_id)  # ``known`` rows may be returned anyway
        return [row for oid, row in sorted(self.observations.items()) if oid > observation_id]

    def open_suggestions(self) -> Sequence[OpenSuggestionRow]:
        # As on the wire: a suggestion stays closed once an observation referenced it, even if
        # that observation is deleted later.
        observed = {row.suggestion_id for row in self.observations.values()}
        return [
            OpenSuggestionRow(id=sid, assignments=assignments)
            for sid, assignments in sorted(self.suggestions.items())
            if sid not in observed
            and sid not in self.closed_suggestions
            and sid not in self.deleted_suggestions
        ]

    # What the server would do ------------------------------------------------------------

    def create_suggestion(self, engine: Suggester) -> tuple[int, dict[str, AssignmentValue]]:
        """Insert a suggestion row, ask the engine for its assignments, store them."""
        sid = self._next_suggestion_id
        self._next_suggestion_id += 1
        assignments = engine.propose(self.spec, self.version, self, sid)
        self.suggestions[sid] = assignments
        return sid, assignments

    def observe(
        self,
        suggestion_id: int | None,
        values: Mapping[str, float] | None,
        failed: bool = False,
        assignments: Mapping[str, AssignmentValue] | None = None,
    ) -> int:
        """Insert an observation (for a suggestion, or with manual assignments)."""
        oid = self._next_observation_id
        self._next_observation_id += 1
        if assignments is None:
            assert suggestion_id is not None
            assignments = self.suggestions[suggestion_id]
        self.observations[oid] = ObservationRow(
            id=oid,
            suggestion_id=suggestion_id,
            assignments=dict(assignments),
            values=None if values is None else dict(values),
            failed=failed,
        )
        return oid

    def delete_observation(self, observation_id: int) -> None:
        """Delete an observation: its suggestion stays closed, the store bumps the version."""
        row = self.observations.pop(observation_id)
        if row.suggestion_id is not None:
            self.closed_suggestions.add(row.suggestion_id)
        self.version += 1

    def delete_suggestion(self, suggestion_id: int) -> None:
        self.deleted_suggestions.add(suggestion_id)

    def rolled_back_suggestion(self, engine: Suggester) -> int:
        """A create whose transaction fails after the engine proposed: the row vanishes."""
        sid = self._next_suggestion_id
        self._next_suggestion_id += 1
        engine.propose(self.spec, self.version, self, sid)
        return sid
