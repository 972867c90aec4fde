"""Parallel workers: open suggestions on a small discrete space never share assignments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from suggestion_server.optimizer.api import ParameterSpec, SearchSpec
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows

GRID_10X10 = (ParameterSpec("a", "int", 1, 10), ParameterSpec("b", "int", 1, 10))


def duplicates(points: Sequence[tuple[object, ...]]) -> int:
    return sum(count - 1 for count in Counter(points).values())


@pytest.mark.parametrize("kind", ["offline", "random"])
@pytest.mark.parametrize("completed_first", [0, 20])
def test_forty_open_suggestions_on_a_10x10_grid_are_distinct(
    kind: str, completed_first: int
) -> None:
    spec = SearchSpec(1, kind, GRID_10X10, ("y",), ("maximize",))  # type: ignore[arg-type]
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=21)
    for _ in range(completed_first):
        sid, a = rows.create_suggestion(engine)
        rows.observe(sid, {"y": -abs(int(a["a"]) - 5) - abs(int(a["b"]) - 5)})
    open_points = [tuple(rows.create_suggestion(engine)[1].values()) for _ in range(40)]
    assert duplicates(open_points) == 0


def test_the_model_alone_avoids_open_points_once_it_models() -> None:
    # After start-up the model itself should rarely collide: few proposals need asking again.
    spec = SearchSpec(1, "offline", GRID_10X10, ("y",), ("maximize",))
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=5)
    for _ in range(20):
        sid, a = rows.create_suggestion(engine)
        rows.observe(sid, {"y": -abs(int(a["a"]) - 5) - abs(int(a["b"]) - 5)})
    before = (engine.cached_trial_states(1) or {}).get("FAIL", 0)
    for _ in range(40):
        rows.create_suggestion(engine)
    discarded = (engine.cached_trial_states(1) or {}).get("FAIL", 0) - before
    # Measured: 0-1 with the liar or the GP's open-point exclusion, 205-223 without.
    assert discarded <= 5


def test_every_point_of_a_tiny_space_is_handed_out_before_any_repeats() -> None:
    spec = SearchSpec(
        1,
        "offline",
        (ParameterSpec("a", "int", 1, 3), ParameterSpec("c", "categorical", categories=("x", "y"))),
        ("y",),
        ("maximize",),
    )
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=3)
    points = [tuple(rows.create_suggestion(engine)[1].values()) for _ in range(7)]
    assert len(set(points[:6])) == 6  # all six points open at once
    assert points[6] in set(points[:6])  # the seventh cannot avoid a duplicate, and still works


def test_free_point_draws_uniformly_among_free_points_only() -> None:
    import random

    from suggestion_server.optimizer.grid import free_point

    spec = SearchSpec(
        1,
        "offline",
        (ParameterSpec("x", "int", 0, 9), ParameterSpec("y", "int", 0, 9)),
        ("score",),
        ("maximize",),
    )
    rng = random.Random(3)

    def key(x: int, y: int) -> tuple[tuple[str, int], ...]:
        return (("x", x), ("y", y))

    # Mostly free (rejection sampling): never a taken point, every free one reachable.
    taken = {key(x, y) for x in range(3) for y in range(10)}
    seen = Counter(tuple(sorted(free_point(spec, taken, rng).items())) for _ in range(7000))  # type: ignore[union-attr]
    assert not set(seen) & taken
    assert len(seen) == 70 and min(seen.values()) > 50  # uniform: ~100 each
    # Nearly all taken (enumeration): the one free point; all taken: None.
    everything = {key(x, y) for x in range(10) for y in range(10)}
    assert free_point(spec, everything - {key(7, 4)}, rng) == {"x": 7, "y": 4}
    assert free_point(spec, everything, rng) is None
