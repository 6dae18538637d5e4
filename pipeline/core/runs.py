"""Runs on storage: the run layout, durable chunks, the commit marker, Parquet part files, Ray start-up.

A run lives under ``<output>/runs/<run_id>/``; readers trust it only once its
``_COMMITTED.json`` exists, and that marker is always written last.

While a run works, its rows go to ``_chunks/``: every flush writes one complete
Parquet file atomically (a local temp file renamed, or one object PUT), so a
killed run keeps every row it flushed, and a rerun with the same run id skips
those inputs (the datatrove way: completion recorded per piece of work, no
global state to repair). At commit the chunks are compacted into
``clips/part-*.parquet``, the marker is written, then the chunks are removed.
We chose this over Ray Data's job-level checkpointing (``CheckpointConfig``),
measured side by side by ``bench/resume_compare.py``: in Ray 2.60 it is
disabled when the driver consumes the rows (ours must, to check completeness
and write the marker) and it does not filter in-memory inputs (docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa

from pipeline.core import storage

COMMIT_MARKER = "_COMMITTED.json"


@dataclass(frozen=True)
class RunPaths:
    run_uri: str

    @classmethod
    def of(cls, output_uri: str, run_id: str) -> RunPaths:
        return cls(storage.join(output_uri, "runs", storage.safe_relative_key(run_id)))

    @property
    def manifest_uri(self) -> str:
        return storage.join(self.run_uri, "manifest.parquet")

    @property
    def audio_uri(self) -> str:
        return storage.join(self.run_uri, "audio")

    @property
    def clips_uri(self) -> str:
        return storage.join(self.run_uri, "clips")

    @property
    def commit_uri(self) -> str:
        return storage.join(self.run_uri, COMMIT_MARKER)

    @property
    def chunks_uri(self) -> str:
        return storage.join(self.run_uri, "_chunks")


def default_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def read_commit(paths: RunPaths, config: storage.StorageConfig) -> dict | None:
    if not storage.exists(paths.commit_uri, config):
        return None
    return json.loads(storage.read_bytes(paths.commit_uri, config))


def write_parquet(table: pa.Table, uri: str, config: storage.StorageConfig) -> None:
    """One whole Parquet object, written atomically (:func:`pipeline.core.storage.write_bytes`)."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(uri, buf.getvalue(), config)


def read_parquet(uri: str, config: storage.StorageConfig) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(storage.read_bytes(uri, config)))


def write_table_files(
    table: pa.Table, uri: str, schema: pa.Schema, rows_per_file: int, config: storage.StorageConfig
) -> list[str]:
    """``table`` as ``part-00000.parquet``, … of at most ``rows_per_file`` rows under ``uri``; returns the names.

    Each file is one :func:`write_parquet` (atomic, retried): a reader never sees a
    file without its footer. An empty table still gets one (empty) file, with the schema.
    """
    table = table.cast(schema)
    names = []
    for i, start in enumerate(range(0, max(table.num_rows, 1), rows_per_file)):
        names.append(f"part-{i:05d}.parquet")
        write_parquet(table.slice(start, rows_per_file), storage.join(uri, names[-1]), config)
    return names


class ChunkWriter:
    """Buffers rows and flushes them as complete, atomically written Parquet files under ``uri``.

    A flush happens every ``flush_rows`` rows or ``flush_seconds`` seconds,
    whichever comes first: that bounds what a killed run loses.
    """

    def __init__(
        self,
        uri: str,
        schema: pa.Schema,
        config: storage.StorageConfig,
        flush_rows: int = 64,
        flush_seconds: float = 30.0,
    ) -> None:
        self.uri, self.schema, self.config = uri, schema, config
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self._pending: list[pa.Table] = []
        self._rows = 0
        self._last = time.monotonic()

    def write(self, table: pa.Table) -> None:
        self._pending.append(table.cast(self.schema))
        self._rows += table.num_rows
        if self._rows >= self.flush_rows or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self._rows:
            return
        name = f"chunk-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        write_parquet(pa.concat_tables(self._pending), storage.join(self.uri, name), self.config)
        self._pending, self._rows = [], 0

    close = flush


def read_chunks(uri: str, schema: pa.Schema, config: storage.StorageConfig) -> list[pa.Table]:
    """Every complete chunk under ``uri``, in the order they were written (temporary files of an interrupted write are not chunks)."""
    fs, root = storage.filesystem(uri, config)
    if not fs.exists(root):
        return []
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    return [
        read_parquet(storage.join(uri, n), config).cast(schema)
        for n in names
        if n.startswith("chunk-") and n.endswith(".parquet")
    ]


def remove_tree(uri: str, config: storage.StorageConfig) -> None:
    fs, path = storage.filesystem(uri, config)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def write_commit(paths: RunPaths, marker: dict, config: storage.StorageConfig) -> None:
    """Write the commit marker (last, by contract); NaN becomes null so the JSON stays standard.

    The marker holds the resolved config: a URL with user-info in it (an HTTP reference
    server behind basic auth, say) is redacted, as in every error and log line.
    """
    from pipeline.core.redact import redact_tree

    storage.write_bytes(
        paths.commit_uri, json.dumps(redact_tree(_nan_to_none(marker)), indent=2, default=str).encode(), config
    )


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def init_ray(address: str | None) -> None:
    """Connect to the cluster at ``address``, or find or start a local one.

    A local cluster this driver starts has no dashboard (nothing here reads it; it is nine
    processes and a port less), and a watcher (:mod:`pipeline.core.ray_reaper`) ends the Ray
    processes that would outlive a ``kill -9`` of this driver by a minute.
    """
    import psutil
    import ray

    if ray.is_initialized():
        return
    ray.init(address=address, log_to_driver=True, configure_logging=False, include_dashboard=False)
    if any(child.name() == "raylet" for child in psutil.Process().children()):  # we started it, not joined it
        from pipeline.core import ray_reaper

        ray_reaper.start()


def split_blocks(table: pa.Table, rows_per_block: int) -> list[pa.Table]:
    """Slices of ``rows_per_block`` rows (zero-copy) so Ray Data starts with that many blocks."""
    return [table.slice(i, rows_per_block) for i in range(0, table.num_rows, rows_per_block)] or [table]
