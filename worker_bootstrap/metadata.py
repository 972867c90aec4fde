"""Metadata within SigOpt's limits: ≤100 keys, keys ≤100 chars, str/number values ≤500 chars."""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Union

MAX_KEYS = 100
MAX_KEY_LEN = 100
MAX_STR_LEN = 500

Value = Union[str, int, float]


def clean_value(value: Any) -> Optional[Value]:
    """A value the server accepts, or None to drop it (booleans become 0/1, text is cut)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = str(value).replace("\x00", "")
    return text if len(text) <= MAX_STR_LEN else text[: MAX_STR_LEN - 1] + "…"


def merged(agent: Mapping[str, Any], extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Value]:
    """``agent`` keys win over ``extra`` keys (the evaluation's own metadata); limits enforced."""
    result: Dict[str, Value] = {}
    for source in (agent, extra or {}):
        for key, raw in source.items():
            key = str(key).replace("\x00", "")[:MAX_KEY_LEN]
            if key in result or len(result) >= MAX_KEYS:
                continue
            value = clean_value(raw)
            if value is not None:
                result[key] = value
    return result


def tail(text: str, limit: int = MAX_STR_LEN, lines: int = 10) -> str:
    """The last ``lines`` lines of ``text``, at most ``limit`` characters (the end is kept)."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept if len(kept) <= limit else "…" + kept[-(limit - 1) :]
