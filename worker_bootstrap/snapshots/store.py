"""One experiment's snapshots in S3, through an injected boto3 S3 client.

Layout under ``<prefix>/<experiment>/<suggestion>/``: ``versions/<instance>/<version>/<files>``
and ``manifest.json``. Publishing uploads every file of a new version first (multipart through
boto3's transfer manager for large files), then writes the manifest naming it, then deletes the
publisher's own older versions. A failure before the manifest leaves the previous manifest, and
the snapshot it names, untouched. An owner never deletes another owner's versions, so an
overlapping upload by an instance that lost the suggestion cannot break the new owner's snapshot;
and a manifest of a later owner (higher ``generation``) is never replaced. Once the observation
landed everything under the suggestion's prefix is deleted, manifest first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

from worker_bootstrap.snapshots.location import SnapshotLocation, key_segment
from worker_bootstrap.snapshots.manifest import (
    MANIFEST_NAME,
    BadManifest,
    Manifest,
    SnapshotFile,
    manifest_from_json,
)

MULTIPART_BYTES = 64 * 1024 * 1024  # above this a file goes up (and down) in parts
_DELETE_BATCH = 1000  # DeleteObjects' limit


class SnapshotError(Exception):
    """A snapshot could not be published or fetched; the message says which and why."""


class Superseded(SnapshotError):
    """A later owner published: this snapshot is not wanted."""


class Cancelled(SnapshotError):
    """The upload was given up (the attempt ended) before its manifest."""


def files_of(directory: Path) -> List[SnapshotFile]:
    """The regular files under ``directory`` (symbolic links are not followed), sorted."""
    found: List[SnapshotFile] = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in names:
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                continue
            relative = path.relative_to(directory).as_posix()
            found.append(SnapshotFile(path=relative, size=path.stat().st_size))
    return sorted(found, key=lambda f: f.path)


class SnapshotStore:
    """Publishes, finds, fetches and closes the snapshots of one experiment's suggestions."""

    def __init__(
        self,
        client: Any,
        location: SnapshotLocation,
        experiment_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from boto3.s3.transfer import TransferConfig

        self.client = client
        self.location = location
        self.experiment_id = experiment_id
        self.clock = clock
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES
        )

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def _base(self, suggestion_id: str) -> str:
        return self.location.suggestion_prefix(self.experiment_id, suggestion_id)

    def latest(self, suggestion_id: str) -> Optional[Manifest]:
        """The manifest, or None when nothing was published."""
        key = self._base(suggestion_id) + MANIFEST_NAME
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            data = response["Body"].read()
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise SnapshotError(f"reading s3://{self.bucket}/{key}: {_describe(exc)}") from None
        try:
            return manifest_from_json(data)
        except BadManifest as exc:
            raise SnapshotError(f"s3://{self.bucket}/{key}: {exc}") from None

    def publish(
        self,
        suggestion_id: str,
        source: Path,
        manifest: Manifest,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Manifest:
        """Upload ``manifest.files`` from ``source`` as a new version, then name it in the
        manifest; returns the manifest written. :class:`Superseded` when a later owner published
        meanwhile (the new version is deleted again)."""
        base = self._base(suggestion_id)
        version = f"{int(self.clock() * 1000):013d}-{secrets.token_hex(4)}"
        mine = f"{base}versions/{key_segment(manifest.instance_id)}/"
        root = f"{mine}{version}/"
        manifest = replace(manifest, version=version)
        try:
            for item in manifest.files:
                if cancelled():
                    raise Cancelled(f"upload of {suggestion_id}'s snapshot given up")
                self.client.upload_file(
                    str(source / item.path), self.bucket, root + item.path, Config=self.transfer
                )
            if cancelled():
                raise Cancelled(f"upload of {suggestion_id}'s snapshot given up")
            current = self.latest(suggestion_id)
            if current is not None and current.generation > manifest.generation:
                raise Superseded(
                    f"suggestion {suggestion_id}'s snapshots are {current.instance_id}'s now"
                )
            manifest = replace(manifest, uploaded_at=self.clock())
            self.client.put_object(
                Bucket=self.bucket,
                Key=base + MANIFEST_NAME,
                Body=manifest.to_json(),
                ContentType="application/json",
            )
        except SnapshotError:
            self._delete_quietly(root)
            raise
        except Exception as exc:
            self._delete_quietly(root)
            raise SnapshotError(
                f"uploading to s3://{self.bucket}/{root}: {_describe(exc)}"
            ) from None
        # Only now may this owner's older versions go: the manifest no longer names them.
        self._delete_quietly(mine, keep=root)
        return manifest

    def fetch(self, suggestion_id: str, manifest: Manifest, destination: Path) -> int:
        """Download the snapshot ``manifest`` names into ``destination`` (created); the bytes
        fetched. :class:`SnapshotError` when any file is missing or of another size."""
        root = (
            f"{self._base(suggestion_id)}versions/{key_segment(manifest.instance_id)}/"
            f"{manifest.version}/"
        )
        destination.mkdir(parents=True, exist_ok=True)
        for item in manifest.files:
            target = destination / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.client.download_file(
                    self.bucket, root + item.path, str(target), Config=self.transfer
                )
            except Exception as exc:
                raise SnapshotError(
                    f"snapshot {manifest.version} is incomplete: s3://{self.bucket}/{root}"
                    f"{item.path}: {_describe(exc)}"
                ) from None
            size = target.stat().st_size
            if size != item.size:
                raise SnapshotError(
                    f"snapshot {manifest.version} is incomplete: {item.path} has {size} bytes, "
                    f"the manifest says {item.size}"
                )
        return manifest.total_bytes

    def close(self, suggestion_id: str) -> int:
        """The observation landed: the manifest first (nobody restores a version being deleted),
        then every version; the number of objects deleted."""
        base = self._base(suggestion_id)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=base + MANIFEST_NAME)
            return 1 + self._delete(base)
        except Exception as exc:
            raise SnapshotError(f"deleting s3://{self.bucket}/{base}: {_describe(exc)}") from None

    def _keys(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def _delete(self, prefix: str, keep: Optional[str] = None) -> int:
        keys = [k for k in self._keys(prefix) if keep is None or not k.startswith(keep)]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        return len(keys)

    def _delete_quietly(self, prefix: str, keep: Optional[str] = None) -> None:
        """Best effort: what stays behind is removed with the suggestion or by the bucket's
        lifecycle rule."""
        with contextlib.suppress(Exception):  # a leftover costs storage, never correctness
            self._delete(prefix, keep)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code", ""))
    return ""


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
