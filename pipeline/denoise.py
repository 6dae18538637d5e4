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
import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field

import pyarrow as pa

from pipeline import schema as S
from pipeline import storage
from pipeline.config import to_dict
from pipeline.longform import LongFileWriter, StreamConfig
from pipeline.runs import (
    ChunkWriter,
    RunPaths,
    TableWriter,
    default_run_id,
    init_ray,
    read_chunks,
    read_commit,
    remove_tree,
    split_blocks,
    write_commit,
    write_parquet,
)
from pipeline.stages import AUDIO, ENHANCED_AUDIO, DecodeConfig, DecodeStage, ModelStage, ModelStageConfig, WriteConfig, WriteStage

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ActorConfig:
    """Model-stage resources. ``use_gpu``: auto (GPU actors when the cluster has GPUs), yes, no.

    ``min_actors``/``max_actors`` 0 mean auto: one actor per GPU on a GPU
    cluster; on CPU, as many actors as fit in ``cpu_actor_share`` of the
    cluster's CPUs at ``cpus_per_actor`` each (the rest is left to decode and
    write). On CPU, several single-threaded actors beat one multi-threaded
    actor: the model's small convolutions scale poorly over threads, and a
    thread preempted by a CPU task stalls the others (docs/benchmarks.md).
    """

    min_actors: int = 0
    max_actors: int = 0
    use_gpu: str = "auto"
    gpus_per_actor: float = 1.0
    cpus_per_actor: float = 0.75
    cpu_actor_share: float = 0.75
    clips_per_batch: int = 8

    def __post_init__(self) -> None:
        if self.use_gpu not in ("auto", "yes", "no"):
            raise ValueError("actors.use_gpu must be auto, yes or no")
        if self.min_actors < 0 or self.max_actors < 0:
            raise ValueError("actors.min_actors and actors.max_actors must be >= 0 (0 = size from the cluster)")
        if self.max_actors and self.min_actors > self.max_actors:
            raise ValueError(f"actors.min_actors ({self.min_actors}) must not exceed actors.max_actors ({self.max_actors})")
        if self.cpus_per_actor <= 0 or self.gpus_per_actor <= 0 or self.clips_per_batch < 1:
            raise ValueError("actors.cpus_per_actor and gpus_per_actor must be > 0, clips_per_batch >= 1")
        if not 0 < self.cpu_actor_share <= 1:
            raise ValueError("actors.cpu_actor_share must be in (0, 1]")

    def check_cpu_share(self, cpus_per_cpu_task: float) -> None:
        """Refuse a CPU-task share equal to the actor's.

        Ray Data fuses a task stage into the following actor stage when their
        CPU shares are equal; CPU work would then stall the model.
        """
        if cpus_per_cpu_task == self.cpus_per_actor:
            raise ValueError(
                "cpus_per_cpu_task must differ from actors.cpus_per_actor, "
                "else Ray Data fuses decode into the model actor and CPU work stalls the model"
            )

    def resolve(self, cluster: dict[str, float], blocks: int | None = None) -> tuple[bool, int, int]:
        """(use GPUs, min actors, max actors) for a cluster's resources (``ray.cluster_resources()``).

        An automatic pool never exceeds ``blocks``, the input's block count: a
        small job would only start actors that get no work.
        """
        gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 1.0)
        use_gpu = self.use_gpu == "yes" or (self.use_gpu == "auto" and gpus > 0)
        if use_gpu:
            auto = max(1, int(gpus // self.gpus_per_actor))
        else:
            auto = max(1, int(cpus * self.cpu_actor_share // self.cpus_per_actor))
        if blocks:
            auto = min(auto, blocks)
        high = self.max_actors or max(auto, self.min_actors)
        return use_gpu, self.min_actors or high, high


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


def build_dataset(config: DenoiseConfig, manifest: pa.Table, run_id: str, model_rate: int, paths: RunPaths):
    """The Ray Data plan: plain stage callables wired with their resources here."""
    import ray

    decode = DecodeStage(config.input_uri, model_rate, config.decode, config.storage, config.stream)
    write = WriteStage(run_id, paths.audio_uri, config.reference_uri, model_rate, config.write, config.storage)
    long_files = LongFileWriter(
        config.input_uri, paths.audio_uri, config.decode.channel_policy, config.write.output_format, config.stream, config.storage
    )
    blocks = split_blocks(manifest, config.rows_per_block)
    ds = ray.data.from_arrow(blocks)
    cpu = {"batch_format": "pyarrow", "batch_size": config.cpu_batch_size, "num_cpus": config.cpus_per_cpu_task}
    ds = ds.map_batches(decode, **cpu)
    # With DNSMOS the noisy input travels on beside the output (the write stage scores both).
    output_column = ENHANCED_AUDIO if config.write.wants_dnsmos else AUDIO
    ds = map_model(ds, config.actors, config.model, config.storage, output_column, long_files=long_files, blocks=len(blocks))
    if (config.reference_uri and config.write.reference_metrics) or config.write.wants_dnsmos:
        # The actor emits one block per batch of clips; split it again so that
        # metrics (PESQ is the slowest step per clip) spread over CPU tasks.
        # Without metrics, writing is cheap and more tasks would only add overhead.
        ds = ds.repartition(target_num_rows_per_block=config.cpu_batch_size)
    return ds.map_batches(write, **cpu)


def map_model(
    ds,
    actors: ActorConfig,
    model: ModelStageConfig,
    storage_config: storage.StorageConfig,
    output_column: str = AUDIO,
    long_files: LongFileWriter | None = None,
    blocks: int | None = None,
    prefix: str = "",
):
    """Wire the model stage: an actor pool, one GPU per actor when the cluster has GPUs (or when asked)."""
    import ray

    use_gpu, low, high = actors.resolve(ray.cluster_resources(), blocks)
    log.info("model stage: %d-%d %s actors", low, high, "GPU" if use_gpu else "CPU")
    kwargs = {"config": model, "storage_config": storage_config, "output_column": output_column, "long_files": long_files,
              "prefix": prefix}
    return ds.map_batches(
        ModelStage,
        fn_constructor_kwargs=kwargs,
        batch_format="pyarrow",
        batch_size=actors.clips_per_batch,
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high),
        num_gpus=actors.gpus_per_actor if use_gpu else 0,
        num_cpus=actors.cpus_per_actor,
    )


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
    ok = [d for d, st in zip(table.column(S.DURATION_SECONDS).to_pylist(), table.column(S.STATUS).to_pylist()) if st == S.STATUS_OK]
    hours = sum(d or 0.0 for d in ok) / 3600.0
    return {
        "cpu_seconds": cpu,
        "gpu_seconds": gpu,
        "cpu_seconds_per_audio_hour": cpu / hours if hours else math.nan,
        "gpu_seconds_per_audio_hour": gpu / hours if hours else math.nan,
        "model_seconds": model_seconds,
        "use_gpu": use_gpu,
    }


def summarize(table: pa.Table, wall_seconds: float) -> dict:
    """Counts, hours, errors by kind and throughput of a finished run's clip table."""
    rows = table.select([S.STATUS, S.ERROR, S.DURATION_SECONDS, S.STREAMED]).to_pylist()
    ok = [r for r in rows if r[S.STATUS] == S.STATUS_OK]
    kinds = collections.Counter((r[S.ERROR] or "unknown").split(":", 1)[0] for r in rows if r[S.STATUS] != S.STATUS_OK)
    audio_seconds = sum(r[S.DURATION_SECONDS] or 0.0 for r in ok)
    return {
        "clips": len(rows),
        "ok": len(ok),
        "errors": len(rows) - len(ok),
        "errors_by_kind": dict(sorted(kinds.items())),
        "streamed": sum(1 for r in ok if r[S.STREAMED]),
        "audio_seconds": audio_seconds,
        "audio_hours": audio_seconds / 3600.0,
        "wall_seconds": wall_seconds,
        "audio_seconds_per_second": audio_seconds / wall_seconds if wall_seconds else math.nan,
    }


def run_denoise(
    config: DenoiseConfig, dry_run: bool = False, manifest: pa.Table | None = None, kind: str = "denoise", marker_extra: dict | None = None
) -> dict:
    """Run (or, with ``dry_run``, only list) the job; returns the summary that the commit marker holds.

    ``manifest``: the inputs to process (default: everything under
    ``input_uri``); the nightly job passes only what is new. A rerun of an
    uncommitted run id processes only the inputs whose rows are not durable yet
    (:class:`pipeline.runs.ChunkWriter`).
    """
    from pipeline.checkpoints import load_model
    from pipeline.manifest import list_inputs

    run_id = config.run_id or default_run_id()
    paths = RunPaths.of(config.output_uri, run_id)
    committed = read_commit(paths, config.storage)
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
        return {"run_id": run_id, "dry_run": True, "clips": manifest.num_rows, "bytes": total,
                "keys": manifest.column(S.KEY).to_pylist(), "run_uri": paths.run_uri}

    loaded = load_model(config.model.checkpoint_uri, config.storage)
    model_rate = int(loaded.model.config.sample_rate)
    listed = set(manifest.column(S.KEY).to_pylist())
    durable = read_chunks(paths.chunks_uri, S.CLIP_SCHEMA, config.storage)
    durable_keys = set(durable.column(S.INPUT_KEY).to_pylist()) & listed
    if durable_keys:
        log.info("run %s resumes: %d of %d inputs are already durable", run_id, len(durable_keys), manifest.num_rows)
    todo = manifest.filter(pa.array([k not in durable_keys for k in manifest.column(S.KEY).to_pylist()]))
    remove_tree(paths.clips_uri, config.storage)  # a compaction that did not finish
    write_parquet(manifest, paths.manifest_uri, config.storage)

    chunks = ChunkWriter(paths.chunks_uri, S.CLIP_SCHEMA, config.storage, config.flush_rows, config.flush_seconds)
    use_gpu = False
    if todo.num_rows:
        import ray

        init_ray(config.ray_address)
        use_gpu = config.actors.resolve(ray.cluster_resources())[0]
        for batch in build_dataset(config, todo, run_id, model_rate, paths).iter_batches(batch_format="pyarrow", batch_size=None):
            chunks.write(batch)
    chunks.close()
    done = _unique_rows(read_chunks(paths.chunks_uri, S.CLIP_SCHEMA, config.storage), listed)
    _check_complete(manifest, done)

    writer = TableWriter(paths.clips_uri, S.CLIP_SCHEMA, config.rows_per_file, config.storage)
    writer.write(done)
    writer.close()
    summary = summarize(done, time.perf_counter() - started)
    summary["resumed_rows"] = len(durable_keys)
    summary["cost"] = stage_cost(done, config.actors, use_gpu, config.cpus_per_cpu_task)
    marker = {
        "run_id": run_id,
        "kind": kind,
        "committed_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "model_id": loaded.model_id,
        "checkpoint_uri": loaded.uri,
        "manifest": "manifest.parquet",
        "table_files": [f"clips/{name}" for name in writer.files],
        "summary": summary,
        "config": to_dict(config) | {"run_id": run_id},
        **(marker_extra or {}),
    }
    write_commit(paths, marker, config.storage)
    remove_tree(paths.chunks_uri, config.storage)
    log.info("committed %s", paths.commit_uri)
    return {**summary, "run_id": run_id, "model_id": loaded.model_id, "run_uri": paths.run_uri}


def _unique_rows(table: pa.Table, listed: set[str]) -> pa.Table:
    """One row per listed input key (the first durable one), in key order."""
    keys = table.column(S.INPUT_KEY).to_pylist()
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in listed:
            first.setdefault(k, i)
    order = [first[k] for k in sorted(first)]
    return table.take(pa.array(order, type=pa.int64()))


def _check_complete(manifest: pa.Table, done: pa.Table) -> None:
    """Every listed key exactly once: anything else is a bug, and the run must not commit."""
    listed = collections.Counter(manifest.column(S.KEY).to_pylist())
    seen = collections.Counter(done.column(S.INPUT_KEY).to_pylist())
    if listed != seen:
        missing = sorted((listed - seen).elements())[:5]
        extra = sorted((seen - listed).elements())[:5]
        raise RuntimeError(f"clip table does not match the manifest: missing {missing}, duplicated/unknown {extra}")
