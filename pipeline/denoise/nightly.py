"""Incremental nightly runs over a growing prefix, with a ledger of what each input's current result is.

``<output>/ledger/ledger.parquet`` (:data:`pipeline.core.schema.LEDGER_SCHEMA`)
holds one row per input key: its identity when it was processed (ETag, else
size + mtime), the model id and output-config hash that produced the result,
the run id, status, error and how many attempts failed. A nightly run:

1. applies any committed nightly run the ledger does not know yet (a run killed
   between its commit and its ledger update loses nothing);
2. lists the input and picks what is new, changed, failed before for a
   transient reason (storage, the job, the model; fewer than ``max_attempts``
   times) or, with ``reprocess_stale``, produced by another model or output
   config. A file whose content failed (not audio, truncated, …) is not
   retried until it changes;
3. runs the denoise job over exactly those inputs (same run layout, same
   resume of an interrupted run id) and commits;
4. updates the ledger from the committed table, atomically.

Inputs that disappeared from the prefix are reported; their outputs are kept
unless ``prune`` is set. The ledger changes only after a commit, so a run
killed at any point and started again leaves no duplicate and no lost row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass

import pyarrow as pa

from pipeline.audio.codec import AUDIO_ERROR_KINDS
from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.config import to_dict
from pipeline.core.ledger import Ledger, identity
from pipeline.core.results import KIND_NIGHTLY
from pipeline.core.runs import RunPaths, read_commit
from pipeline.denoise.job import DenoiseConfig, run_denoise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NightlyConfig:
    """``max_attempts``: an input whose processing failed this many times is not retried (until it changes)."""

    max_attempts: int = 3
    reprocess_stale: bool = False
    prune: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")


def nightly_run_id(now: dt.datetime | None = None) -> str:
    """The UTC date: a scheduler's retry on the same day is the same run."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d")


def output_config_sha256(config: DenoiseConfig) -> str:
    """Hash of the settings that shape an output (decode, windows, write), not where or how fast it runs."""
    settings = to_dict(config)
    relevant = {
        "extensions": settings["extensions"],
        "decode": settings["decode"],
        "write": settings["write"],
        "enhance": settings["model"]["enhance"],
        "stream": settings["stream"],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan(
    manifest: pa.Table, ledger: Ledger, model_id: str, config_sha: str, nightly: NightlyConfig
) -> dict[str, list[str]]:
    """Which listed keys to process and why, and which ledger keys are gone from the input."""
    reasons: dict[str, list[str]] = {
        "new": [],
        "changed": [],
        "retry": [],
        "stale": [],
        "unchanged": [],
        "gave_up": [],
        "bad_content": [],
    }
    listed = set()
    for row in manifest.to_pylist():
        key = row[S.KEY]
        listed.add(key)
        before = ledger.rows.get(key)
        if before is None:
            reasons["new"].append(key)
        elif before[S.IDENTITY] != identity(row[S.SIZE], row[S.ETAG], row[S.MTIME]):
            reasons["changed"].append(key)
        elif before[S.STATUS] != S.STATUS_OK:
            # The same bytes would fail the same way: only storage, job and model failures are retried.
            if before[S.ERROR_KIND] in AUDIO_ERROR_KINDS:
                reasons["bad_content"].append(key)
            else:
                reasons["retry" if before[S.ATTEMPTS] < nightly.max_attempts else "gave_up"].append(key)
        elif nightly.reprocess_stale and (
            before[S.MODEL_ID] != model_id or before[S.OUTPUT_CONFIG_SHA256] != config_sha
        ):
            reasons["stale"].append(key)
        else:
            reasons["unchanged"].append(key)
    reasons["deleted"] = sorted(set(ledger.rows) - listed)
    return reasons


TODO_REASONS = ("new", "changed", "retry", "stale")


def _catch_up(output_uri: str, ledger: Ledger, config: storage.StorageConfig) -> bool:
    """Apply committed nightly runs the ledger has not seen (oldest first); True when it changed."""
    from pipeline.core.results import committed_runs, read_run_table

    runs = committed_runs(output_uri, config)
    behind = [r.run_id for r in runs if r.kind == KIND_NIGHTLY and r.run_id not in ledger.applied_runs]
    if behind:
        log.info("ledger catches up with committed runs %s", ", ".join(behind))
    return ledger.catch_up(runs, lambda run: read_run_table(run, config))


def _prune(output_uri: str, ledger: Ledger, keys: list[str], config: storage.StorageConfig) -> int:
    """Delete the outputs of inputs that are gone, and forget them."""
    removed = 0
    for key in keys:
        row = ledger.rows.pop(key)
        if row[S.OUTPUT_KEY]:
            uri = storage.join(RunPaths.of(output_uri, row[S.RUN_ID]).audio_uri, row[S.OUTPUT_KEY])
            if storage.exists(uri, config):
                fs, path = storage.filesystem(uri, config)
                fs.rm(path)
                removed += 1
    return removed


def run_nightly(config: DenoiseConfig, nightly: NightlyConfig, dry_run: bool = False) -> dict:
    """One night: process what is new since the ledger, commit, update the ledger; returns a summary.

    ``dry_run``: only the plan (``result["plan"]``: reason → keys), with the ledger caught up in memory;
    nothing is written and no Ray is started.
    """
    from pipeline.core.checkpoints import load_model
    from pipeline.core.manifest import list_inputs, require_prefix

    if config.reference_uri:
        require_prefix(config.reference_uri, "reference", config.storage)
    run_id = config.run_id or nightly_run_id()
    config = dataclasses.replace(config, run_id=run_id)
    ledger = Ledger.read(config.output_uri, config.storage)
    if _catch_up(config.output_uri, ledger, config.storage) and not dry_run:
        ledger.write(config.output_uri, config.storage)

    manifest = list_inputs(config.input_uri, config.extensions, config.storage)
    loaded = load_model(config.model.checkpoint_uri, config.storage, config.model.sampler)
    config_sha = output_config_sha256(config)
    reasons = plan(manifest, ledger, loaded.model_id, config_sha, nightly)
    todo = {k for r in TODO_REASONS for k in reasons[r]}
    counts = {r: len(v) for r, v in reasons.items()}
    result = {
        "run_id": run_id,
        "counts": counts,
        "deleted": reasons["deleted"][:20],
        "gave_up": reasons["gave_up"][:20],
        "bad_content": reasons["bad_content"][:20],
        "run_uri": RunPaths.of(config.output_uri, run_id).run_uri,
    }

    if dry_run:
        result.update(
            dry_run=True, plan={r: reasons[r] for r in (*TODO_REASONS, "deleted")}, ledger_rows=len(ledger.rows)
        )
        return result
    dirty = False
    committed = read_commit(RunPaths.of(config.output_uri, run_id), config.storage)
    if committed is not None:
        # A rerun of a finished night: it keeps its outputs, and says what it would now find.
        result.update(already_committed=True, summary=committed["summary"], pending=len(todo))
    elif not todo:
        result["nothing_new"] = True
    else:
        subset = manifest.filter(pa.array([k in todo for k in manifest.column(S.KEY).to_pylist()]))
        extra = {KIND_NIGHTLY: {S.OUTPUT_CONFIG_SHA256: config_sha, "reasons": {r: counts[r] for r in TODO_REASONS}}}
        summary = run_denoise(config, manifest=subset, kind=KIND_NIGHTLY, marker_extra=extra)
        marker = read_commit(RunPaths.of(config.output_uri, run_id), config.storage)
        from pipeline.core.results import Run, read_run_table

        run = Run(run_id=run_id, kind=KIND_NIGHTLY, marker=marker, uri=RunPaths.of(config.output_uri, run_id).run_uri)
        ledger.apply(run_id, marker, read_run_table(run, config.storage))
        result["summary"], dirty = summary, True
    if nightly.prune and reasons["deleted"]:
        result["pruned_outputs"] = _prune(config.output_uri, ledger, reasons["deleted"], config.storage)
        dirty = True
    if dirty:
        ledger.write(config.output_uri, config.storage)
    result["ledger_rows"] = len(ledger.rows)
    return result
