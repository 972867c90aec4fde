"""``OPTFLEET_CHECKPOINT_S3=s3://bucket/prefix``: where an experiment's snapshots live. Objects go
under ``<prefix>/<experiment id>/<suggestion id>/``. Standard library only."""

from __future__ import annotations

import re
from dataclasses import dataclass

LOCATION_KEY = "OPTFLEET_CHECKPOINT_S3"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class SnapshotLocation:
    """A bucket and a key prefix (empty, or ending in ``/``)."""

    bucket: str
    prefix: str

    def suggestion_prefix(self, experiment_id: str, suggestion_id: str) -> str:
        """The key prefix of one suggestion's manifest and versions."""
        return f"{self.prefix}{key_segment(experiment_id)}/{key_segment(suggestion_id)}/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_location(text: str, key: str = LOCATION_KEY) -> SnapshotLocation:
    """``s3://bucket`` or ``s3://bucket/prefix``; ValueError naming ``key`` otherwise."""
    value = text.strip()
    if not value.startswith("s3://"):
        raise ValueError(f"{key}={text!r}: expected s3://bucket or s3://bucket/prefix")
    bucket, _, prefix = value[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(
            f"{key}={text!r}: {bucket!r} is not an S3 bucket name (3-63 characters: lower-case "
            "letters, digits, dots, hyphens)"
        )
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"{key}={text!r}: the prefix has an empty, '.' or '..' segment")
    return SnapshotLocation(bucket=bucket, prefix=f"{prefix}/" if prefix else "")


def key_segment(text: str) -> str:
    """An id as one key segment (ids are digits on our server; anything else is made safe)."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text) or "_"
