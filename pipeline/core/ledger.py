"""The ledger of a nightly output prefix: one row per input key, its current result and what produced it.

``<output>/ledger/ledger.parquet`` (:data:`pipeline.core.schema.LEDGER_SCHEMA`),
written atomically and only from committed runs (:mod:`pipeline.denoise.nightly`
decides what to run from it; :class:`pipeline.core.results.Results` shows it as
the ``ledger`` view). The committed runs it has applied are listed in the file's
metadata, so a run committed just before a crash is applied on the next night.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa

from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.results import KIND_NIGHTLY, Run
from pipeline.core.runs import read_parquet, write_parquet

LEDGER_KEY = "ledger/ledger.parquet"
APPLIED_RUNS = b"applied_runs"


def identity(size, etag, mtime) -> str:
    """What says an object changed: its ETag where the store gives one, else size and modification time."""
    if etag:
        return f"etag:{etag}"
    return f"size:{size}:mtime:{mtime.isoformat() if mtime else None}"


def legacy_error_kind(error: str | None) -> str | None:
    """The kind of an error in a ledger written before ``error_kind`` was a column: the text before its colon."""
    return error.split(":", 1)[0] if error else None


@dataclass
class Ledger:
    rows: dict[str, dict]
    applied_runs: list[str]

    @classmethod
    def read(cls, output_uri: str, config: storage.StorageConfig) -> Ledger:
        uri = storage.join(output_uri, LEDGER_KEY)
        if not storage.exists(uri, config):
            return cls(rows={}, applied_runs=[])
        table = read_parquet(uri, config)
        meta = table.schema.metadata or {}
        applied = json.loads(meta.get(APPLIED_RUNS, b"[]"))
        names = [S.OUTPUT_CONFIG_SHA256 if n == S.LEGACY_OUTPUT_CONFIG_SHA256 else n for n in table.column_names]
        table = table.rename_columns(names)
        if S.ERROR_KIND not in table.column_names:  # written before the column existed
            kinds = [legacy_error_kind(e) for e in table.column(S.ERROR).to_pylist()]
            table = table.append_column(S.ERROR_KIND, pa.array(kinds, pa.string()))
        table = table.select(S.LEDGER_SCHEMA.names)
        return cls(rows={r[S.INPUT_KEY]: r for r in table.cast(S.LEDGER_SCHEMA).to_pylist()}, applied_runs=applied)

    def write(self, output_uri: str, config: storage.StorageConfig) -> None:
        """One Parquet object, written atomically (a reader sees the old ledger or the new one)."""
        rows = [self.rows[k] for k in sorted(self.rows)]
        table = pa.Table.from_pylist(rows, schema=S.LEDGER_SCHEMA)
        table = table.replace_schema_metadata({APPLIED_RUNS: json.dumps(self.applied_runs).encode()})
        write_parquet(table, storage.join(output_uri, LEDGER_KEY), config)

    def apply(self, run_id: str, marker: dict, clips: pa.Table) -> None:
        """Take a committed run's rows as the current results of their inputs."""
        now = dt.datetime.now(dt.UTC)
        nightly = marker.get(KIND_NIGHTLY, {})
        config_sha = nightly.get(S.OUTPUT_CONFIG_SHA256, nightly.get(S.LEGACY_OUTPUT_CONFIG_SHA256))
        has_kind = S.ERROR_KIND in clips.column_names  # runs committed before the column have only the text
        for row in clips.to_pylist():
            key = row[S.INPUT_KEY]
            ident = identity(row[S.INPUT_SIZE], row[S.INPUT_ETAG], row[S.INPUT_MTIME])
            before = self.rows.get(key)
            failed = row[S.STATUS] != S.STATUS_OK
            attempts = 0
            if failed:
                attempts = 1 + (
                    before[S.ATTEMPTS]
                    if before and before[S.IDENTITY] == ident and before[S.STATUS] != S.STATUS_OK
                    else 0
                )
            self.rows[key] = {
                S.INPUT_KEY: key,
                S.INPUT_SIZE: row[S.INPUT_SIZE],
                S.INPUT_ETAG: row[S.INPUT_ETAG],
                S.INPUT_MTIME: row[S.INPUT_MTIME],
                S.IDENTITY: ident,
                S.MODEL_ID: marker.get("model_id"),
                S.OUTPUT_CONFIG_SHA256: config_sha,
                S.RUN_ID: run_id,
                S.STATUS: row[S.STATUS],
                S.ERROR: row[S.ERROR],
                S.ERROR_KIND: (row[S.ERROR_KIND] if has_kind else legacy_error_kind(row[S.ERROR])) if failed else None,
                S.ATTEMPTS: attempts,
                S.OUTPUT_KEY: row[S.OUTPUT_KEY],
                S.UPDATED_AT: now,
            }
        self.applied_runs.append(run_id)

    def catch_up(self, runs: Iterable[Run], table_of: Callable[[Run], pa.Table]) -> bool:
        """Apply the committed nightly runs (oldest first) not applied yet; True when the ledger changed."""
        changed = False
        for run in runs:
            if run.kind == KIND_NIGHTLY and run.run_id not in self.applied_runs:
                self.apply(run.run_id, run.marker, table_of(run))
                changed = True
        return changed
