"""The engine's cache: incremental reads, rebuilds on a new version, reconciling open trials."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from suggestion_server.optimizer.api import (
    ObservationRow,
    OpenSuggestionRow,
    ParameterSpec,
    SearchSpec,
)
from suggestion_server.optimizer.experiment_study import REREAD_WINDOW
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows

CONTINUOUS = (
    ParameterSpec("x", "double", 0.0, 1.0),
    ParameterSpec("lr", "double", 1e-5, 1e-1, log=True),
    ParameterSpec("layers", "int", 1, 8),
)


def offline_spec(experiment_id: int = 1) -> SearchSpec:
    return SearchSpec(experiment_id, "offline", CONTINUOUS, ("loss",), ("minimize",))


def grid_spec(experiment_id: int = 1) -> SearchSpec:
    params = (
        ParameterSpec("a", "int", 1, 3),
        ParameterSpec("b", "categorical", categories=("u", "v")),
    )
    return SearchSpec(experiment_id, "grid", params, ("y",), ("maximize",))


def run_evaluations(rows: MemoryRows, engine: StudySuggester, n: int) -> None:
    for _ in range(n):
        sid, assignments = rows.create_suggestion(engine)
        rows.observe(sid, {name: float(assignments["x"]) for name in rows.spec.metric_names})


def test_observations_are_read_incrementally_and_complete_their_running_trials() -> None:
    rows = MemoryRows(offline_spec())
    engine = StudySuggester(seed=3)
    run_evaluations(rows, engine, REREAD_WINDOW + 72)
    rows.create_suggestion(engine)

    # Each observation completed the running trial of its suggestion: no extra trials.
    assert engine.cached_trial_states(1) == {"COMPLETE": REREAD_WINDOW + 72, "RUNNING": 1}
    # The last reads started well past the beginning: only a trailing window is re-read.
    assert rows.reads[0] == 0
    assert rows.reads[-1] > 0
    assert len(rows.observations_after(rows.reads[-1])) <= REREAD_WINDOW + 1


def test_an_observation_committed_late_with_a_smaller_id_is_still_seen() -> None:
    rows = MemoryRows(offline_spec())
    engine = StudySuggester(seed=4)
    run_evaluations(rows, engine, 150)
    late_sid, late_assignments = rows.create_suggestion(engine)
    # The late observation takes its id now but commits only after 30 later ones were read.
    late_oid = rows.observe(late_sid, {"loss": 0.5})
    late_row = rows.observations.pop(late_oid)
    run_evaluations(rows, engine, 30)
    # The last observation is read by the next call; the late one looks open.
    assert engine.cached_trial_states(1) == {"COMPLETE": 179, "RUNNING": 2}
    assert rows.reads[-1] > 0  # incremental reads by now

    rows.observations[late_oid] = late_row
    rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) == {"COMPLETE": 181, "RUNNING": 1}
    assert late_assignments == late_row.assignments


def test_a_new_version_rebuilds_the_study_from_the_rows() -> None:
    rows = MemoryRows(offline_spec())
    engine = StudySuggester(seed=5)
    run_evaluations(rows, engine, 15)
    first_oid = min(rows.observations)
    rows.delete_observation(first_oid)
    rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) == {"COMPLETE": 14, "RUNNING": 1}
    assert rows.reads[-1] == 0  # rebuilt: read from the beginning


def test_an_edited_spec_rebuilds_even_without_a_version_bump() -> None:
    rows = MemoryRows(offline_spec())
    engine = StudySuggester(seed=6)
    run_evaluations(rows, engine, 12)
    narrowed = (ParameterSpec("x", "double", 0.0, 0.5), *CONTINUOUS[1:])
    rows.spec = SearchSpec(1, "offline", narrowed, ("loss",), ("minimize",))
    for _ in range(5):
        _, assignments = rows.create_suggestion(engine)
        assert 0.0 <= float(assignments["x"]) <= 0.5
    states = engine.cached_trial_states(1)
    assert states is not None and states["COMPLETE"] == 12  # out-of-range x dropped, not the row


def test_open_suggestions_become_running_trials_and_vanished_ones_are_discarded() -> None:
    rows = MemoryRows(grid_spec())
    engine = StudySuggester()
    first, _ = rows.create_suggestion(engine)
    second, _ = rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) == {"RUNNING": 2}

    rows.delete_suggestion(first)
    rolled_back = rows.rolled_back_suggestion(engine)
    assert rolled_back not in rows.suggestions
    _, after = rows.create_suggestion(engine)
    # Deleted and rolled-back suggestions no longer occupy their grid points.
    assert engine.cached_trial_states(1) == {"RUNNING": 2, "FAIL": 2}
    assert after == {"a": 1, "b": "u"}  # the deleted suggestion's point is free again
    assert second in {row.id for row in rows.open_suggestions()}


def test_a_fresh_engine_sees_open_suggestions_made_by_another_process() -> None:
    rows = MemoryRows(grid_spec())
    other = StudySuggester()
    for _ in range(2):
        rows.create_suggestion(other)
    fresh = StudySuggester()
    _, third = rows.create_suggestion(fresh)
    # Built from the rows, it sees the two open points and takes the next one.
    assert third == {"a": 2, "b": "u"}
    assert fresh.cached_trial_states(1) == {"RUNNING": 3}


def test_forget_drops_the_cached_study() -> None:
    rows = MemoryRows(offline_spec())
    engine = StudySuggester(seed=1)
    run_evaluations(rows, engine, 3)
    assert engine.cached_trial_states(1) is not None
    engine.forget(1)
    assert engine.cached_trial_states(1) is None
    rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) == {"COMPLETE": 3, "RUNNING": 1}


class _BrokenRows(MemoryRows):
    fail_next = False

    def open_suggestions(self) -> Sequence[OpenSuggestionRow]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database went away")
        return super().open_suggestions()


def test_an_error_while_reading_rows_drops_the_half_updated_study() -> None:
    rows = _BrokenRows(grid_spec())
    engine = StudySuggester()
    rows.create_suggestion(engine)
    rows.fail_next = True
    with pytest.raises(ConnectionError):
        rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) is None
    _, point = rows.create_suggestion(engine)
    assert point == {"a": 1, "b": "v"}  # rebuilt from the rows: one open suggestion


def test_manual_observations_without_a_suggestion_are_added() -> None:
    rows = MemoryRows(grid_spec())
    engine = StudySuggester()
    rows.observe(None, {"y": 1.0}, assignments={"a": 1, "b": "u"})
    rows.observe(None, {"y": 1.0}, assignments={"a": 99, "b": "u"})  # out of range: a dropped
    rows.observe(None, None, failed=True, assignments={"a": 1, "b": "v"})
    _, point = rows.create_suggestion(engine)
    assert point == {"a": 2, "b": "u"}
    assert engine.cached_trial_states(1) == {"COMPLETE": 3, "RUNNING": 1}


def test_unusable_observation_values_are_skipped_without_crashing() -> None:
    rows = MemoryRows(offline_spec())
    engine = StudySuggester(seed=2)
    sid, _ = rows.create_suggestion(engine)
    rows.observe(sid, {"other_metric": 1.0})  # no value for the optimized metric
    rows.observe(None, {"loss": 1.0}, assignments={"x": "not a number", "unknown": 3})
    rows.observations[99] = ObservationRow(99, None, {"x": 0.5}, {"loss": float("nan")}, False)
    rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) == {"RUNNING": 1, "FAIL": 1}


def test_concurrent_experiments_on_threads_keep_their_own_studies() -> None:
    engine = StudySuggester(seed=7, max_cached_experiments=4)
    errors: list[BaseException] = []
    stores = [MemoryRows(offline_spec(experiment_id)) for experiment_id in range(1, 7)]

    def work(rows: MemoryRows) -> None:
        try:
            run_evaluations(rows, engine, 15)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(rows,)) for rows in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert all(len(rows.observations) == 15 for rows in stores)
    cached = [engine.cached_trial_states(rows.spec.experiment_id) for rows in stores]
    assert sum(states is not None for states in cached) <= 4  # bounded cache
    for states in cached:
        assert states is None or states.get("COMPLETE", 0) <= 15
