"""Snapshots in S3 (moto's server mode on loopback): one consistent snapshot per manifest, old
versions deleted once the manifest moved, all of it once the observation landed, and the faults:
an upload failing half-way, a slow upload overlapping a later owner's, a half-deleted version."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from tests.agent.test_aws import client, moto  # noqa: F401 - moto is a fixture
from worker_bootstrap.config import ConfigError, settings_from
from worker_bootstrap.evaluation import Context, Task
from worker_bootstrap.snapshots.location import SnapshotLocation, parse_location
from worker_bootstrap.snapshots.manifest import Manifest
from worker_bootstrap.snapshots.marker import read_mark, write_mark
from worker_bootstrap.snapshots.store import (
    SnapshotError,
    SnapshotStore,
    Superseded,
    files_of,
)

EXPERIMENT = "42"
SID = "7"


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket on moto's server."""

    moto: str
    name: str

    def s3(self) -> Any:
        return client(self.moto, "s3")

    def store(self, s3: Any = None) -> SnapshotStore:
        location = SnapshotLocation(bucket=self.name, prefix="checkpoints/")
        return SnapshotStore(s3 or self.s3(), location, EXPERIMENT)

    def objects(self) -> list[str]:
        found = self.s3().list_objects_v2(Bucket=self.name).get("Contents", [])
        return sorted(str(item["Key"]) for item in found)


@pytest.fixture()
def bucket(moto: str) -> Bucket:  # noqa: F811 - the fixture imported above
    name = f"ckpt-{time.time_ns()}"
    client(moto, "s3").create_bucket(Bucket=name)
    return Bucket(moto, name)


def checkpoint(directory: Path, **files: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = directory / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


def publish(store: SnapshotStore, source: Path, instance: str, generation: int = 0,
            step: int = 1) -> Manifest:  # fmt: skip
    manifest = Manifest(
        version="",
        instance_id=instance,
        generation=generation,
        attempt=generation + 1,
        step=step,
        saved_at=time.time(),
        uploaded_at=0.0,
        files=files_of(source),
    )
    return store.publish(SID, source, manifest)


def contents(directory: Path) -> dict[str, bytes]:
    return {f.path: (directory / f.path).read_bytes() for f in files_of(directory)}


def test_a_snapshot_round_trips_and_old_versions_go_once_the_manifest_moved(
    bucket: Bucket, tmp_path: Path
) -> None:
    store = bucket.store()
    # 12 MiB above a 5 MiB threshold: uploaded and downloaded in parts.
    store.transfer = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    big = bytes(range(256)) * (12 << 12)
    first = checkpoint(tmp_path / "one", model=b"step-1", nested__opt=b"adam", big=big)
    published = publish(store, first, "i-0owner", step=1)
    latest = store.latest(SID)
    assert latest == published and latest.step == 1 and latest.total_bytes == len(big) + 10
    big_key = next(k for k in bucket.objects() if k.endswith("/big"))
    etag = bucket.s3().head_object(Bucket=bucket.name, Key=big_key)["ETag"]
    assert etag.strip('"').endswith("-3")  # three parts
    fetched = tmp_path / "fetched"
    assert store.fetch(SID, latest, fetched) == latest.total_bytes
    assert contents(fetched) == contents(first)

    second = checkpoint(tmp_path / "two", model=b"step-2")
    publish(store, second, "i-0owner", step=2)
    prefix = f"checkpoints/{EXPERIMENT}/{SID}/"
    stored = bucket.objects()
    assert prefix + "manifest.json" in stored
    versions = {k.split("/")[5] for k in stored if "/versions/" in k}
    assert len(versions) == 1 and [k for k in stored if k.endswith("/model")]
    assert not [k for k in stored if k.endswith("/big")]  # the first version is gone
    again = tmp_path / "again"
    latest = store.latest(SID)
    assert latest is not None and latest.step == 2
    store.fetch(SID, latest, again)
    assert contents(again) == {"model": b"step-2"}


class FailingOnSecondFile:
    """An S3 client whose upload dies after one file went up: the network failing half-way."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.uploads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def upload_file(self, *args: Any, **kwargs: Any) -> None:
        self.uploads += 1
        if self.uploads == 2:
            raise ConnectionResetError("connection reset by peer")
        self.real.upload_file(*args, **kwargs)


def test_an_upload_failing_half_way_leaves_the_last_complete_snapshot(
    bucket: Bucket, tmp_path: Path
) -> None:
    good = bucket.store()
    publish(good, checkpoint(tmp_path / "one", a=b"1", b=b"1"), "i-0owner", step=1)
    before = bucket.objects()
    failing = bucket.store(FailingOnSecondFile(bucket.s3()))
    with pytest.raises(SnapshotError, match="connection reset"):
        publish(failing, checkpoint(tmp_path / "two", a=b"2", b=b"2"), "i-0owner", step=2)
    latest = good.latest(SID)
    assert latest is not None and latest.step == 1
    assert bucket.objects() == before  # the half-uploaded version was removed again
    fetched = tmp_path / "fetched"
    good.fetch(SID, latest, fetched)
    assert contents(fetched) == {"a": b"1", "b": b"1"}


class GatedManifestRead:
    """An S3 client that stalls before its manifest check until ``gate`` opens: a slow upload."""

    def __init__(self, real: Any, gate: threading.Event, reached: threading.Event) -> None:
        self.real = real
        self.gate = gate
        self.reached = reached

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def get_object(self, **kwargs: Any) -> Any:
        if str(kwargs.get("Key", "")).endswith("manifest.json"):
            self.reached.set()
            assert self.gate.wait(60)
        return self.real.get_object(**kwargs)


def test_a_slow_upload_overlapping_a_new_owner_never_replaces_its_snapshot(
    bucket: Bucket, tmp_path: Path
) -> None:
    """The old owner's upload finishes after the adopter published: refused, and its files go."""
    gate, reached = threading.Event(), threading.Event()
    slow = bucket.store(GatedManifestRead(bucket.s3(), gate, reached))
    failures: list[BaseException] = []

    def old_owner() -> None:
        try:
            publish(slow, checkpoint(tmp_path / "old", model=b"old"), "i-0old", 0, step=5)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=old_owner)
    thread.start()
    assert reached.wait(60)  # its files are up; its manifest not yet
    adopter = bucket.store()
    publish(adopter, checkpoint(tmp_path / "new", model=b"new"), "i-0adopter", 1, step=6)
    gate.set()
    thread.join(60)
    assert [type(f) for f in failures] == [Superseded]
    latest = adopter.latest(SID)
    assert latest is not None and (latest.instance_id, latest.step) == ("i-0adopter", 6)
    assert not [k for k in bucket.objects() if "/i-0old/" in k]
    fetched = tmp_path / "fetched"
    adopter.fetch(SID, latest, fetched)
    assert contents(fetched) == {"model": b"new"}


def test_a_half_deleted_version_is_not_restored(bucket: Bucket, tmp_path: Path) -> None:
    store = bucket.store()
    manifest = publish(store, checkpoint(tmp_path / "one", a=b"1", b=b"22"), "i-0owner")
    s3 = bucket.s3()
    s3.delete_object(Bucket=bucket.name, Key=next(k for k in bucket.objects() if k.endswith("/b")))
    with pytest.raises(SnapshotError, match="incomplete"):
        store.fetch(SID, manifest, tmp_path / "fetched")


def test_closing_deletes_the_manifest_and_every_version(bucket: Bucket, tmp_path: Path) -> None:
    store = bucket.store()
    source = checkpoint(tmp_path / "one", a=b"1")
    publish(store, source, "i-0owner")
    publish(store, source, "i-0adopter", generation=1)
    other = bucket.store()
    other.experiment_id = "43"  # another experiment's snapshot of a suggestion with the same id
    publish(other, source, "i-0other")
    assert store.close(SID) == 3  # the manifest and each owner's one version
    assert store.latest(SID) is None
    assert [k.split("/")[1] for k in bucket.objects()] == ["43", "43"]


def test_a_malformed_manifest_is_an_error_naming_the_field(bucket: Bucket) -> None:
    key = f"checkpoints/{EXPERIMENT}/{SID}/manifest.json"
    fields = {"version": "v", "instance_id": "i", "generation": -1, "files": []}
    body = json.dumps({"format": 1, **fields})
    bucket.s3().put_object(Bucket=bucket.name, Key=key, Body=body.encode())
    with pytest.raises(SnapshotError, match="'generation'"):
        bucket.store().latest(SID)
    assert bucket.store().latest("other") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://my-bucket", SnapshotLocation("my-bucket", "")),
        ("s3://my-bucket/a/b/", SnapshotLocation("my-bucket", "a/b/")),
    ],
)
def test_locations(text: str, expected: SnapshotLocation) -> None:
    assert parse_location(text) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"OPTFLEET_CHECKPOINT_S3": "my-bucket/x"}, "OPTFLEET_CHECKPOINT_S3='my-bucket/x'"),
        ({"OPTFLEET_CHECKPOINT_S3": "s3://My_Bucket"}, "not an S3 bucket name"),
        ({"OPTFLEET_CHECKPOINT_S3": "s3://b-1/a/../c"}, "'..' segment"),
        ({"OPTFLEET_CHECKPOINT_MAX_BYTES": "lots"}, "OPTFLEET_CHECKPOINT_MAX_BYTES='lots'"),
        ({"OPTFLEET_CHECKPOINT_INTERVAL": "-1"}, "OPTFLEET_CHECKPOINT_INTERVAL='-1'"),
    ],
)
def test_bad_settings_name_the_key(values: dict[str, str], message: str) -> None:
    base = {"OPTFLEET_EXPERIMENT_ID": "1", "SIGOPT_API_URL": "http://127.0.0.1:1"}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        settings_from({**base, **values}, command=["true"])


def test_settings_default_to_no_snapshots_and_parse_sizes() -> None:
    base = {"OPTFLEET_EXPERIMENT_ID": "1", "SIGOPT_API_URL": "http://127.0.0.1:1"}
    assert settings_from(base, command=["true"]).checkpoint_s3 is None
    settings = settings_from(
        {**base, "OPTFLEET_CHECKPOINT_S3": "s3://b-1/p", "OPTFLEET_CHECKPOINT_MAX_BYTES": "2G",
         "OPTFLEET_CHECKPOINT_INTERVAL": "30"},
        command=["true"],
    )  # fmt: skip
    assert settings.checkpoint_s3 == SnapshotLocation("b-1", "p/")
    assert (settings.checkpoint_max_bytes, settings.checkpoint_interval_s) == (2 << 30, 30.0)


@pytest.fixture()
def task(tmp_path: Path) -> Iterator[Task]:
    task = Task("1", "2", "i-0me", {}, tmp_path / "ckpt", tmp_path / "run", False, 1)
    task.run_dir.mkdir()
    yield task


def test_the_python_api_marks_a_checkpoint(task: Task) -> None:
    assert read_mark(task.checkpoint_saved_file) is None
    context = Context(task)
    context.checkpoint_saved(3)
    first = read_mark(task.checkpoint_saved_file)
    assert first is not None and first.step == 3
    context.checkpoint_saved()
    second = read_mark(task.checkpoint_saved_file)
    assert second is not None and second.step is None and second.signature != first.signature
    with pytest.raises(TypeError, match="step"):
        context.checkpoint_saved(-1)
    assert task.environment()["OPTFLEET_CHECKPOINT_SAVED"] == str(task.checkpoint_saved_file)
    task.checkpoint_saved_file.write_text("not json")  # `touch` or any text: a mark, no step
    third = read_mark(task.checkpoint_saved_file)
    assert third is not None and third.step is None
    write_mark(task.checkpoint_saved_file, 9)
