"""The manifest: the one small object naming a suggestion's latest complete snapshot. It is
written only after every file of its version is in S3, so a reader never sees half a snapshot."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

FORMAT = 1
MANIFEST_NAME = "manifest.json"


class BadManifest(ValueError):
    """A manifest that does not parse; the message names the field."""


@dataclass(frozen=True)
class SnapshotFile:
    """One file of a snapshot: its path relative to the checkpoint directory, and its size."""

    path: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A published snapshot: which version, by whom, of which step, when."""

    version: str  # the key segment under versions/<instance_id>/
    instance_id: str
    generation: int  # hand-overs before this owner: a newer owner's manifest is never replaced
    attempt: int
    step: Optional[int]
    saved_at: float  # when the evaluation marked the checkpoint complete (unix seconds)
    uploaded_at: float
    files: List[SnapshotFile] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True).encode()


def manifest_from_json(data: bytes) -> Manifest:
    """Parse a manifest; :class:`BadManifest` naming the field that is wrong."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadManifest(f"manifest is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadManifest("manifest is not a JSON object")
    if raw.get("format") != FORMAT:
        raise BadManifest(f"manifest field 'format': expected {FORMAT}, got {raw.get('format')!r}")
    files = raw.get("files")
    if not isinstance(files, list):
        raise BadManifest("manifest field 'files': expected a list")
    return Manifest(
        version=_text(raw, "version"),
        instance_id=_text(raw, "instance_id"),
        generation=_integer(raw, "generation"),
        attempt=_integer(raw, "attempt"),
        step=None if raw.get("step") is None else _integer(raw, "step"),
        saved_at=_seconds(raw, "saved_at"),
        uploaded_at=_seconds(raw, "uploaded_at"),
        files=[_file(item, n) for n, item in enumerate(files)],
    )


def _text(raw: Dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str):
        raise BadManifest(f"manifest field {name!r}: expected a string")
    return value


def _integer(raw: Dict[str, Any], name: str) -> int:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadManifest(f"manifest field {name!r}: expected an integer >= 0")
    return value


def _seconds(raw: Dict[str, Any], name: str) -> float:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadManifest(f"manifest field {name!r}: expected a number of seconds")
    return float(value)


def _file(item: Any, index: int) -> SnapshotFile:
    if not isinstance(item, dict):
        raise BadManifest(f"manifest field 'files[{index}]': expected an object")
    path, size = item.get("path"), item.get("size")
    parts = path.split("/") if isinstance(path, str) else []
    if not isinstance(path, str) or not parts or any(p in ("", ".", "..") for p in parts):
        raise BadManifest(f"manifest field 'files[{index}].path': expected a relative path")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadManifest(f"manifest field 'files[{index}].size': expected an integer >= 0")
    return SnapshotFile(path=path, size=size)
