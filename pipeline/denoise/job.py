"""The batch denoise job: list → decode (CPU tasks) → model (actors) → write (CPU tasks) → commit.

Run layout under the output prefix::

    runs/<run_id>/manifest.parquet      what was listed (written first)
    runs/<run_id>/audio/<relative key>  denoised audio, mirrored layout
    runs/<run_id>/clips/part-*.parquet  one row per listed input (CLIP_SCHEMA)
    runs/<run_id>/_COMMITTED.json       written last: resolved config, counts, files

    runs/<run_id>/_chunks/               durable rows of a run in progress (removed at commit)

Readers trust a run only once ``_COMMITTED.json`` exists. The same run id
writes the same keys; a rerun of an uncommitted run processes only the inputs
whose rows are not durable yet, and a committed run is not run again.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.config import to_dict
from pipeline.core.lifecycle import RunLifecycle
from pipeline.core.progress import Progress, quiet_ray_data
from pipeline.core.runs import RunPaths, default_run_id, init_ray, split_blocks
from pipeline.inference.actors import ActorConfig, map_model
from pipeline.inference.decode_stage import DecodeConfig, DecodeStage
from pipeline.inference.longform import LongFileWriter, StreamConfig
from pipeline.inference.model_stage import ModelStageConfig
from pipeline.inference.rows import AUDIO, ENHANCED_AUDIO
from pipeline.inference.write_stage import WriteConfig, WriteStage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DenoiseConfig:
    input_uri: str = ""
    output_uri: str = ""
    reference_uri: str | None = None
    run_id: str | None = None
    extensions: tuple[str, ...] = (".wav", ".flac", ".ogg")
    rows_per_block: int = 16
    cpu_batch_size: int = 4
    # Decode/write are I/O plus light DSP. A CPU share different from the model
    # actor's also keeps Ray Data from fusing them into the actor.
    cpus_per_cpu_task: float = 0.5
    rows_per_file: int = 100_000
    # Rows become durable (a rerun of the run id skips them) every flush_rows rows or flush_seconds.
    flush_rows: int = 64
    flush_seconds: float = 30.0
    # Without a terminal, a progress line at most this often (pipeline/core/progress.py).
    progress_seconds: float = 30.0
    ray_address: str | None = None
    storage: storage.StorageConfig = field(default_factory=storage.StorageConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    model: ModelStageConfig = field(default_factory=ModelStageConfig)
    actors: ActorConfig = field(default_factory=ActorConfig)
    write: WriteConfig = field(default_factory=WriteConfig)

    def __post_init__(self) -> None:
        if not self.input_uri or not self.output_uri:
            raise ValueError("input_uri and output_uri are required")
        storage.check_disjoint(self.input_uri, self.output_uri)
        self.actors.check_cpu_share(self.cpus_per_cpu_task)
        if self.flush_rows < 1 or self.flush_seconds <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
        if not self.progress_seconds > 0:
            raise ValueError(f"progress_seconds must be > 0, got {self.progress_seconds}")


def build_dataset(config: DenoiseConfig, manifest: pa.Table, run_id: str, model_rate: int, paths: RunPaths):
    """The Ray Data plan: plain stage callables wired with their resources here."""
    import ray

    decode = DecodeStage(config.input_uri, model_rate, config.decode, config.storage, config.stream)
    write = WriteStage(run_id, paths.audio_uri, config.reference_uri, model_rate, config.write, config.storage)
    long_files = LongFileWriter(
        config.input_uri,
        paths.audio_uri,
        config.decode.channel_policy,
        config.write.output_format,
        config.stream,
        config.storage,
        full_band=config.decode.full_band,
    )
    blocks = split_blocks(manifest, config.rows_per_block)
    ds = ray.data.from_arrow(blocks)
    cpu = {"batch_format": "pyarrow", "batch_size": config.cpu_batch_size, "num_cpus": config.cpus_per_cpu_task}
    ds = ds.map_batches(decode, **cpu)
    # With DNSMOS or reference metrics the noisy input travels on beside the output: the write stage
    # scores both, so a report shows where the input stood (input_* columns).
    reference_metrics = bool(config.reference_uri and config.write.reference_metrics)
    output_column = ENHANCED_AUDIO if config.write.wants_dnsmos or reference_metrics else AUDIO
    ds = map_model(
        ds, config.actors, config.model, config.storage, output_column, long_files=long_files, blocks=len(blocks)
    )
    if reference_metrics or config.write.wants_dnsmos:
        # The actor emits one block per batch of clips; split it again so that
        # metrics (PESQ is the slowest step per clip) spread over CPU tasks.
        # Without metrics, writing is cheap and more tasks would only add overhead.
        ds = ds.repartition(target_num_rows_per_block=config.cpu_batch_size)
    return ds.map_batches(write, **cpu)


def stage_cost(table: pa.Table, actors: ActorConfig, use_gpu: bool, cpus_per_cpu_task: float) -> dict:
    """CPU- and GPU-seconds the stages held while working on these rows, and per audio-hour.

    Busy time × the resources each stage holds: decode and write tasks hold
    ``cpus_per_cpu_task`` CPUs, model actors ``cpus_per_actor`` CPUs and, on
    GPU clusters, ``gpus_per_actor`` GPUs. Idle actors and the driver are not
    counted, so this is what the work costs, not what the cluster was billed.
    """

    def total(column: str) -> float:
        return float(sum(v for v in table.column(column).to_pylist() if v is not None))

    cpu_task_seconds = total(S.SECONDS_DECODE) + total(S.SECONDS_WRITE)
    model_seconds = total(S.SECONDS_MODEL)
    cpu = cpu_task_seconds * cpus_per_cpu_task + model_seconds * actors.cpus_per_actor
    gpu = model_seconds * actors.gpus_per_actor if use_gpu else 0.0
    ok = [
        d
        for d, st in zip(table.column(S.DURATION_SECONDS).to_pylist(), table.column(S.STATUS).to_pylist())
        if st == S.STATUS_OK
    ]
    hours = sum(d or 0.0 for d in ok) / 3600.0
    return {
        "cpu_seconds": cpu,
        "gpu_seconds": gpu,
        "cpu_seconds_per_audio_hour": cpu / hours if hours else math.nan,
        "gpu_seconds_per_audio_hour": gpu / hours if hours else math.nan,
        "model_seconds": model_seconds,
        "use_gpu": use_gpu,
    }


def summarize(table: pa.Table, wall_seconds: float, processed_keys: set[str] | None = None) -> dict:
    """Counts, hours, errors by kind and throughput of a finished run's clip table.

    ``processed_keys``: the inputs this attempt processed (None: all). After a resume the rows made
    durable by an earlier attempt took none of ``wall_seconds``: ``audio_seconds_per_second`` counts
    only this attempt's audio, ``audio_seconds_per_second_all_rows`` every row (the inflated figure).
    """
    rows = table.select([S.INPUT_KEY, S.STATUS, S.ERROR_KIND, S.DURATION_SECONDS, S.STREAMED]).to_pylist()
    ok = [r for r in rows if r[S.STATUS] == S.STATUS_OK]
    kinds = collections.Counter(r[S.ERROR_KIND] or "unknown" for r in rows if r[S.STATUS] != S.STATUS_OK)
    audio_seconds = sum(r[S.DURATION_SECONDS] or 0.0 for r in ok)
    now = rows if processed_keys is None else [r for r in rows if r[S.INPUT_KEY] in processed_keys]
    processed_seconds = sum(r[S.DURATION_SECONDS] or 0.0 for r in now if r[S.STATUS] == S.STATUS_OK)
    return {
        "clips": len(rows),
        "ok": len(ok),
        "errors": len(rows) - len(ok),
        "errors_by_kind": dict(sorted(kinds.items())),
        "streamed": sum(1 for r in ok if r[S.STREAMED]),
        "audio_seconds": audio_seconds,
        "audio_hours": audio_seconds / 3600.0,
        "wall_seconds": wall_seconds,
        "resumed_rows": len(rows) - len(now),
        "processed_clips": len(now),
        "audio_seconds_per_second": processed_seconds / wall_seconds if wall_seconds else math.nan,
        "audio_seconds_per_second_all_rows": audio_seconds / wall_seconds if wall_seconds else math.nan,
    }


def run_denoise(
    config: DenoiseConfig,
    dry_run: bool = False,
    manifest: pa.Table | None = None,
    kind: str = "denoise",
    marker_extra: dict | None = None,
) -> dict:
    """Run (or, with ``dry_run``, only list) the job; returns the summary that the commit marker holds.

    ``manifest``: the inputs to process (default: everything under
    ``input_uri``); the nightly job passes only what is new. A rerun of an
    uncommitted run id processes only the inputs whose rows are not durable yet
    (:class:`pipeline.core.runs.ChunkWriter`).
    """
    from pipeline.core.checkpoints import load_model
    from pipeline.core.manifest import list_inputs, require_prefix

    if config.reference_uri:
        require_prefix(config.reference_uri, "reference", config.storage)
    run_id = config.run_id or default_run_id()
    run = RunLifecycle(
        config.output_uri,
        run_id,
        S.CLIP_SCHEMA,
        config.storage,
        kind,
        rows_per_file=config.rows_per_file,
        flush_rows=config.flush_rows,
        flush_seconds=config.flush_seconds,
    )
    paths = run.paths
    committed = run.committed()
    if committed is not None:
        log.info("run %s is already committed at %s; nothing to do", run_id, paths.commit_uri)
        return {**committed["summary"], "run_id": run_id, "already_committed": True, "run_uri": paths.run_uri}

    started = time.perf_counter()
    if manifest is None:
        manifest = list_inputs(config.input_uri, config.extensions, config.storage)
    if manifest.num_rows == 0 and not dry_run:
        # Nothing to do is an operator's mistake here (a nightly run says "nothing new"): no Ray, no run.
        raise ValueError(f"no audio files ({', '.join(config.extensions)}) under {config.input_uri}")
    if dry_run:
        total = sum(manifest.column(S.SIZE).to_pylist())
        return {
            "run_id": run_id,
            "dry_run": True,
            "clips": manifest.num_rows,
            "bytes": total,
            "keys": manifest.column(S.KEY).to_pylist(),
            "run_uri": paths.run_uri,
        }

    loaded = load_model(config.model.checkpoint_uri, config.storage, config.model.sampler)
    model_rate = int(loaded.model.config.sample_rate)
    todo = run.start(manifest)
    use_gpu = False
    with run.rows() as rows:
        if todo.num_rows:
            import ray

            init_ray(config.ray_address)
            quiet_ray_data()
            use_gpu = config.actors.resolve(ray.cluster_resources())[0]
            progress = Progress("denoise", todo.num_rows, config.progress_seconds)
            for batch in build_dataset(config, todo, run_id, model_rate, paths).iter_batches(
                batch_format="pyarrow", batch_size=None
            ):
                rows.write(batch)
                progress.update(batch.num_rows, float(pc.sum(batch.column(S.DURATION_SECONDS)).as_py() or 0.0))
            progress.close()
    done = run.collect(manifest)
    summary = summarize(done, time.perf_counter() - started, set(todo.column(S.KEY).to_pylist()))
    summary["cost"] = stage_cost(done, config.actors, use_gpu, config.cpus_per_cpu_task)
    run.commit(
        done,
        {
            "model_id": loaded.model_id,
            "checkpoint_uri": loaded.uri,
            "manifest": "manifest.parquet",
            "summary": summary,
            "config": to_dict(config) | {"run_id": run_id},
            **(marker_extra or {}),
        },
    )
    return {**summary, "run_id": run_id, "model_id": loaded.model_id, "run_uri": paths.run_uri}
