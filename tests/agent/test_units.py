"""Unit tests of the agent's pure parts (run under python3.9 too: no server needed)."""

from __future__ import annotations

import errno
import json
import os
import random
from pathlib import Path

import pytest

from worker_bootstrap.adoption import lease_expiry, rendezvous_winner
from worker_bootstrap.config import ConfigError, layered, parse_env_file, settings_from
from worker_bootstrap.crash import CrashHook
from worker_bootstrap.journal import EVALUATED, Entry, Journal, state_dir_error
from worker_bootstrap.logs import EventLog, Redactor
from worker_bootstrap.metadata import MAX_STR_LEN, merged, tail
from worker_bootstrap.results import InvalidResult, outcome_from_text
from worker_bootstrap.retry import Backoff

BASE = {"OPTFLEET_EXPERIMENT_ID": "7", "SIGOPT_API_URL": "http://127.0.0.1:1"}


def test_journal_roundtrip_and_forget(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    entry = Entry(experiment_id="7", suggestion_id="42", assignments={"x": 0.5}, created=10)
    journal.save(entry)
    journal.checkpoint_dir("7", "42").mkdir()
    (journal.checkpoint_dir("7", "42") / "state").write_text("x")
    entry.stage = EVALUATED
    entry.observation = {"suggestion": "42", "values": [{"value": 1.0}]}
    journal.save(entry)
    loaded = journal.load("7", "42")
    assert loaded == entry
    assert [e.suggestion_id for e in journal.entries("7")] == ["42"]
    assert journal.entries("8") == []
    # No temporary files are left behind by atomic writes.
    assert sorted(p.name for p in journal.directory.iterdir()) == ["7-42.json"]
    journal.forget("7", "42")
    assert journal.load("7", "42") is None
    assert not journal.checkpoint_dir("7", "42").exists()


def test_a_failed_journal_write_keeps_the_old_record_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path)
    journal.save(Entry(experiment_id="7", suggestion_id="1", attempts=1))

    def disk_full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError) as caught:
        journal.save(Entry(experiment_id="7", suggestion_id="1", attempts=2, stage=EVALUATED))
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(journal.directory / "7-1.json")
    loaded = journal.load("7", "1")
    assert loaded is not None and loaded.attempts == 1  # the old record, untouched
    assert sorted(p.name for p in journal.directory.iterdir()) == ["7-1.json"]  # no temp file
    problem = state_dir_error(caught.value, tmp_path)
    assert str(problem) == (
        f"state directory {tmp_path} is full: No space left on device (ENOSPC) at journal/7-1.json"
    )


def test_state_dir_error_ignores_files_elsewhere(tmp_path: Path) -> None:
    elsewhere = OSError(errno.EROFS, os.strerror(errno.EROFS), "/etc/optfleet/agent.env")
    assert state_dir_error(elsewhere, tmp_path / "state") is None
    nameless = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert state_dir_error(nameless, tmp_path) is None
    sibling = OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "state2" / "x"))
    assert state_dir_error(sibling, tmp_path / "state") is None
    inside = OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "state" / "runs"))
    message = str(state_dir_error(inside, tmp_path / "state"))
    assert message.startswith(f"state directory {tmp_path / 'state'} is read-only: ")
    assert message.endswith("(EROFS) at runs")


def test_journal_ignores_a_torn_temporary_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.save(Entry(experiment_id="7", suggestion_id="1"))
    (journal.directory / ".7-2.json.tmp").write_text('{"experiment_id": "7", "sugg')
    assert [e.suggestion_id for e in journal.entries("7")] == ["1"]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ('{"value": 1.5}', [{"value": 1.5}]),
        ('{"value": 2, "value_stddev": 0.1}', [{"value": 2.0, "value_stddev": 0.1}]),
        (
            '{"values": [{"name": "a", "value": 1}, {"name": "b", "value": -3.5}]}',
            [{"name": "a", "value": 1.0}, {"name": "b", "value": -3.5}],
        ),
    ],
)
def test_results_accepted(text: str, values: list[dict[str, float]]) -> None:
    assert outcome_from_text(text).values == values


def test_result_failure_and_metadata() -> None:
    outcome = outcome_from_text('{"failed": true, "reason": "diverged", "metadata": {"k": 1}}')
    assert outcome.failed and "diverged" in str(outcome.failure_reason)
    assert outcome.metadata == {"k": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"value": NaN}', "NaN"),
        ('{"value": Infinity}', "Infinity"),
        ('{"value": 1.0', "not valid JSON"),
        ("", "empty"),
        ("[1]", "JSON object"),
        ('{"value": "high"}', "value must be a number"),
        ('{"value": true}', "value must be a number"),
        ('{"valu": 1}', "unknown keys"),
        ("{}", '"value", "values" or "failed"'),
        ('{"values": []}', "non-empty"),
        ('{"values": [{"name": "a", "value": 1, "value_stddev": -1}]}', ">= 0"),
    ],
)
def test_results_rejected_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidResult, match=message):
        outcome_from_text(text)


def test_metadata_limits() -> None:
    agent = {"instance_id": "i-1", "flag": True, "none": None, "bad\x00key": "v\x00"}
    extra = {f"k{n}": n for n in range(150)}
    extra["instance_id"] = "spoofed"
    extra["long"] = "x" * 900
    result = merged(agent, extra)
    assert len(result) == 100
    assert result["instance_id"] == "i-1" and result["flag"] == 1
    assert "none" not in result and result["badkey"] == "v"
    assert all(len(k) <= 100 for k in result)
    assert all(not isinstance(v, str) or len(v) <= MAX_STR_LEN for v in result.values())
    assert merged({"long": "y" * 900})["long"].endswith("…")
    assert len(tail("line\n" * 1000)) <= MAX_STR_LEN


def test_env_file_parsing() -> None:
    text = '# comment\n\n; other\nA=1\nB = two words \nC="q\\"uoted"\nD=\'single\'\n'
    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": 'q"uoted', "D": "single"}
    with pytest.raises(ConfigError, match="line 2"):
        parse_env_file("A=1\nnot a pair\n", name="agent.env")


def test_precedence_flags_file_env_tags() -> None:
    tags = {"Experiment": "from-tag", "OPTFLEET_WHEN_DONE": "stop", "SIGOPT_API_TOKEN": "leak"}
    environ = {"OPTFLEET_EXPERIMENT_ID": "from-env", "OPTFLEET_TIMEOUT": "5", "HOME": "/root"}
    env_file = {"OPTFLEET_TIMEOUT": "6", "SIGOPT_API_URL": "http://file"}
    flags = {"OPTFLEET_TIMEOUT": "7", "SIGOPT_API_URL": None}
    values = layered(flags, env_file, environ, tags)
    assert values["OPTFLEET_EXPERIMENT_ID"] == "from-env"
    assert values["OPTFLEET_TIMEOUT"] == "7"
    assert values["SIGOPT_API_URL"] == "http://file"
    assert values["OPTFLEET_WHEN_DONE"] == "stop"
    assert "SIGOPT_API_TOKEN" not in values  # never from tags
    assert layered({}, {}, {}, {"Experiment": "9"})["OPTFLEET_EXPERIMENT_ID"] == "9"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"SIGOPT_API_URL": "http://x"}, "OPTFLEET_EXPERIMENT_ID is not set"),
        ({"OPTFLEET_EXPERIMENT_ID": "1"}, "SIGOPT_API_URL is not set"),
        ({**BASE, "SIGOPT_API_URL": "ftp://x"}, "http:// or https://"),
        ({**BASE, "SIGOPT_API_URL": "http://x/v1"}, "without /v1"),
        ({**BASE, "OPTFLEET_TIMEOUT": "soon"}, "OPTFLEET_TIMEOUT='soon'"),
        ({**BASE, "OPTFLEET_TIMEOUT": "0"}, "> 0"),
        ({**BASE, "OPTFLEET_MAX_EVALUATIONS": "-1"}, "OPTFLEET_MAX_EVALUATIONS"),
        ({**BASE, "OPTFLEET_WHEN_DONE": "explode"}, "stay"),
        ({**BASE, "OPTFLEET_COMMAND": "python 'unclosed"}, "OPTFLEET_COMMAND"),
        ({**BASE, "OPTFLEET_ADOPT": "maybe"}, "true or false"),
    ],
)
def test_settings_errors_name_the_key(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(values)


def test_settings_defaults_and_command() -> None:
    settings = settings_from(
        {
            **BASE,
            "OPTFLEET_COMMAND": "python train.py --lr '0.1 0.2'",
            "SIGOPT_API_URL": "https://h:1/api/",
        }
    )
    assert settings.command == ["python", "train.py", "--lr", "0.1 0.2"]
    assert settings.api_url == "https://h:1/api"
    assert settings.state_dir == Path("/var/lib/optfleet")
    assert settings.timeout_s == 86400 and settings.when_done == "stay"
    assert settings.lease_ttl_s == 600
    assert settings.settle_s > settings.http_timeout_s


def test_backoff_is_bounded_and_jittered() -> None:
    slept: list[float] = []
    backoff = Backoff(attempts=5, base_s=0.5, cap_s=2.0, sleep=slept.append, rng=random.Random(3))
    for n in range(10):
        backoff.wait(n)
    assert all(0 <= d <= 2.0 for d in slept)
    assert len(set(slept)) == len(slept)  # jittered, not a fixed schedule
    assert all(d <= 0.5 * 2**n for n, d in enumerate(slept))


def test_rendezvous_election_is_deterministic_and_spread() -> None:
    live = {"i-a", "i-b", "i-c", "i-d"}
    winners = [rendezvous_winner(str(sid), live) for sid in range(400)]
    assert winners == [
        rendezvous_winner(str(sid), sorted(live, reverse=True)) for sid in range(400)
    ]
    counts = {inst: winners.count(inst) for inst in live}
    assert min(counts.values()) > 50  # every live instance gets a share
    # Removing a non-winner does not change the winner (rendezvous property).
    for sid, winner in enumerate(winners[:50]):
        loser = next(i for i in live if i != winner)
        assert rendezvous_winner(str(sid), live - {loser}) == winner


def test_lease_expiry_falls_back_to_created() -> None:
    assert lease_expiry({"metadata": {"lease_expires_at": "12.5"}}, 600) == 12.5
    assert lease_expiry({"metadata": None, "created": 100}, 600) == 700
    assert lease_expiry({"metadata": {"lease_expires_at": "soon"}, "created": 1}, 10) == 11


def test_crash_hook_fires_on_the_nth_occurrence() -> None:
    fired: list[int] = []
    hook = CrashHook("after_report", 2, kill=lambda: fired.append(1))
    hook.reached("after_evaluation")
    hook.reached("after_report")
    assert fired == []
    assert hook.armed("after_report")
    hook.reached("after_report")
    assert fired == [1]
    assert CrashHook.from_environ({"OPTFLEET_TEST_CRASH_AT": "during_evaluation@3"}).occurrence == 3
    with pytest.raises(ValueError, match="expected one of"):
        CrashHook.from_environ({"OPTFLEET_TEST_CRASH_AT": "whenever"})


def test_event_log_is_json_lines_without_secrets() -> None:
    import io

    stream = io.StringIO()
    redactor = Redactor()
    redactor.add("s3cr3t-token-value")
    log = EventLog(stream=stream, redactor=redactor, clock=lambda: 1.0)
    log.instance_id = "i-1"
    log.event("x", "5", error="auth s3cr3t-token-value failed")
    record = json.loads(stream.getvalue())
    assert record == {
        "ts": 1.0,
        "event": "x",
        "instance_id": "i-1",
        "experiment_id": None,
        "suggestion_id": "5",
        "error": "auth *** failed",
    }


def test_agent_start_path_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys, worker_bootstrap.cli, worker_bootstrap.runner, worker_bootstrap.agent\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
