"""The model stage's actors: how many, CPU or GPU, and how the stage is wired into a Ray Data pipeline.

Shared by every job that runs a model over audio (denoise, evaluate). The stage
itself (:class:`pipeline.inference.model_stage.ModelStage`) is a plain callable class;
its resources are set here, where it is wired in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.core import storage
from pipeline.inference.longform import LongFileWriter
from pipeline.inference.model_stage import ModelStage, ModelStageConfig
from pipeline.inference.rows import AUDIO

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
            raise ValueError(
                f"actors.min_actors ({self.min_actors}) must not exceed actors.max_actors ({self.max_actors})"
            )
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
    import dataclasses

    import ray

    from pipeline.core.checkpoints import PEER_MODELS

    if model.checkpoint_uri in PEER_MODELS:  # peers run on their own CPU runtime
        actors = dataclasses.replace(actors, use_gpu="no")
    use_gpu, low, high = actors.resolve(ray.cluster_resources(), blocks)
    log.info("model stage: %d-%d %s actors", low, high, "GPU" if use_gpu else "CPU")
    kwargs = {
        "config": model,
        "storage_config": storage_config,
        "output_column": output_column,
        "long_files": long_files,
        "prefix": prefix,
    }
    return ds.map_batches(
        ModelStage,
        fn_constructor_kwargs=kwargs,
        batch_format="pyarrow",
        batch_size=actors.clips_per_batch,
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high),
        num_gpus=actors.gpus_per_actor if use_gpu else 0,
        num_cpus=actors.cpus_per_actor,
    )
