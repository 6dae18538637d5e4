"""Object storage through fsspec: local paths, s3://, gs:// and the rest alike.

Credentials come from each backend's standard chain (environment, config
files, instance roles); only the endpoint and region are configured here, so
S3-compatible stores work. Nothing here logs or raises a credential.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StorageConfig:
    """``endpoint_url``: an S3-compatible endpoint (e.g. http://127.0.0.1:9000); None for AWS."""

    endpoint_url: str | None = None
    region: str | None = None
    anon: bool = False

    @classmethod
    def from_env(cls) -> StorageConfig:
        """Endpoint from ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` as the AWS SDKs read it."""
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return cls(endpoint_url=endpoint, region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))


def protocol_of(uri: str) -> str:
    return uri.split("://", 1)[0] if "://" in uri else "file"


def filesystem(uri: str, config: StorageConfig | None = None):
    """(fsspec filesystem, path without protocol) for ``uri``."""
    import fsspec

    config = config or StorageConfig()
    protocol = protocol_of(uri)
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        client: dict[str, Any] = {}
        if config.endpoint_url:
            client["endpoint_url"] = config.endpoint_url
        if config.region:
            client["region_name"] = config.region
        options = {"client_kwargs": client, "anon": config.anon}
        # Listing caches go stale in a long job that also writes; we list once anyway.
        options["use_listings_cache"] = False
        protocol = "s3"
    fs = fsspec.filesystem(protocol, **options)
    return fs, fs._strip_protocol(uri)


def join(uri: str, *parts: str) -> str:
    """Join key parts onto a URI or local path with '/'."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.lstrip('/')}"
    return out


def relative_key(root_uri: str, full_path: str, fs) -> str:
    """Key of ``full_path`` relative to the root prefix, with '/' separators."""
    root = fs._strip_protocol(root_uri).rstrip("/")
    path = full_path
    if not path.startswith(root + "/"):
        raise ValueError(f"{full_path!r} is not under {root!r}")
    return path[len(root) + 1 :]


def safe_relative_key(key: str) -> str:
    """Normalise a relative key and refuse anything that would leave its prefix."""
    if "\\" in key or "\x00" in key:
        raise ValueError(f"refusing key with backslash or NUL: {key!r}")
    norm = posixpath.normpath(key.lstrip("/"))
    if norm in ("", ".") or norm == ".." or norm.startswith("../") or key.startswith("/"):
        raise ValueError(f"refusing key outside the prefix: {key!r}")
    return norm


def _canonical(uri: str) -> str:
    """``protocol://path/`` with local paths made absolute, for prefix comparisons."""
    protocol = protocol_of(uri)
    if protocol == "file":
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        return "file://" + os.path.abspath(path).rstrip("/") + "/"
    return uri.rstrip("/") + "/"


def check_disjoint(input_uri: str, output_uri: str) -> None:
    """Refuse an output prefix inside the input prefix, or the reverse: a rerun would read its own outputs."""
    a, b = _canonical(input_uri), _canonical(output_uri)
    if a.startswith(b) or b.startswith(a):
        raise ValueError(
            f"output {output_uri} and input {input_uri} overlap: a later run would denoise earlier outputs; "
            "choose an output prefix outside the input prefix"
        )


def read_bytes(uri: str, config: StorageConfig | None = None) -> bytes:
    fs, path = filesystem(uri, config)
    with fs.open(path, "rb") as f:
        return f.read()


def write_bytes(uri: str, data: bytes, config: StorageConfig | None = None) -> None:
    """Write a whole object atomically: a reader sees the old object or the new one, never a part.

    Object stores give that for a single PUT; a local file is written under a
    temporary name in the same folder, flushed to disk, then renamed over the
    target (local parents are created).
    """
    fs, path = filesystem(uri, config)
    if protocol_of(uri) != "file":
        with fs.open(path, "wb") as f:
            f.write(data)
        return
    import tempfile

    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def put_file(local_path: str, uri: str, config: StorageConfig | None = None) -> None:
    """Upload a local file to ``uri`` (multipart on object stores); local parents are created."""
    fs, path = filesystem(uri, config)
    if protocol_of(uri) == "file":
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.put_file(local_path, path)


def exists(uri: str, config: StorageConfig | None = None) -> bool:
    fs, path = filesystem(uri, config)
    return fs.exists(path)


def arrow_filesystem(uri: str, config: StorageConfig | None = None):
    """(pyarrow filesystem, path) for writing Parquet: pyarrow's own S3 client for s3://, local for paths.

    Other protocols (gs://, az://…) go through fsspec wrapped for pyarrow.
    """
    import pyarrow.fs as pafs

    config = config or StorageConfig()
    protocol = protocol_of(uri)
    if protocol == "file":
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        return pafs.LocalFileSystem(), os.path.abspath(path)
    if protocol in ("s3", "s3a"):
        options: dict[str, Any] = {"anonymous": config.anon}
        if config.region:
            options["region"] = config.region
        if config.endpoint_url:
            scheme, _, host = config.endpoint_url.partition("://")
            options["endpoint_override"] = host.rstrip("/")
            options["scheme"] = scheme
        return pafs.S3FileSystem(**options), uri.split("://", 1)[1]
    fs, path = filesystem(uri, config)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def arrow_output(uri: str, config: StorageConfig | None = None):
    """:func:`arrow_filesystem` for a file about to be written (local parent folders created)."""
    import pyarrow.fs as pafs

    fs, path = arrow_filesystem(uri, config)
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(posixpath.dirname(path), recursive=True)
    return fs, path
