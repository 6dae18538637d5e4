"""The run catalog of an output prefix: its committed runs, their markers and their tables.

Only committed runs are read: a run exists for readers once its
``_COMMITTED.json`` does, and only the table files that marker lists are
read (a crashed attempt's stray part files are never seen). Markers and
tables are read whole through :func:`pipeline.core.storage.read_bytes` (the
retrying path, one Parquet reader: :func:`pipeline.core.runs.read_parquet`),
so local prefixes, ``s3://`` and the other fsspec protocols work alike.
The nightly ledger (:mod:`pipeline.core.ledger`) and the DuckDB views of
``diffgmm query`` and ``diffgmm report`` (:mod:`pipeline.reporting.views`)
are built on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass

import pyarrow as pa

from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.runs import COMMIT_MARKER, read_parquet

log = logging.getLogger(__name__)

KIND_DENOISE = "denoise"
KIND_EVALUATE = "evaluate"
KIND_NIGHTLY = "nightly"  # a denoise run over what was new (pipeline.denoise.nightly): same table
CLIP_KINDS = (KIND_DENOISE, KIND_NIGHTLY)

# The runs view: one row per committed run.
KIND = "kind"
COMMITTED_AT = "committed_at"
CONFIG_SHA256 = "config_sha256"
CLIPS = "clips"
OK = "ok"
ERRORS = "errors"
AUDIO_HOURS = "audio_hours"
WALL_SECONDS = "wall_seconds"
AUDIO_SECONDS_PER_SECOND = "audio_seconds_per_second"
CPU_SECONDS = "cpu_seconds"
GPU_SECONDS = "gpu_seconds"
CPU_SECONDS_PER_AUDIO_HOUR = "cpu_seconds_per_audio_hour"
GPU_SECONDS_PER_AUDIO_HOUR = "gpu_seconds_per_audio_hour"
RUN_URI = "run_uri"

RUNS_SCHEMA = pa.schema(
    [
        pa.field(S.RUN_ID, pa.string(), nullable=False),
        pa.field(KIND, pa.string(), nullable=False),
        pa.field(COMMITTED_AT, pa.timestamp("us", tz="UTC")),
        pa.field(S.MODEL_ID, pa.string()),
        pa.field(CONFIG_SHA256, pa.string()),
        pa.field(CLIPS, pa.int64()),
        pa.field(OK, pa.int64()),
        pa.field(ERRORS, pa.int64()),
        pa.field(AUDIO_HOURS, pa.float64()),
        pa.field(WALL_SECONDS, pa.float64()),
        pa.field(AUDIO_SECONDS_PER_SECOND, pa.float64()),
        pa.field(CPU_SECONDS, pa.float64()),
        pa.field(GPU_SECONDS, pa.float64()),
        pa.field(CPU_SECONDS_PER_AUDIO_HOUR, pa.float64()),
        pa.field(GPU_SECONDS_PER_AUDIO_HOUR, pa.float64()),
        pa.field(RUN_URI, pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class Run:
    """One committed run: its id, kind, marker (the parsed ``_COMMITTED.json``) and location."""

    run_id: str
    kind: str
    marker: dict
    uri: str

    @property
    def view(self) -> str:
        """The table view its rows are in: ``evals`` for an evaluation, ``clips`` for denoise and nightly runs."""
        return "evals" if self.kind == KIND_EVALUATE else "clips"

    @property
    def committed_at(self) -> dt.datetime | None:
        value = self.marker.get("committed_at")
        return dt.datetime.fromisoformat(value) if value else None


def config_sha256(config: dict | None) -> str | None:
    """A stable hash of a run's resolved config, the run id left out (two nights of one setup hash alike)."""
    if not config:
        return None
    stable = {k: v for k, v in config.items() if k != "run_id"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


def committed_runs(output_uri: str, config: storage.StorageConfig | None = None) -> list[Run]:
    """Every committed run under ``<output_uri>/runs/``, oldest commit first."""
    fs, root = storage.filesystem(storage.join(output_uri, "runs"), config)
    if not fs.exists(root):
        return []
    runs = []
    paths = storage.retrying(
        "listing", storage.join(output_uri, "runs"), lambda: fs.glob(f"{root}/*/{COMMIT_MARKER}"), config
    )
    for path in sorted(paths):
        run_id = path.rsplit("/", 2)[1]
        marker = json.loads(storage.read_bytes(storage.join(output_uri, "runs", run_id, COMMIT_MARKER), config))
        kind = marker.get("kind", KIND_DENOISE)
        runs.append(
            Run(
                run_id=marker.get("run_id", run_id),
                kind=kind,
                marker=marker,
                uri=storage.join(output_uri, "runs", run_id),
            )
        )
    runs.sort(key=lambda r: (r.committed_at or dt.datetime.min.replace(tzinfo=dt.UTC), r.run_id))
    return runs


def read_run_table(run: Run, config: storage.StorageConfig | None = None) -> pa.Table:
    """The rows of one committed run, cast to its explicit schema (only the files its marker lists)."""
    schema = S.EVAL_SCHEMA if run.kind == KIND_EVALUATE else S.CLIP_SCHEMA
    config = config or storage.StorageConfig()
    tables = [
        _conform(read_parquet(storage.join(run.uri, name), config), schema)
        for name in run.marker.get("table_files", [])
    ]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Older runs lack columns added since: they read as nulls, so every run fits one schema."""
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def runs_row(run: Run) -> dict:
    summary = run.marker.get("summary", {})
    cost = summary.get("cost", {})
    return {
        S.RUN_ID: run.run_id,
        KIND: run.kind,
        COMMITTED_AT: run.committed_at,
        S.MODEL_ID: run.marker.get("model_id"),
        CONFIG_SHA256: config_sha256(run.marker.get("config")),
        CLIPS: summary.get("clips"),
        OK: summary.get("ok"),
        ERRORS: summary.get("errors"),
        AUDIO_HOURS: summary.get("audio_hours"),
        WALL_SECONDS: summary.get("wall_seconds"),
        AUDIO_SECONDS_PER_SECOND: summary.get("audio_seconds_per_second"),
        CPU_SECONDS: cost.get(CPU_SECONDS),
        GPU_SECONDS: cost.get(GPU_SECONDS),
        CPU_SECONDS_PER_AUDIO_HOUR: cost.get(CPU_SECONDS_PER_AUDIO_HOUR),
        GPU_SECONDS_PER_AUDIO_HOUR: cost.get(GPU_SECONDS_PER_AUDIO_HOUR),
        RUN_URI: run.uri,
    }


class Results:
    """All committed runs under one output prefix, as Arrow tables (DuckDB views: :func:`pipeline.reporting.views.connect`)."""

    def __init__(self, output_uri: str, config: storage.StorageConfig | None = None) -> None:
        self.output_uri, self.config = output_uri, config
        self.runs = committed_runs(output_uri, config)
        self._tables: dict[str, pa.Table] = {}

    def run(self, run_id: str | None = None, kind: str = KIND_DENOISE) -> Run:
        """The committed run ``run_id``, or the newest of ``kind``; a clear error when there is none."""
        kinds = CLIP_KINDS if kind in CLIP_KINDS else (kind,)
        candidates = (
            [r for r in self.runs if r.kind in kinds]
            if run_id is None
            else [r for r in self.runs if r.run_id == run_id]
        )
        if not candidates:
            known = ", ".join(r.run_id for r in self.runs) or "none"
            what = f"run {run_id!r}" if run_id else f"{kind} run"
            raise LookupError(f"no committed {what} under {self.output_uri} (committed runs: {known})")
        return candidates[-1]

    def table(self, name: str) -> pa.Table:
        """``clips``, ``evals`` or ``runs`` as one Arrow table (read once, then kept)."""
        if name not in self._tables:
            if name == "runs":
                self._tables[name] = pa.Table.from_pylist([runs_row(r) for r in self.runs], schema=RUNS_SCHEMA)
            else:
                kinds, schema = ((KIND_EVALUATE,), S.EVAL_SCHEMA) if name == "evals" else (CLIP_KINDS, S.CLIP_SCHEMA)
                parts = [read_run_table(r, self.config) for r in self.runs if r.kind in kinds]
                self._tables[name] = pa.concat_tables(parts) if parts else schema.empty_table()
        return self._tables[name]

    def run_table(self, run: Run) -> pa.Table:
        import pyarrow.compute as pc

        table = self.table(run.view)
        return table.filter(pc.equal(table.column(S.RUN_ID), run.run_id))
