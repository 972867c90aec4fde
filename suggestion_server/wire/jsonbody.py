"""Reading a request's JSON body strictly: size limit, no NaN/Infinity, no NUL, valid UTF-8."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request

from suggestion_server.wire.errors import ApiError, bad_request

MAX_BODY_BYTES = 1024 * 1024
MALFORMED = "Malformed json in request body"


def _reject_constant(name: str) -> Any:
    raise bad_request(f"{MALFORMED}: {name} is not a valid JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise bad_request(f"{MALFORMED}: number {text} is out of range")
    return value


def _check_strings(value: Any) -> None:
    """Reject NUL characters and lone surrogates (neither can be stored) anywhere in ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise bad_request("Strings must not contain the NUL character (\\u0000)")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise bad_request(f"{MALFORMED}: invalid unicode escape in a string") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_json(raw: bytes) -> Any:
    """Parse ``raw`` strictly; an empty body is ``{}``."""
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"Request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_request(MALFORMED) from None
    _check_strings(value)
    return value


async def json_body(request: Request) -> Any:
    """FastAPI dependency: the request body as parsed JSON (see ``parse_json``)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"Request body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"Request body exceeds the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


def json_object(body: Any, what: str) -> dict[str, Any]:
    """``body`` if it is a JSON object, else a 400 naming ``what``."""
    if not isinstance(body, dict):
        raise bad_request(f"Invalid type for {what}: {short_json(body)} - expected type object")
    return body


def short_json(value: Any, limit: int = 200) -> str:
    """``value`` as compact JSON, cut to ``limit`` characters for error messages."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
