"""Checkpoint snapshots (issue 22): upload and download throughput against moto's S3 in server
mode on loopback, through the agent's own SnapshotStore (multipart above 64 MiB), and the wasted
instance-seconds per spot interruption they imply for the issue's case: a 600 s evaluation
interrupted at 60 %.

Wasted instance-seconds = the work the adopter must redo + the time the hand-over itself costs.
Before: 360 s of redone work (it starts from zero) + the adopter's boot. After: the adopter's
boot + the upload after the SIGTERM handler + the download, and nothing redone when the handler
checkpoints; an evaluation without a SIGTERM handler redoes at most one checkpoint interval. Boot
time is not measured here (it is the EC2 instance's: pass --boot-s); moto is a local, in-memory
S3, so its throughput is an upper bound of what the agent's code path allows, not S3's.

Run: .venv/bin/python -m benchmarks.bench_snapshots [--sizes 10M,1G] [--repeat 3]
     [--boot-s 90] [--interval-s 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import requests

from tests.support.ports import free_port, wait_until
from worker_bootstrap.snapshots.location import SnapshotLocation
from worker_bootstrap.snapshots.manifest import Manifest
from worker_bootstrap.snapshots.store import SnapshotStore, files_of

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_of(text: str) -> int:
    return int(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else int(text)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    moto = str(Path(sys.executable).with_name("moto_server"))
    proc = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/moto-api/", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(up, 60, "moto server")
    return proc, url


def measure(url: str, size: int, repeat: int, workdir: Path) -> dict[str, Any]:
    s3: Any = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto accepts any key
    )
    bucket = f"bench-{time.time_ns()}"
    s3.create_bucket(Bucket=bucket)
    store = SnapshotStore(s3, SnapshotLocation(bucket, "checkpoints/"), "1")
    source = workdir / f"source-{size}"
    source.mkdir()
    with (source / "model.bin").open("wb") as handle:
        left = size
        while left:
            chunk = min(left, 64 << 20)
            handle.write(os.urandom(chunk))
            left -= chunk
    ups, downs = [], []
    for n in range(repeat):
        manifest = Manifest("", "i-0bench", 0, 1, n, time.time(), 0.0, files_of(source))
        started = time.perf_counter()
        published = store.publish("7", source, manifest)
        ups.append(time.perf_counter() - started)
        target = workdir / f"fetched-{size}-{n}"
        started = time.perf_counter()
        store.fetch("7", published, target)
        downs.append(time.perf_counter() - started)
        (target / "model.bin").unlink()
    store.close("7")
    (source / "model.bin").unlink()
    up, down = statistics.median(ups), statistics.median(downs)
    return {
        "bytes": size,
        "upload_s": round(up, 3),
        "download_s": round(down, 3),
        "upload_mb_per_s": round(size / up / 1e6, 1),
        "download_mb_per_s": round(size / down / 1e6, 1),
        "runs": repeat,
    }


def wasted(transfer: dict[str, Any], boot_s: float, interval_s: float) -> dict[str, float]:
    """Instance-seconds lost per interruption of a 600 s evaluation at 60 %."""
    hand_over = transfer["upload_s"] + transfer["download_s"]
    return {
        "before_s": 360.0 + boot_s,
        "after_with_sigterm_checkpoint_s": round(boot_s + hand_over, 1),
        "after_worst_case_s": round(boot_s + interval_s + hand_over, 1),
        "target_s": round(boot_s + interval_s + hand_over, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10M,1G")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--boot-s", type=float, default=90.0)
    parser.add_argument("--interval-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    proc, url = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-snapshots-") as tmp:
            results = []
            for text in args.sizes.split(","):
                transfer = measure(url, size_of(text), args.repeat, Path(tmp))
                transfer["wasted_per_interruption"] = wasted(transfer, args.boot_s, args.interval_s)
                results.append(transfer)
                print(json.dumps(transfer), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
