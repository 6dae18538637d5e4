"""The two executors of :func:`pipeline.train.loop.train_loop`: Ray Train, and one local process.

Both only build the model, feed the loop batches and report; the schedule, validation
and checkpoints are the loop's. Both take every data mode (mix, paired, clean), and both
leave the same run folder, ``<storage_path>/<name>/`` with ``config.yaml``, ``last.pt`` and
``best.pt``: a rerun with the same name resumes from that ``last.pt`` whichever executor wrote
it. Ray Train adds its bookkeeping there, and one ``checkpoint_<time>/metrics.json`` (no model).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile

from pipeline.core import storage
from pipeline.train.configs import TrainConfig
from pipeline.train.data import CLEAN, NOISY, build_train_dataset, example_stage, validation_set
from pipeline.train.loop import (
    build_model,
    make_optimizer,
    prepare_run,
    read_train_state,
    restore_progress,
    steps_done,
    train_loop,
)

log = logging.getLogger(__name__)


def train_loop_per_worker(loop_config: dict) -> None:
    """What every Ray Train worker runs: its dataset shard into the shared loop, metrics to ``ray.train.report``.

    ``loop_config["config"]`` has absolute local paths (:meth:`TrainConfig.with_absolute_local_paths`):
    this process runs in a directory of Ray's own. Every (re)start, a retry after a worker
    failure included, resumes from the run folder's ``last.pt``, the one the chief writes at each
    epoch's end, as the local executor does. Ray gets no copy of the model: rank 0 reports its
    metrics with a checkpoint of one ``metrics.json``, because Ray Train 2.60 keeps reported
    metrics (``Result.metrics``) only when a checkpoint comes with them.
    """
    import ray.train
    import ray.train.torch
    import torch

    config: TrainConfig = loop_config["config"]
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()

    state = read_train_state(config)
    model = ray.train.torch.prepare_model(build_model(config, state, loop_config.get("init_state")))
    optimizer = make_optimizer(model, config)
    progress = restore_progress(optimizer, state)
    autocast = torch.bfloat16 if (config.scaling.use_gpu and config.scaling.mixed_precision) else None

    def report(metrics: dict) -> None:
        if rank != 0:
            ray.train.report(metrics)  # every worker reports as often (a barrier); rank 0's metrics are kept
            return
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "metrics.json"), "w") as f:
                json.dump(metrics, f)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    shard = ray.train.get_dataset_shard("train")
    batches = (
        (b[NOISY], b[CLEAN])
        for b in shard.iter_torch_batches(
            batch_size=config.optim.batch_size, dtypes=torch.float32, device=device, drop_last=True
        )
    )
    train_loop(
        model,
        optimizer,
        progress,
        batches,
        config,
        device=device,
        valid=loop_config["valid"],
        run_info=loop_config["run_info"],
        chief=rank == 0,
        workers=config.scaling.num_workers,
        autocast_dtype=autocast,
        report=report,
    )


def run_train_local(config: TrainConfig, run_info: dict | None = None, device: str = "auto") -> dict:
    """The same recipe without Ray: one process (plus optional DataLoader workers), CPU or one GPU.

    Example *i* of the run is the one the Ray executor would feed a single
    worker, in any data mode; the loop, validation and checkpoints are the
    shared ones, and a rerun with the same name resumes from ``last.pt``.
    """
    import torch

    from pipeline.inference.enhance import pick_device

    device = pick_device(device)
    run_info = {**(run_info or {}), "executor": "local", "device": device}
    keys, resume, init_state, run_info = prepare_run(config, run_info)
    valid = validation_set(config, keys)
    model = build_model(config, resume, init_state).to(device)
    optimizer = make_optimizer(model, config)
    progress = restore_progress(optimizer, resume)
    autocast = torch.bfloat16 if (device.startswith("cuda") and config.scaling.mixed_precision) else None
    batch_size, total_steps = config.optim.batch_size, config.optim.total_steps
    loader = torch.utils.data.DataLoader(
        example_stage(config, keys),
        batch_size=batch_size,
        sampler=range(progress.step * batch_size, total_steps * batch_size),
        num_workers=config.scaling.local_data_workers,
        persistent_workers=False,
    )
    metrics = train_loop(
        model,
        optimizer,
        progress,
        loader,
        config,
        device=device,
        valid=valid,
        run_info=run_info,
        autocast_dtype=autocast,
    )
    return {
        "metrics": {**{k: v for k, v in metrics.items() if k.startswith("val_")}, "step": progress.step},
        "run_uri": config.run_uri,
        "resumed_from_step": steps_done(resume),
    }


def run_train(config: TrainConfig, run_info: dict | None = None) -> dict:
    """Launch the TorchTrainer; returns the final metrics and where the checkpoints are (``run_uri`` as given)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train import ScalingConfig as RayScaling
    from ray.train.torch import TorchTrainer

    from pipeline.core.runs import init_ray

    run_info = {**(run_info or {}), "executor": "ray"}
    given_run_uri, config = config.run_uri, config.with_absolute_local_paths()
    init_ray(None)
    keys, resume, init_state, run_info = prepare_run(config, run_info)
    done_steps = steps_done(resume)
    global_batch = config.optim.batch_size * config.scaling.num_workers
    fs, path = storage.arrow_filesystem(config.storage_path, config.storage)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config,
            "valid": validation_set(config, keys),
            "init_state": init_state,
            "run_info": run_info,
        },
        scaling_config=RayScaling(
            num_workers=config.scaling.num_workers,
            use_gpu=config.scaling.use_gpu,
            resources_per_worker={"CPU": config.scaling.cpus_per_worker}
            | ({"GPU": 1} if config.scaling.use_gpu else {}),
        ),
        run_config=RunConfig(
            name=config.name,
            storage_path=path,
            storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),  # the last metrics.json; the model is in last.pt
        ),
        datasets={"train": build_train_dataset(config, keys, done_steps * global_batch)},
    )
    result = trainer.fit()
    return {"metrics": result.metrics, "run_uri": given_run_uri, "resumed_from_step": done_steps}
