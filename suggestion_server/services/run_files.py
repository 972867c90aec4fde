"""``run.log_image`` (sigopt-runs-wire.md §0): accepted so a script goes on, never stored.

The client posts the image's description to ``/training_runs/{id}/files``, then sends the bytes
to the ``upload`` URL of the answer (hosted SigOpt: a presigned S3 URL) and fails the script on
anything but a 2xx. optfleet has no file store, so it answers an upload URL on itself, with the
caller's own ``Authorization`` header (the client sends only the headers of the answer), and
reads and drops the bytes there: the run's ``files`` stay empty (docs/api.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from suggestion_server.services.context import ServerContext
from suggestion_server.storage.runs import client_run
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json

# (key, accepted types, required)
_KEYS: tuple[tuple[str, tuple[type, ...], bool], ...] = (
    ("content_length", (int,), True),
    ("content_md5", (str,), True),
    ("content_type", (str,), True),
    ("filename", (str,), True),
    ("name", (str, type(None)), False),
)


def checked_file(raw_body: Any) -> dict[str, Any]:
    """The file description of a ``log_image`` post; a 400 naming the bad key."""
    if not isinstance(raw_body, dict):
        raise bad_request(f"Invalid json body: {short_json(raw_body)} - expected an object")
    unknown = sorted(set(raw_body) - {key for key, _, _ in _KEYS})
    if unknown:
        raise bad_request(f"Unknown json key {unknown[0]!r} in a file")
    for key, types, required in _KEYS:
        if key not in raw_body:
            if required:
                raise bad_request(f'Missing required json key "{key}" in: {short_json(raw_body)}')
            continue
        value = raw_body[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise bad_request(f"Invalid value for {key}: {short_json(value)}")
    if raw_body["content_length"] < 0:
        raise bad_request(f"Invalid value for content_length: {raw_body['content_length']}")
    return dict(raw_body)


def accept_run_file(
    ctx: ServerContext, client_id: int, run_id: int, raw_body: Any, upload_url: str, auth: str
) -> dict[str, Any]:
    """The File object for a run's image, whose ``upload`` points at ``upload_url`` (a 404 for
    a run that is not the client's)."""
    described = checked_file(raw_body)
    with ctx.store.read() as session:
        client_run(session, client_id, run_id)
    headers = {"Content-Type": described["content_type"], "Authorization": auth}
    return {
        "object": "file",
        "id": uuid.uuid4().hex,
        "training_run": str(run_id),
        **described,
        "stored": False,
        "upload": {"method": "PUT", "url": upload_url, "headers": headers},
    }


def check_upload_target(ctx: ServerContext, client_id: int, run_id: int) -> None:
    """A 404 unless the run is the client's (the bytes are dropped either way)."""
    with ctx.store.read() as session:
        client_run(session, client_id, run_id)
