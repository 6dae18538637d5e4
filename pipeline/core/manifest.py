"""Listing an input prefix once into a manifest table (key, size, etag, mtime)."""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa

from pipeline.core import storage
from pipeline.core.schema import ETAG, KEY, MANIFEST_SCHEMA, MTIME, SIZE

log = logging.getLogger(__name__)


def _mtime(info: dict) -> dt.datetime | None:
    value = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("last_modified")
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _etag(info: dict) -> str | None:
    value = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    return str(value).strip('"') if value else None


def require_prefix(uri: str, what: str, config: storage.StorageConfig | None = None) -> None:
    """Refuse a prefix that does not exist before anything starts (``what``: input, reference, …).

    An http(s) "prefix" is only a URL stem (a server may answer 404 for it and 200 for every file
    under it): it is not checked here, and a missing file there is an error on its own row.
    """
    if storage.protocol_of(uri) in ("http", "https"):
        return
    fs, root = storage.filesystem(uri, config)
    if not storage.retrying("checking", uri, lambda: fs.exists(root), config):
        raise FileNotFoundError(f"{what} prefix does not exist: {uri}")


def list_inputs(uri: str, extensions: tuple[str, ...], config: storage.StorageConfig | None = None) -> pa.Table:
    """Recursive listing of ``uri`` filtered by extension (case-insensitive), sorted by key.

    One paginated walk of the store (``find`` with details): sizes, ETags and
    modification times come from the listing itself, with no per-object
    request, so millions of keys cost one listing.
    """
    require_prefix(uri, "input", config)
    fs, root = storage.filesystem(uri, config)
    found = fs.find(root, detail=True)
    exts = tuple(e.lower() for e in extensions)
    rows = []
    for path, info in found.items():
        if info.get("type") == "directory" or not path.lower().endswith(exts):
            continue
        rows.append(
            {
                KEY: storage.relative_key(uri, path, fs),
                SIZE: int(info.get("size") or 0),
                ETAG: _etag(info),
                MTIME: _mtime(info),
            }
        )
    rows.sort(key=lambda r: r[KEY])
    log.info("listed %d objects under %s", len(rows), uri)
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def stat_input(uri: str, config: storage.StorageConfig | None = None) -> dict:
    """One object's size, ETag and modification time, as :func:`list_inputs` records them (``SIZE``, ``ETAG``, ``MTIME``)."""
    fs, path = storage.filesystem(uri, config)
    info = storage.retrying("checking", uri, lambda: fs.info(path), config)
    return {SIZE: int(info.get("size") or 0), ETAG: _etag(info), MTIME: _mtime(info)}
