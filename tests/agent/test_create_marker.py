"""The create-in-flight marker outlives a restarted agent's own creates until accounted for."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker_bootstrap.create_marker import CreateMarker


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_fresh_state_directory_has_nothing_to_wait_for(tmp_path: Path) -> None:
    marker = CreateMarker(tmp_path, Clock(100.0))
    assert not marker.inherited
    with marker.creating():
        assert marker.path.exists()
    assert not marker.path.exists()
    assert marker.wait_left_s(10.0) == 0.0


def test_a_create_killed_in_flight_is_waited_for_from_its_start(tmp_path: Path) -> None:
    clock = Clock(100.0)
    dead = CreateMarker(tmp_path, clock)
    with pytest.raises(KeyboardInterrupt), dead.creating():
        raise KeyboardInterrupt  # stands for the kill: the marker stays
    # With SIGKILL no finally runs at all; write what the killed process left.
    dead.path.write_text("100.0")
    clock.now = 104.0
    restarted = CreateMarker(tmp_path, clock)
    assert restarted.inherited
    assert restarted.wait_left_s(10.0) == pytest.approx(6.0)
    clock.now = 200.0
    assert restarted.wait_left_s(10.0) == 0.0  # long landed (or never will)


def test_the_restarted_agents_own_creates_do_not_erase_the_inherited_marker(
    tmp_path: Path,
) -> None:
    clock = Clock(100.0)
    (tmp_path / "create-in-flight").write_text("100.0")
    restarted = CreateMarker(tmp_path, clock)
    clock.now = 102.0
    with restarted.creating():
        pass
    assert restarted.inherited and restarted.path.exists()
    # A process killed now hands both creates on; the wait covers the later one.
    assert CreateMarker(tmp_path, clock).wait_left_s(10.0) == pytest.approx(10.0)
    restarted.settled()
    assert not restarted.inherited and not restarted.path.exists()
    assert restarted.wait_left_s(10.0) == 0.0


def test_an_unreadable_marker_means_wait_the_whole_timeout(tmp_path: Path) -> None:
    (tmp_path / "create-in-flight").write_text("")  # killed between open and write
    marker = CreateMarker(tmp_path, Clock(500.0))
    assert marker.wait_left_s(10.0) == pytest.approx(10.0)


def test_only_a_suggestion_created_after_the_inherited_create_settles_it(tmp_path: Path) -> None:
    (tmp_path / "create-in-flight").write_text("100.0")
    marker = CreateMarker(tmp_path, Clock(105.0))
    marker.picked_up(90)  # an older never-started one: the create in flight is still pending
    assert marker.inherited
    marker.picked_up(None)  # a server that does not say when: keep waiting at the last look
    assert marker.inherited
    marker.picked_up(101)
    assert not marker.inherited and not marker.path.exists()
