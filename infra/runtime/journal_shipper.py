"""Ship one systemd unit's journal to a CloudWatch Logs stream (runs on the instances).

    python -m infra.runtime.journal_shipper --unit optfleet-agent.service \
        --log-group /optfleet/42/agent --region us-east-1 \
        --cursor-file /var/lib/optfleet-logs/cursor

Why not the CloudWatch agent: it is not on the AMI (a ~100 MB install at boot) and reads files,
not the journal. This reads `journalctl -o json --follow`, sends batches with PutLogEvents (boto3
is in the agent's wheelhouse anyway) and records the journal cursor of the last entry sent, so a
restart resumes where it stopped: nothing is sent twice and nothing is skipped. Runs on the AMI's
Python 3.9; imports nothing from the CDK.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26  # CloudWatch counts 26 bytes per event on top of the message
MAX_MESSAGE_BYTES = 256 * 1024 - EVENT_OVERHEAD_BYTES
PUT_ATTEMPTS = 4
_EOF = object()


def instance_id_or_hostname(imds_endpoint: str) -> str:
    """This instance's id through IMDSv2 (2 s timeouts), or the host name off EC2."""
    import requests

    try:
        token = requests.put(
            f"{imds_endpoint}/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
            timeout=2,
        )
        token.raise_for_status()
        reply = requests.get(
            f"{imds_endpoint}/latest/meta-data/instance-id",
            headers={"X-aws-ec2-metadata-token": token.text},
            timeout=2,
        )
        reply.raise_for_status()
        return reply.text.strip()
    except requests.RequestException:
        return socket.gethostname()


class CursorFile:
    """The journal cursor of the last entry CloudWatch accepted, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Optional[str]:
        """The saved cursor, or None before the first batch."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def write(self, cursor: str) -> None:
        """Replace the saved cursor (write to a temp file, then rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(cursor + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def event_from_journal_line(line: str) -> Optional[Tuple[Dict[str, Any], str]]:
    """(CloudWatch event, journal cursor) from one `journalctl -o json` line; None if unusable."""
    try:
        entry = json.loads(line)
        cursor = str(entry["__CURSOR"])
        timestamp_ms = int(entry["__REALTIME_TIMESTAMP"]) // 1000
    except (ValueError, KeyError, TypeError):
        return None
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):  # journald encodes non-UTF-8 messages as byte arrays
        message = bytes(message).decode("utf-8", errors="replace")
    text = str(message).encode("utf-8")[:MAX_MESSAGE_BYTES].decode("utf-8", errors="ignore")
    return {"timestamp": timestamp_ms, "message": text or " "}, cursor


class Shipper:
    """Batches journal entries into PutLogEvents calls for one log stream."""

    def __init__(self, client: Any, log_group: str, stream: str, cursor_file: CursorFile) -> None:
        self.client = client
        self.log_group = log_group
        self.stream = stream
        self.cursor_file = cursor_file
        self.batch: List[Dict[str, Any]] = []
        self.batch_bytes = 0
        self.batch_cursor: Optional[str] = None
        self.sent = 0

    def ensure_stream(self) -> None:
        """Create the log stream unless it exists."""
        with contextlib.suppress(self.client.exceptions.ResourceAlreadyExistsException):
            self.client.create_log_stream(logGroupName=self.log_group, logStreamName=self.stream)

    def add(self, event: Dict[str, Any], cursor: str) -> None:
        """Queue one event; sends first when the batch would exceed CloudWatch's limits."""
        size = len(event["message"].encode("utf-8")) + EVENT_OVERHEAD_BYTES
        if self.batch and (
            len(self.batch) >= MAX_BATCH_EVENTS or self.batch_bytes + size > MAX_BATCH_BYTES
        ):
            self.flush()
        self.batch.append(event)
        self.batch_bytes += size
        self.batch_cursor = cursor

    def flush(self) -> None:
        """Send the queued events (bounded retries), then save the cursor of the last one."""
        if not self.batch:
            return
        events = sorted(self.batch, key=lambda e: int(e["timestamp"]))
        for attempt in range(1, PUT_ATTEMPTS + 1):
            try:
                reply = self.client.put_log_events(
                    logGroupName=self.log_group, logStreamName=self.stream, logEvents=events
                )
                rejected = (reply or {}).get("rejectedLogEventsInfo")
                if rejected:  # too old / too new events are dropped by CloudWatch: say so
                    print(
                        f"journal_shipper: CloudWatch rejected some events: {rejected}",
                        file=sys.stderr,
                    )
                break
            except Exception as exc:
                print(
                    f"journal_shipper: put_log_events attempt {attempt} failed: {exc}",
                    file=sys.stderr,
                )
                if attempt == PUT_ATTEMPTS:
                    raise
                time.sleep(2**attempt)
        self.sent += len(events)
        if self.batch_cursor is not None:
            self.cursor_file.write(self.batch_cursor)
        self.batch, self.batch_bytes, self.batch_cursor = [], 0, None


def journal_command(journalctl: str, unit: str, cursor: Optional[str]) -> List[str]:
    """The journalctl command line: all of the unit's entries after ``cursor``, then follow."""
    command = [
        journalctl,
        "--unit",
        unit,
        "--output",
        "json",
        "--follow",
        "--no-tail",
        "--no-pager",
    ]
    if cursor is not None:
        command += ["--after-cursor", cursor]
    return command


def _read_lines(stream: Any, lines: queue.Queue[Any]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(_EOF)


def ship(shipper: Shipper, command: List[str], flush_interval_s: float) -> int:
    """Run ``command`` and ship its JSON lines until it exits; returns its exit status."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - fixed journalctl argv from our unit, no shell
    if process.stdout is None:  # pragma: no cover - stdout=PIPE always gives one
        raise RuntimeError("journalctl has no stdout")
    lines: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + flush_interval_s
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is _EOF:
                break
            if line is not None:
                parsed = event_from_journal_line(line)
                if parsed is not None:
                    shipper.add(*parsed)
            if time.monotonic() >= deadline:
                shipper.flush()
                deadline = time.monotonic() + flush_interval_s
        shipper.flush()
    finally:
        if process.poll() is None:
            process.terminate()
        status = process.wait(timeout=10)
    return status


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="journal_shipper", description=__doc__.split("\n")[0])
    parser.add_argument("--unit", required=True)
    parser.add_argument("--log-group", required=True)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"))
    parser.add_argument("--stream", help="log stream name (default: the instance id)")
    parser.add_argument("--cursor-file", type=Path, required=True)
    parser.add_argument("--journalctl", default="journalctl", help="journalctl executable")
    parser.add_argument("--flush-interval", type=float, default=5.0, help="seconds between sends")
    parser.add_argument(
        "--imds-endpoint",
        default=os.environ.get(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254"
        ).rstrip("/"),
    )
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30
    )
    client = boto3.client("logs", region_name=args.region, config=config)
    stream = args.stream or instance_id_or_hostname(args.imds_endpoint)
    cursor_file = CursorFile(args.cursor_file)
    shipper = Shipper(client, args.log_group, stream, cursor_file)
    shipper.ensure_stream()
    status = ship(
        shipper,
        journal_command(args.journalctl, args.unit, cursor_file.read()),
        args.flush_interval,
    )
    print(
        f"journal_shipper: sent {shipper.sent} events to {args.log_group}/{stream}", file=sys.stderr
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
