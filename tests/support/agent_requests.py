"""An agent's requests by kind, for the tests and benchmarks that count them at a proxy."""

from __future__ import annotations

import re

# (kind, method, regex searched in the path with its query); the first match wins.
KINDS = [
    ("create_suggestion", "POST", r"/suggestions$"),
    ("create_observation", "POST", r"/observations$"),
    ("progress", "GET", r"/experiments/\d+$"),
    ("lease_read", "GET", r"/suggestions/\d+$"),
    ("lease_write", "PUT", r"/suggestions/\d+$"),
    ("lapsed_scan_page", "GET", r"/suggestions\?.*lease_expired_by="),
    ("scan_page", "GET", r"/suggestions\?"),
]
NAMES = [kind for kind, _, _ in KINDS]


def kind_of(method: str, path: str) -> str:
    """The kind of one request, or ``other METHOD PATH``."""
    for kind, want, pattern in KINDS:
        if method == want and re.search(pattern, path):
            return kind
    return f"other {method} {path}"
