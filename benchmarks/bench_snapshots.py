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

Baseline in the same invocation: the same file copied with boto3's transfer manager alone
(``upload_file``/``download_file`` with the store's own part size), so the ratio is what the
snapshot protocol (staging copy, manifest, version listing) adds. Writes the `snapshots` section of
docs/benchmarks.md.

Run: .venv/bin/python -m benchmarks.bench_snapshots [--sizes 10M,1G] [--repeat 3]
     [--boot-s 90] [--interval-s 60] [--no-write]
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

from benchmarks._report import machine_description, markdown_table, write_section
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
    ups, downs, plain_ups, plain_downs = [], [], [], []
    # The store's own part size: boto3's default (8 MiB) makes moto serve a 1 GiB download as
    # 128 ranged GETs of a multipart object, ten times slower than the store's 64 MiB parts.
    transfer = store.transfer
    for n in range(repeat):
        started = time.perf_counter()
        s3.upload_file(str(source / "model.bin"), bucket, "plain/model.bin", Config=transfer)
        plain_ups.append(time.perf_counter() - started)
        started = time.perf_counter()
        s3.download_file(bucket, "plain/model.bin", str(workdir / "plain.bin"), Config=transfer)
        plain_downs.append(time.perf_counter() - started)
        (workdir / "plain.bin").unlink()
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
    s3.delete_object(Bucket=bucket, Key="plain/model.bin")
    up, down = statistics.median(ups), statistics.median(downs)
    plain_up, plain_down = statistics.median(plain_ups), statistics.median(plain_downs)
    return {
        "plain_upload_s": round(plain_up, 3),
        "plain_download_s": round(plain_down, 3),
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
    parser.add_argument("--no-write", action="store_true", help="print only")
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
    body = report(results, args.boot_s, args.interval_s)
    if args.no_write:
        print(body)
    else:
        write_section("snapshots", body)
    return 0


def _size_label(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size >= UNITS[unit] and size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]} {unit}iB"
    return f"{size} B"


def report(results: list[dict[str, Any]], boot_s: float, interval_s: float) -> str:
    """The section: transfer times against boto3 alone, and the wasted instance-seconds."""
    transfers = [
        [_size_label(r["bytes"]), r["runs"], f"{r['upload_s']:.2f}", f"{r['plain_upload_s']:.2f}",
         f"{r['upload_s'] / r['plain_upload_s']:.2f}", f"{r['download_s']:.2f}",
         f"{r['plain_download_s']:.2f}", f"{r['download_s'] / r['plain_download_s']:.2f}",
         f"{r['upload_mb_per_s']:.0f} / {r['download_mb_per_s']:.0f}"]
        for r in results
    ]  # fmt: skip
    lost = [
        [_size_label(r["bytes"]), f"{w['before_s']:.0f}",
         f"{w['after_with_sigterm_checkpoint_s']:.0f}",
         f"{w['after_worst_case_s']:.0f}", f"{w['after_worst_case_s'] / w['before_s']:.2f}"]
        for r in results
        for w in [r["wasted_per_interruption"]]
    ]  # fmt: skip
    return "\n\n".join(
        [
            "## Checkpoint snapshots: transfer and the instance-seconds an interruption wastes",
            machine_description(["boto3", "moto"]),
            "One checkpoint directory holding one file of random bytes, published and fetched "
            "through the agent's `SnapshotStore` (staging copy, versioned upload, manifest "
            "written last; multipart above 64 MiB) against moto's S3 in server mode on loopback, "
            "median of the runs. Baseline in the same invocation: the same file through boto3's "
            "transfer manager alone, with the same 64 MiB parts. moto is an in-memory S3 on the "
            "same 2 cores, so these are the agent's code path's figures, not S3's.",
            markdown_table(
                [
                    "checkpoint",
                    "runs",
                    "upload s",
                    "boto3 alone s",
                    "ratio",
                    "download s",
                    "boto3 alone s",
                    "ratio",
                    "MB/s up / down",
                ],
                transfers,
            ),
            f"Wasted instance-seconds per spot interruption of a 600 s evaluation at 60 %, with "
            f"an adopter booting in {boot_s:g} s (assumed, not measured here) and checkpoints "
            f"every {interval_s:g} s: before, the adopter redoes 360 s; after, it redoes nothing "
            "when the evaluation checkpoints in its SIGTERM handler, at most one interval when "
            "it does not, plus the upload and download above.",
            markdown_table(
                [
                    "checkpoint",
                    "before s",
                    "after, SIGTERM checkpoint s",
                    "after, worst case s",
                    "worst case / before",
                ],
                lost,
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
