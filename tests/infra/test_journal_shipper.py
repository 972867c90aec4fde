"""The journal shipper against moto's CloudWatch Logs: batches arrive, restarts resume by cursor.

journalctl itself is replaced by a small script reading a JSON-lines file (journald does not run
in the test container); it honours --after-cursor like the real one.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.runtime import journal_shipper
from tests.infra.conftest import MotoServer

GROUP = "/optfleet/9/agent"
NOW_US = int(time.time() * 1_000_000)  # CloudWatch rejects events older than 14 days
FAKE_JOURNALCTL = """#!{python}
import json, sys
args = sys.argv[1:]
after = args[args.index("--after-cursor") + 1] if "--after-cursor" in args else None
assert args[:2] == ["--unit", "optfleet-agent.service"], args
seen = after is None
for line in open({entries!r}):
    if seen:
        sys.stdout.write(line)
    elif line.startswith("{{") and json.loads(line).get("__CURSOR") == after:
        seen = True
"""


def _entry(n: int, message: Any) -> str:
    return json.dumps(
        {
            "__CURSOR": f"s=abc;i={n}",
            "__REALTIME_TIMESTAMP": str(NOW_US + n * 1000),
            "MESSAGE": message,
        }
    )


@pytest.fixture
def logs(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in {
        "AWS_ENDPOINT_URL": moto_server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    moto_server.reset()
    client = boto3.client("logs", region_name="us-east-1")
    client.create_log_group(logGroupName=GROUP)
    return client


def _messages(client: Any) -> list[str]:
    events = client.get_log_events(logGroupName=GROUP, logStreamName="i-0abc", startFromHead=True)[
        "events"
    ]
    return [e["message"] for e in events]


def test_ships_entries_and_resumes_after_the_saved_cursor(logs: Any, tmp_path: Path) -> None:
    entries = tmp_path / "journal.jsonl"
    fake = tmp_path / "journalctl"
    fake.write_text(FAKE_JOURNALCTL.format(python=sys.executable, entries=str(entries)))
    fake.chmod(0o755)
    cursor = tmp_path / "state" / "cursor"
    argv = [
        "--unit", "optfleet-agent.service", "--log-group", GROUP, "--region", "us-east-1",
        "--stream", "i-0abc", "--cursor-file", str(cursor), "--journalctl", str(fake),
        "--flush-interval", "0.2",
    ]  # fmt: skip

    entries.write_text(
        "\n".join(
            [
                _entry(1, "started"),
                "not json",
                _entry(2, list(b"bytes \xe2\x9c\x93")),
                _entry(3, "evaluating"),
            ]
        )
        + "\n"
    )
    assert journal_shipper.main(argv) == 0
    assert _messages(logs) == ["started", "bytes \u2713", "evaluating"]
    assert cursor.read_text().strip() == "s=abc;i=3"

    with entries.open("a") as out:
        out.write(_entry(4, "observation reported") + "\n" + _entry(5, "done") + "\n")
    assert journal_shipper.main(argv) == 0  # a restart: the stream exists, only new entries go
    assert _messages(logs) == [
        "started",
        "bytes \u2713",
        "evaluating",
        "observation reported",
        "done",
    ]
    assert cursor.read_text().strip() == "s=abc;i=5"


def test_journal_command_follows_after_the_cursor() -> None:
    assert journal_shipper.journal_command("journalctl", "u.service", None)[-1] == "--no-pager"
    assert journal_shipper.journal_command("journalctl", "u.service", "c1")[-2:] == [
        "--after-cursor",
        "c1",
    ]


def test_batches_respect_cloudwatch_limits() -> None:
    sent: list[int] = []

    class Client:
        def put_log_events(self, **kwargs: Any) -> None:
            sent.append(len(kwargs["logEvents"]))

    class NoCursor(journal_shipper.CursorFile):
        def write(self, cursor: str) -> None:
            pass

    shipper = journal_shipper.Shipper(Client(), GROUP, "s", NoCursor(Path("unused")))
    big = "x" * 200_000
    for n in range(12):
        shipper.add({"timestamp": n, "message": big}, f"c{n}")
    shipper.flush()
    assert sum(sent) == 12
    assert max(sent) * (200_000 + 26) <= journal_shipper.MAX_BATCH_BYTES
