"""Pagination of the wire (§4): id markers encoded like the open-source server, newest first.

A marker is base64url without padding of the protobuf ``PagingMarker{repeated PagingSymbol
symbols = 1}`` with ``PagingSymbol{int64 int_value = 2}``: id 3 is bytes ``0a 02 10 03`` and the
marker ``CgIQAw``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from suggestion_server.wire.errors import bad_request

MAX_LIMIT = 1000
_MAX_MARKER = 2**63 - 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(data) and shift < 70:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos
    raise ValueError("truncated varint")


def encode_marker(item_id: int) -> str:
    """The marker for ``item_id``."""
    symbol = b"\x10" + _varint(item_id)
    raw = b"\x0a" + _varint(len(symbol)) + symbol
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_marker(marker: str) -> int:
    """The id inside ``marker``; a 400 "Invalid paging marker" for anything else."""
    error = bad_request(f"Invalid paging marker: {marker!r}")
    if not marker or not marker.isascii():
        raise error
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4))
        if len(raw) < 2 or raw[0] != 0x0A:
            raise ValueError("not a PagingMarker")
        length, pos = _read_varint(raw, 1)
        symbol = raw[pos : pos + length]
        if len(symbol) != length or pos + length != len(raw) or not symbol or symbol[0] != 0x10:
            raise ValueError("not a single int PagingSymbol")
        value, end = _read_varint(symbol, 1)
        if end != len(symbol):
            raise ValueError("trailing bytes")
    except (ValueError, binascii.Error):
        raise error from None
    if value > _MAX_MARKER:
        raise error
    return value


@dataclass(frozen=True)
class PageRequest:
    """What page the client asked for: ids strictly below ``before`` / above ``after``."""

    limit: int
    before: int | None
    after: int | None


def page_request(limit: int | None, before: str | None, after: str | None) -> PageRequest:
    """Validate the paging query parameters."""
    if limit is None:
        limit = MAX_LIMIT
    if limit > MAX_LIMIT:
        raise bad_request(f"Exceeded maximum limit: {MAX_LIMIT}")
    if limit < 0:
        raise bad_request(f"Invalid value for limit: {limit} - expected 0 to {MAX_LIMIT}")
    return PageRequest(
        limit=limit,
        before=None if before is None else decode_marker(before),
        after=None if after is None else decode_marker(after),
    )


def paging_markers(
    page_ids: list[int],
    request: PageRequest,
    newest_id: int | None,
    has_older: bool,
    has_newer: bool,
) -> dict[str, str | None]:
    """The ``paging`` object for a page of ids in descending order.

    ``before`` points below the oldest item of the page while older items exist (for ``limit=0``
    it points just above the newest matching item); ``after`` points at the newest item of the
    page while newer items exist.
    """
    if not page_ids:
        if request.limit == 0 and newest_id is not None:
            return {"before": encode_marker(newest_id + 1), "after": None}
        return {"before": None, "after": None}
    return {
        "before": encode_marker(page_ids[-1]) if has_older else None,
        "after": encode_marker(page_ids[0]) if has_newer else None,
    }
