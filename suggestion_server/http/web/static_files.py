"""The page's static files: our own JS/CSS and Plotly's bundle from the installed wheel."""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
OWN_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
PLOTLY_NAME = "plotly.min.js"


@dataclass(frozen=True)
class StaticFile:
    """A file's bytes, its gzip form, media type and ETag."""

    body: bytes
    gzipped: bytes
    media_type: str
    etag: str


def plotly_bundle_path() -> Path:
    """``plotly/package_data/plotly.min.js`` of the installed ``plotly`` package (not imported)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the plotly package is not installed (pip install optfleet[server])"
        )
    return Path(spec.origin).parent / "package_data" / PLOTLY_NAME


def plotly_version() -> str:
    """The installed plotly package's version (part of the bundle's URL, for caching)."""
    try:
        return importlib.metadata.version("plotly")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _load(path: Path, media_type: str) -> StaticFile:
    body = path.read_bytes()
    return StaticFile(
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0),
        media_type=media_type,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
    )


@lru_cache(maxsize=8)
def static_file(name: str) -> StaticFile | None:
    """The named static file (read and compressed once per process), or None if unknown."""
    if name == PLOTLY_NAME:
        return _load(plotly_bundle_path(), "text/javascript; charset=utf-8")
    media_type = OWN_FILES.get(name)
    if media_type is None:
        return None
    return _load(STATIC_DIR / name, media_type)
