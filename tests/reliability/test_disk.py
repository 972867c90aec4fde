"""A full or read-only agent state directory: a clear error, an intact journal, no lost result.

The state directory is a tiny tmpfs mount (root only), filled up or remounted read-only while the
agent works. Afterwards space comes back (or the mount turns writable again) and a restarted agent
finishes: every suggestion has exactly one observation.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.helpers import AgentProcess, Api
from tests.reliability.agents import assert_exactly_once
from tests.reliability.conftest import TOKEN
from tests.support.ports import wait_until
from tests.support.server import RunningServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted at tmp_path/state (the agent's state directory)."""
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)],
                   check=True)  # fmt: skip
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory``; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def journal_records(state: Path) -> list[dict[str, object]]:
    """Every journal record parses (a torn record would raise here)."""
    return [json.loads(p.read_text()) for p in sorted((state / "journal").glob("*.json"))]


EXIT_STATE_DIR = 5  # worker_bootstrap/cli.py, docs/agent.md "Exit codes"


def state_dir_error(agent: AgentProcess, cause: str) -> str:
    """The agent's structured ``agent_error`` line about its state directory, naming the cause."""
    errors = [
        str(e.get("error")) for e in agent.events("agent_error") if e.get("kind") == "state_dir"
    ]
    assert errors, f"no agent_error line of kind state_dir:\n{agent.output()[-4000:]}"
    assert cause in errors[-1], errors[-1]
    assert "Traceback" not in agent.output(), agent.output()[-4000:]
    return errors[-1]


def no_temporary_files(state: Path) -> bool:
    """A failed atomic write removed its temporary file."""
    return not list((state / "journal").glob(".*.tmp"))


def remount(mount: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def test_disk_fills_during_an_evaluation(
    sqlite_server: RunningServer, small_disk: Path, tmp_path: Path
) -> None:
    api = Api(sqlite_server.url, TOKEN)
    eid = api.create_experiment(budget=3, name="disk-full")
    release = tmp_path / "release"
    from tests.agent.helpers import emulator

    with emulator("i-0diskfull000001") as imds:
        agent = AgentProcess(
            sqlite_server.url, TOKEN, eid, imds.url, small_disk, mode="wait",
            env={"EVAL_RELEASE": str(release)},
        )  # fmt: skip
        agent.start()
        wait_until(lambda: len(agent.evaluations()) >= 1, 60, "first evaluation started")
        filler = fill(small_disk)
        release.write_text("go")
        assert agent.wait(60) == EXIT_STATE_DIR, agent.output()
        error = state_dir_error(agent, "No space left on device")
        assert f"state directory {small_disk} is full" in error
        assert "(ENOSPC) at journal/" in error  # names the file it could not write
        assert no_temporary_files(small_disk)
        # The journal is intact and the suggestion is still open and ours on the server.
        records = journal_records(small_disk)
        open_now = api.open_suggestions(eid)
        assert [s["metadata"]["instance_id"] for s in open_now] == ["i-0diskfull000001"]
        assert [r["suggestion_id"] for r in records] == [str(open_now[0]["id"])]
        # Space comes back: the restarted agent resumes and finishes.
        filler.unlink()
        release.write_text("go")
        assert agent.run(120) == 0, agent.output()
    assert_exactly_once(api, eid, [agent])
    assert agent.events("suggestion_resumed")


def test_state_directory_turns_read_only(sqlite_server: RunningServer, small_disk: Path) -> None:
    api = Api(sqlite_server.url, TOKEN)
    eid = api.create_experiment(budget=3, name="read-only")
    from tests.agent.helpers import emulator

    with emulator("i-0readonly000001") as imds:
        agent = AgentProcess(sqlite_server.url, TOKEN, eid, imds.url, small_disk)
        # A result computed and journaled, not yet reported: the agent dies right there.
        assert agent.run(60, OPTFLEET_TEST_CRASH_AT="after_evaluation") != 0
        before = journal_records(small_disk)
        assert [r["stage"] for r in before] == ["evaluated"]
        remount(small_disk, "ro")
        try:
            assert agent.run(60) == EXIT_STATE_DIR, agent.output()
            error = state_dir_error(agent, "Read-only file system")
            assert f"state directory {small_disk} is read-only" in error
            # Nothing changed on disk, and the journaled result was not lost: it reached the
            # server, or it is still journaled for the next start.
            after = journal_records(small_disk)
            assert after == before
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                remount(small_disk, "rw")
        assert agent.run(120) == 0, agent.output()
    per_suggestion = assert_exactly_once(api, eid, [agent])
    sid = str(before[0]["suggestion_id"])
    observation = next(o for o in api.observations(eid) if str(o["suggestion"]) == sid)
    journaled = before[0]["observation"]
    assert isinstance(journaled, dict)
    assert observation["values"][0]["value"] == journaled["values"][0]["value"]
    assert per_suggestion[sid] == 1
