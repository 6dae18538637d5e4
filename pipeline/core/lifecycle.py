"""One run's lifecycle, the same for every job: commit check, manifest, resume, durable rows, completeness, commit.

A job declares what is its own (its manifest, the stages that turn inputs into
rows, its table schema, its summary) and hands the rest to :class:`RunLifecycle`::

    run = RunLifecycle(output_uri, run_id, S.CLIP_SCHEMA, storage_config, kind="denoise")
    if (marker := run.committed()) is not None:
        return marker["summary"]                    # a committed run is never redone
    todo = run.start(manifest)                      # only what is not durable yet
    with run.rows() as rows:
        for batch in process(todo):                 # the job's Ray Data pipeline
            rows.write(batch)
    table = run.collect(manifest)                   # one set of rows per input, or an error
    run.commit(table, {"summary": summarize(table)})

The layout and the guarantees are :mod:`pipeline.core.runs`'s: rows are flushed as
complete chunk files while the run works, a rerun with the same id skips the
inputs whose rows are durable, the table files are written atomically at
commit, the marker is written last, and the chunks are removed after it.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.runs import (
    ChunkWriter,
    RunPaths,
    read_chunks,
    read_commit,
    remove_tree,
    write_commit,
    write_parquet,
    write_table_files,
)

log = logging.getLogger(__name__)


def column(name: str) -> Callable[[pa.Table], list[str]]:
    """A key function: the values of one column."""
    return lambda table: table.column(name).to_pylist()


@dataclass
class RunLifecycle:
    """``input_keys``: the manifest's key of each input; ``row_keys``: the input key of each result row.

    ``rows_per_input``: how many rows one input yields (the evaluate job: one
    per model). All of an input's rows are written in one batch, so they
    become durable together.
    """

    output_uri: str
    run_id: str
    schema: pa.Schema
    storage: storage.StorageConfig
    kind: str
    input_keys: Callable[[pa.Table], list[str]] = column(S.KEY)
    row_keys: Callable[[pa.Table], list[str]] = column(S.INPUT_KEY)
    rows_per_input: int = 1
    rows_per_file: int = 100_000
    flush_rows: int = 64
    flush_seconds: float = 30.0
    resumed_inputs: int = 0
    paths: RunPaths = field(init=False)

    def __post_init__(self) -> None:
        self.paths = RunPaths.of(self.output_uri, self.run_id)

    def committed(self) -> dict | None:
        """The commit marker, when this run id is already committed."""
        return read_commit(self.paths, self.storage)

    def start(self, manifest: pa.Table) -> pa.Table:
        """Record the manifest; return the inputs whose rows are not durable yet (all of them on a first run)."""
        listed = set(self.input_keys(manifest))
        durable = {
            k for chunk in read_chunks(self.paths.chunks_uri, self.schema, self.storage) for k in self.row_keys(chunk)
        } & listed
        self.resumed_inputs = len(durable)
        if durable:
            log.info(
                "run %s resumes: %d of %d inputs are already durable",
                self.paths.run_uri,
                len(durable),
                manifest.num_rows,
            )
        remove_tree(self.paths.clips_uri, self.storage)  # a compaction that did not finish
        write_parquet(manifest, self.paths.manifest_uri, self.storage)
        return manifest.filter(pa.array([k not in durable for k in self.input_keys(manifest)], type=pa.bool_()))

    @contextlib.contextmanager
    def rows(self) -> Iterator[ChunkWriter]:
        """A writer that makes rows durable as they come (flushed on leaving, also on an error)."""
        chunks = ChunkWriter(self.paths.chunks_uri, self.schema, self.storage, self.flush_rows, self.flush_seconds)
        try:
            yield chunks
        finally:
            chunks.close()

    def collect(self, manifest: pa.Table) -> pa.Table:
        """Every durable row of the listed inputs, an input's rows from the first chunk that holds it, in key order.

        Raises when an input has no rows or the wrong number: such a run must not commit.
        """
        listed = collections.Counter(self.input_keys(manifest))
        parts, taken = [], set()
        # Chunks in the order they were written: a batch retried after a crash may have left a second copy.
        for chunk in read_chunks(self.paths.chunks_uri, self.schema, self.storage):
            keys = self.row_keys(chunk)
            new = {k for k in keys if k in listed and k not in taken}
            parts.append(chunk.filter(pa.array([k in new for k in keys], type=pa.bool_())))
            taken |= new
        table = pa.concat_tables(parts) if parts else self.schema.empty_table()
        keys = self.row_keys(table)
        done = table.take(pa.array(sorted(range(len(keys)), key=keys.__getitem__), type=pa.int64()))
        seen = collections.Counter(keys)
        expected = collections.Counter({k: n * self.rows_per_input for k, n in listed.items()})
        if seen != expected:
            missing = sorted((expected - seen).keys())[:5]
            extra = sorted((seen - expected).keys())[:5]
            raise RuntimeError(
                f"the {self.kind} table does not match the manifest: missing {missing}, duplicated/unknown {extra}"
            )
        return done

    def commit(self, table: pa.Table, marker: dict) -> dict:
        """Write the table files, then the marker (last), then drop the chunks; returns the marker written."""
        files = write_table_files(table, self.paths.clips_uri, self.schema, self.rows_per_file, self.storage)
        marker = {
            "run_id": self.run_id,
            "kind": self.kind,
            "committed_at": dt.datetime.now(dt.UTC).isoformat(),
            **marker,
            "table_files": [f"clips/{name}" for name in files],
        }
        write_commit(self.paths, marker, self.storage)
        remove_tree(self.paths.chunks_uri, self.storage)
        log.info("committed %s", self.paths.commit_uri)
        return marker
