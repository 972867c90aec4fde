"""Metadata rules of the wire (§6), shared by experiments, suggestions and observations."""

from __future__ import annotations

from typing import Any

from suggestion_server.wire.jsonbody import short_json

MAX_KEYS = 100
MAX_KEY_LENGTH = 100
MAX_STRING_LENGTH = 500


def validate_metadata(value: Any) -> dict[str, str | int | float] | None:
    """Return the metadata to store (null values dropped) or raise ValueError naming the key."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"Invalid type for metadata: {short_json(value)} - expected type object")
    if len(value) > MAX_KEYS:
        raise ValueError(f"Expected at most {MAX_KEYS} keys in metadata, got {len(value)}")
    cleaned: dict[str, str | int | float] = {}
    for key, item in value.items():
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(
                f"The length of the metadata key '{key[:40]}...' must be less than "
                f"{MAX_KEY_LENGTH} (got {len(key)} characters)"
            )
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ValueError(
                f"Invalid type for metadata.{key}: {short_json(item)} - expected type "
                "['string', 'number', 'null']"
            )
        if isinstance(item, str) and len(item) > MAX_STRING_LENGTH:
            raise ValueError(
                f"The length of metadata.{key} must be less than or equal to "
                f"{MAX_STRING_LENGTH} (got {len(item)} characters)"
            )
        cleaned[key] = item
    return cleaned


METADATA_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "maxProperties": MAX_KEYS,
            "propertyNames": {"maxLength": MAX_KEY_LENGTH},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": MAX_STRING_LENGTH},
                    {"type": "number"},
                    {"type": "null"},
                ]
            },
        },
        {"type": "null"},
    ],
    "description": "Up to 100 keys of at most 100 characters; values are strings (at most 500 "
    "characters) or numbers; null values are dropped.",
}
