"""The operator's price book: AWS prices cached under the user's cache directory."""

from __future__ import annotations

import os
from pathlib import Path

from worker_bootstrap.cost.pricing import PriceBook


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/optfleet/prices.json`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "optfleet" / "prices.json"


def operator_price_book() -> PriceBook:
    """Prices through boto3 (Price List API and spot history), cached an hour on disk."""
    return PriceBook(cache_path())
