"""Object storage through fsspec: local paths, s3://, gs:// and the rest alike.

Credentials come from each backend's standard chain (environment, config
files, instance roles); only the endpoint and region are configured here, so
S3-compatible stores work. Nothing here logs or raises a credential.

Flaky storage is retried at two levels. Each request: botocore (s3fs) and the
AWS SDK inside pyarrow retry throttling (503 SlowDown), 5xx, timeouts and
dropped connections ``max_attempts`` times with jittered exponential backoff.
Each whole-object operation here (:func:`read_bytes`, :func:`write_bytes`,
:func:`put_file`, :func:`exists`): a transient failure those retries did not
absorb (a body cut short after the last request retry, a burst longer than
them) runs the operation again, ``operation_attempts`` times in all, then
raises :class:`StorageError`. Permanent answers (not found, access denied, a
bad bucket name) are raised at once.
"""

from __future__ import annotations

import logging
import os
import posixpath
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class StorageError(OSError):
    """A storage operation that still failed after its retries; the message says which and why."""


@dataclass(frozen=True)
class StorageConfig:
    """``endpoint_url``: an S3-compatible endpoint (e.g. http://127.0.0.1:9000); None for AWS.

    ``max_attempts``: attempts per request inside botocore and pyarrow's AWS SDK;
    ``operation_attempts``: attempts of a whole read or write here, waiting
    ``retry_backoff_seconds`` × 2^attempt (jittered, at most 20 s) in between.
    """

    endpoint_url: str | None = None
    region: str | None = None
    anon: bool = False
    max_attempts: int = 6
    operation_attempts: int = 3
    retry_backoff_seconds: float = 0.5
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.operation_attempts < 1:
            raise ValueError("max_attempts and operation_attempts must be >= 1")
        if self.retry_backoff_seconds < 0 or self.connect_timeout_seconds <= 0 or self.read_timeout_seconds <= 0:
            raise ValueError("retry_backoff_seconds must be >= 0 and the timeouts > 0")


def resolve_endpoint(config: StorageConfig | None = None) -> str | None:
    """The S3 endpoint every client here uses: ``config.endpoint_url``, else ``AWS_ENDPOINT_URL_S3``, else
    ``AWS_ENDPOINT_URL`` (the order botocore reads them in), else None for AWS itself.

    Resolved here once because pyarrow's S3 client does not read those variables (botocore does): an
    endpoint left to each client's own defaults sends s3fs to the local server and pyarrow to AWS.
    """
    if config is not None and config.endpoint_url:
        return config.endpoint_url
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


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
        endpoint = resolve_endpoint(config)
        if endpoint:
            client["endpoint_url"] = endpoint
        if config.region:
            client["region_name"] = config.region
        options = {"client_kwargs": client, "anon": config.anon}
        # botocore's "standard" mode retries throttling (SlowDown), 5xx and dropped connections
        # with jittered exponential backoff; the legacy default gives up sooner.
        options["config_kwargs"] = {
            "retries": {"total_max_attempts": config.max_attempts, "mode": "standard"},  # first try included
            "connect_timeout": config.connect_timeout_seconds,
            "read_timeout": config.read_timeout_seconds,
        }
        # Listing caches go stale in a long job that also writes; we list once anyway.
        options["use_listings_cache"] = False
        protocol = "s3"
    fs = fsspec.filesystem(protocol, **options)
    if protocol == "s3":
        # s3fs retries SlowDown and dropped bodies on its own too (a class default of 5). The cached
        # instance is keyed by config_kwargs above, so this setting belongs to this config alone.
        fs.retries = config.max_attempts
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


def absolute_local(uri: str) -> str:
    """A local path (or ``file://`` URI) made absolute against the current directory; other URIs unchanged.

    For work handed to other processes: a Ray Train worker runs in a directory of
    Ray's own, where a relative path names somewhere else. A trailing '/' is kept.
    """
    if protocol_of(uri) != "file":
        return uri
    scheme = "file://" if uri.startswith("file://") else ""
    path = os.path.abspath(uri[len(scheme) :])
    return scheme + path + ("/" if uri.endswith("/") and not path.endswith("/") else "")


def _canonical(uri: str) -> str:
    """``protocol://path/`` with local paths made absolute, for prefix comparisons."""
    if protocol_of(uri) == "file":
        path = absolute_local(uri).removeprefix("file://")
        return "file://" + path.rstrip("/") + "/"
    return uri.rstrip("/") + "/"


def check_disjoint(input_uri: str, output_uri: str) -> None:
    """Refuse an output prefix inside the input prefix, or the reverse: a rerun would read its own outputs."""
    a, b = _canonical(input_uri), _canonical(output_uri)
    if a.startswith(b) or b.startswith(a):
        raise ValueError(
            f"output {output_uri} and input {input_uri} overlap: a later run would denoise earlier outputs; "
            "choose an output prefix outside the input prefix"
        )


# Answers that another attempt cannot change: raised at once, never retried.
_PERMANENT = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
    ValueError,
    TypeError,
)


def is_transient(exc: BaseException) -> bool:
    """True for failures another attempt may not meet: throttling, 5xx, timeouts, dropped or cut connections."""
    if isinstance(exc, _PERMANENT):
        return False
    response = getattr(exc, "response", None)  # botocore's ClientError
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or status in (408, 429)
    return isinstance(exc, Exception)


def retrying(operation: str, uri: str, call: Callable[[], T], config: StorageConfig | None = None) -> T:
    """``call()``, run again on transient failures (``config.operation_attempts`` in all), else :class:`StorageError`."""
    from pipeline.core.redact import redact  # these lines reach worker logs, where no handler redacts

    config = config or StorageConfig()
    for attempt in range(1, config.operation_attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == config.operation_attempts:
                raise StorageError(
                    redact(
                        f"{operation} {uri} failed after {attempt} attempts ({config.max_attempts} requests each): "
                        f"{type(exc).__name__}: {exc}"
                    )
                ) from exc
            wait = min(20.0, config.retry_backoff_seconds * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            log.warning(
                "%s %s: %s; attempt %d of %d in %.1f s",
                operation,
                redact(uri),
                type(exc).__name__,
                attempt + 1,
                config.operation_attempts,
                wait,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def read_bytes(uri: str, config: StorageConfig | None = None) -> bytes:
    """The whole object; a body cut short is an error (and retried), never a shorter result."""

    def read() -> bytes:
        fs, path = filesystem(uri, config)
        with fs.open(path, "rb") as f:
            data = f.read()
            size = f.size if protocol_of(uri) != "file" else None
        if size is not None and len(data) != size:
            raise ConnectionError(f"read {len(data)} of {size} bytes")
        return data

    return retrying("reading", uri, read, config)


def write_bytes(uri: str, data: bytes, config: StorageConfig | None = None) -> None:
    """Write a whole object atomically: a reader sees the old object or the new one, never a part.

    Object stores give that for a single PUT; a local file is written under a
    temporary name in the same folder, flushed to disk, then renamed over the
    target (local parents are created).
    """
    if protocol_of(uri) != "file":

        def put() -> None:
            fs, path = filesystem(uri, config)
            with fs.open(path, "wb") as f:
                f.write(data)

        retrying("writing", uri, put, config)
        return
    import tempfile

    fs, path = filesystem(uri, config)

    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file 0600 and a rename keeps it: give it the mode a plain open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask: from /proc on Linux (os.umask can only read it by setting it, which races
    with other threads creating files), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def put_file(local_path: str, uri: str, config: StorageConfig | None = None) -> None:
    """Upload a local file to ``uri`` (multipart on object stores); local parents are created."""
    fs, path = filesystem(uri, config)
    if protocol_of(uri) == "file":
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    retrying("uploading to", uri, lambda: fs.put_file(local_path, path), config)


def exists(uri: str, config: StorageConfig | None = None) -> bool:
    fs, path = filesystem(uri, config)
    return retrying("checking", uri, lambda: fs.exists(path), config)


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
        options: dict[str, Any] = {
            "anonymous": config.anon,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=config.max_attempts),
            "connect_timeout": config.connect_timeout_seconds,
            "request_timeout": config.read_timeout_seconds,
        }
        if config.region:
            options["region"] = config.region
        endpoint = resolve_endpoint(config)
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            options["endpoint_override"] = host.rstrip("/")
            options["scheme"] = scheme
        return pafs.S3FileSystem(**options), uri.split("://", 1)[1]
    fs, path = filesystem(uri, config)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path
