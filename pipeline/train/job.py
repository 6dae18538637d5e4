"""Distributed training with Ray Train (TorchTrainer, Train V2) fed by Ray Data.

Data, in two modes, streamed to the workers with ``get_dataset_shard``:

* ``mix``: a clean-speech corpus mixed on the fly with a noise corpus at random
  SNRs and gains; example *i* is drawn from ``default_rng([seed, i])``, so a
  run, a resumed run and a rerun see exactly the same examples;
* ``paired``: clean/noisy files with matching keys, randomly cropped (seeded
  the same way).

Every epoch ends with validation on a held-out paired set (PESQ-WB, SI-SDR)
reported through ``ray.train.report``. Rank 0 writes, under
``<storage_path>/<name>/``: ``last.pt`` (model + optimizer + step: what a rerun
with the same name resumes from), ``best.pt`` (best validation PESQ so far),
``config.yaml`` (the resolved config), and reports a Ray checkpoint so
``FailureConfig`` restarts resume too.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.audio.mixing import MixConfig, indexed_example
from pipeline.core import storage

log = logging.getLogger(__name__)

NOISY, CLEAN = "noisy", "clean"


@dataclass(frozen=True)
class DataConfig:
    """``mode``: mix (clean_uri + noise_uri) or paired (paired_clean_uri + paired_noisy_uri)."""

    mode: str = "mix"
    clean_uri: str | None = None
    noise_uri: str | None = None
    paired_clean_uri: str | None = None
    paired_noisy_uri: str | None = None
    valid_clean_uri: str | None = None
    valid_noisy_uri: str | None = None
    # Held out of training, by speaker for speech and by file for noise (stable
    # hashes of the names: the same split on every machine).
    clean_holdout_fraction: float = 0.1
    noise_holdout_fraction: float = 0.15
    # File-name prefixes left out of both corpora (licences, see the recipe).
    exclude_prefixes: tuple[str, ...] = ()
    valid_pairs: int = 16
    valid_segment_seconds: float = 4.0
    # Seeds the held-out mixtures apart from ``optim.seed``: a second stage that draws
    # new training examples (another optim.seed) is still validated on the same set.
    valid_seed: int = 1

    def __post_init__(self) -> None:
        for name in ("clean_holdout_fraction", "noise_holdout_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class OptimConfig:
    """Adam; ``lr_schedule: cosine`` decays from ``learning_rate`` to ``lr_min_fraction`` of it over the run."""

    learning_rate: float = 1e-3
    batch_size: int = 16
    steps_per_epoch: int = 200
    epochs: int = 10
    grad_clip: float = 5.0
    seed: int = 0
    lr_schedule: str = "constant"
    lr_min_fraction: float = 0.05
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.batch_size < 1 or self.steps_per_epoch < 1 or self.epochs < 1:
            raise ValueError("batch_size, steps_per_epoch and epochs must be >= 1")

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def learning_rate_at(self, step: int) -> float:
        """Learning rate for optimiser step ``step`` (0-based): a pure function of the step, so resume needs no scheduler state."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.learning_rate
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        low = self.learning_rate * self.lr_min_fraction
        return low + 0.5 * (self.learning_rate - low) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class ScalingConfig:
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    mixed_precision: bool = True  # bf16 autocast, GPU only
    data_actors: int = 1
    cpus_per_data_actor: float = 0.5
    # The single-process executor (``diffgmm train --executor local``): processes
    # that mix examples beside the training loop (0: in the loop itself).
    local_data_workers: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """``model_name`` picks the family (:mod:`model.registry`); ``model`` and ``loss`` are that family's configs."""

    name: str = "diffgmm"
    model_name: str = "diffgmm"
    storage_path: str = "runs/train"
    init_checkpoint_uri: str | None = None
    max_failures: int = 2
    model: Any = None
    loss: Any = None
    mix: MixConfig = field(default_factory=MixConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    storage: storage.StorageConfig = field(default_factory=storage.StorageConfig)

    def __post_init__(self) -> None:
        from model.registry import MODELS
        from pipeline.core.config import typed

        if self.model_name not in MODELS:
            raise ValueError(f"model_name must be one of {sorted(MODELS)}, got {self.model_name!r}")
        spec = MODELS[self.model_name]
        # Frozen: the typed sections replace the mappings they were given.
        object.__setattr__(self, "model", typed(spec.config_cls, self.model, "model"))
        object.__setattr__(self, "loss", typed(spec.loss_config_cls, self.loss, "loss"))
        if self.data.mode not in ("mix", "paired"):
            raise ValueError("data.mode must be mix or paired")
        if self.data.mode == "mix" and not (self.data.clean_uri and self.data.noise_uri):
            raise ValueError("mix mode needs data.clean_uri and data.noise_uri")
        if self.data.mode == "paired" and not (self.data.paired_clean_uri and self.data.paired_noisy_uri):
            raise ValueError("paired mode needs data.paired_clean_uri and data.paired_noisy_uri")

    @property
    def run_uri(self) -> str:
        return storage.join(self.storage_path, storage.safe_relative_key(self.name))


# ---------------------------------------------------------------- data


def paired_keys(clean_uri: str, noisy_uri: str, config: storage.StorageConfig) -> list[str]:
    """Relative keys present under both prefixes, sorted."""
    from pipeline.train.steps import list_audio

    return sorted(set(list_audio(clean_uri, config)) & set(list_audio(noisy_uri, config)))


def load_pair(clean_uri: str, noisy_uri: str, key: str, rate: int, config: storage.StorageConfig) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) mono at ``rate``, cut to their common length."""
    from pipeline.audio.codec import load_mono

    noisy = load_mono(storage.join(noisy_uri, key), rate, config)
    clean = load_mono(storage.join(clean_uri, key), rate, config)
    size = min(len(noisy), len(clean))
    return noisy[:size], clean[:size]


def corpus_keys(config: TrainConfig) -> dict[str, list[str]]:
    """Train/validation split of the corpora's keys (speakers never straddle it)."""
    from pipeline.train.steps import list_audio, split_corpus

    d = config.data
    if d.mode == "paired":
        train, valid = split_corpus(paired_keys(d.paired_clean_uri, d.paired_noisy_uri, config.storage), d.clean_holdout_fraction, by_speaker=True)
        return {"train": train, "valid": valid}
    clean = [k for k in list_audio(d.clean_uri, config.storage) if not k.rsplit("/", 1)[-1].startswith(d.exclude_prefixes)]
    noise = [k for k in list_audio(d.noise_uri, config.storage) if not k.rsplit("/", 1)[-1].startswith(d.exclude_prefixes)]
    clean_train, clean_valid = split_corpus(clean, d.clean_holdout_fraction, by_speaker=True)
    noise_train, noise_valid = split_corpus(noise, d.noise_holdout_fraction, by_speaker=False)
    if not noise_valid:
        noise_valid = noise_train[-1:]
    return {"clean": clean_train, "noise": noise_train, "clean_valid": clean_valid, "noise_valid": noise_valid}


class MixStage:
    """Turns example indices into (noisy, clean) pairs; holds the clean and noise corpora.

    A Ray Data actor in the Ray executor, a map-style dataset (``stage[i]``)
    for torch's DataLoader in the local one: the same examples either way.
    """

    def __init__(self, config: TrainConfig, clean_keys: list[str], noise_keys: list[str]) -> None:
        from pipeline.train.steps import load_corpus

        rate = config.model.sample_rate
        self.clean = list(load_corpus(config.data.clean_uri, rate, clean_keys, config.storage).values())
        self.noise = list(load_corpus(config.data.noise_uri, rate, noise_keys, config.storage).values())
        self.mix, self.seed = config.mix, config.optim.seed

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return indexed_example(index, self.clean, self.noise, self.mix, self.seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = [self[int(index)] for index in batch["id"]]
        return {NOISY: np.stack([p[0] for p in pairs]), CLEAN: np.stack([p[1] for p in pairs])}


class PairCropStage:
    """Ray Data task: example index → a seeded random crop of one paired file."""

    def __init__(self, config: TrainConfig, keys: list[str]) -> None:
        self.config, self.keys = config, keys

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pipeline.audio.codec import fit_length

        c, rate = self.config, self.config.model.sample_rate
        length = int(round(c.mix.segment_seconds * rate))
        noisy, clean = [], []
        for index in batch["id"]:
            rng = np.random.default_rng([c.optim.seed, int(index)])
            key = self.keys[rng.integers(len(self.keys))]
            n, s = load_pair(c.data.paired_clean_uri, c.data.paired_noisy_uri, key, rate, c.storage)
            start = int(rng.integers(0, max(1, len(n) - length + 1)))
            noisy.append(fit_length(n[start : start + length], length).astype(np.float32))
            clean.append(fit_length(s[start : start + length], length).astype(np.float32))
        return {NOISY: np.stack(noisy), CLEAN: np.stack(clean)}


def build_train_dataset(config: TrainConfig, keys: dict[str, list[str]], first_example: int):
    """Examples [first_example, total) of the whole run, in order; each worker streams its shard."""
    import pyarrow as pa
    import ray

    from pipeline.core.runs import split_blocks

    total = config.optim.total_steps * config.optim.batch_size * config.scaling.num_workers
    # Indices are built in memory: no read tasks, which would each want a whole CPU
    # next to the training workers.
    ids = np.arange(first_example, total, dtype=np.int64)
    ds = ray.data.from_arrow(split_blocks(pa.table({"id": ids}), config.optim.batch_size * 8))
    if config.data.mode == "mix":
        return ds.map_batches(
            MixStage,
            fn_constructor_kwargs={"config": config, "clean_keys": keys["clean"], "noise_keys": keys["noise"]},
            batch_size=config.optim.batch_size,
            compute=ray.data.ActorPoolStrategy(size=config.scaling.data_actors),
            num_cpus=config.scaling.cpus_per_data_actor,
        )
    return ds.map_batches(PairCropStage(config, keys["train"]), batch_size=config.optim.batch_size, num_cpus=config.scaling.cpus_per_data_actor)


def validation_set(config: TrainConfig, keys: dict[str, list[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Held-out (noisy, clean) pairs: a paired validation prefix if given, else held-out speakers × noises."""
    from pipeline.train.steps import load_corpus, validation_pairs

    d, rate = config.data, config.model.sample_rate
    if d.valid_clean_uri and d.valid_noisy_uri:
        names = paired_keys(d.valid_clean_uri, d.valid_noisy_uri, config.storage)
        return [load_pair(d.valid_clean_uri, d.valid_noisy_uri, k, rate, config.storage) for k in names[: d.valid_pairs]]
    if d.mode == "paired":
        return [load_pair(d.paired_clean_uri, d.paired_noisy_uri, k, rate, config.storage) for k in keys["valid"][: d.valid_pairs]]
    clean = list(load_corpus(d.clean_uri, rate, keys["clean_valid"], config.storage).values())
    noise = list(load_corpus(d.noise_uri, rate, keys["noise_valid"], config.storage).values())
    vmix = MixConfig(**{**config.mix.__dict__, "segment_seconds": d.valid_segment_seconds})
    return validation_pairs(clean, noise, vmix, d.valid_pairs, seed=d.valid_seed)


# ---------------------------------------------------------------- checkpoints


def _save(ckpt: dict, uri: str, config: TrainConfig) -> None:
    from pipeline.core.checkpoints import save_checkpoint

    save_checkpoint(ckpt, uri, config.storage)


def read_train_state(config: TrainConfig) -> dict | None:
    """``last.pt`` of this run name, if a previous attempt left one."""
    from pipeline.core.checkpoints import load_checkpoint_dict

    uri = storage.join(config.run_uri, "last.pt")
    if not storage.exists(uri, config.storage):
        return None
    return load_checkpoint_dict(uri, config.storage)[0]


# ---------------------------------------------------------------- the loop both executors share


@dataclass
class Progress:
    """Where a run stands: optimiser steps done and the best validation PESQ-WB so far."""

    step: int = 0
    best_pesq_wb: float = -math.inf


def build_model(config: TrainConfig, resume_state: dict | None, init_state: dict | None):
    """The model to train: restored from ``resume_state`` (a ``last.pt`` dict), else initialised from ``init_state``, else fresh."""
    import torch

    from model import build_model as build_family_model
    from model import model_from_checkpoint

    torch.manual_seed(config.optim.seed)
    model = build_family_model(config.model_name, config.model)
    source = resume_state if resume_state is not None else init_state
    if source is not None:
        restored, _ = model_from_checkpoint(source)
        model.load_state_dict(restored.state_dict())
    return model


def restore_progress(optimizer, resume_state: dict | None) -> Progress:
    if resume_state is None:
        return Progress()
    optimizer.load_state_dict(resume_state["metadata"]["optimizer"])
    trainer = resume_state["metadata"]["trainer_state"]
    return Progress(step=int(trainer["step"]), best_pesq_wb=float(trainer["best_pesq_wb"]))


def set_learning_rate(optimizer, config: TrainConfig, step: int) -> float:
    lr = config.optim.learning_rate_at(step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def end_of_epoch(core, optimizer, progress: Progress, valid, config: TrainConfig, device, run_info: dict) -> tuple[dict, dict]:
    """Validate, update ``progress``, write ``last.pt`` (and ``best.pt`` when validation PESQ improved).

    Returns (validation scores, the ``last.pt`` dict). ``run_info`` (recipe,
    executor, …) goes into every checkpoint's metadata, so a shipped model
    names the recipe file and the steps that made it.
    """
    from model import make_checkpoint
    from pipeline.inference.enhance import EnhanceConfig, Enhancer
    from pipeline.train.steps import validate

    scores = validate(Enhancer(core, EnhanceConfig(device=str(device))), valid, config.model.sample_rate)
    improved = scores["pesq_wb"] > progress.best_pesq_wb
    progress.best_pesq_wb = max(progress.best_pesq_wb, scores["pesq_wb"])
    examples = progress.step * config.optim.batch_size * config.scaling.num_workers
    meta = {**run_info, "name": config.name, "step": progress.step, "examples": examples,
            "audio_hours": examples * config.mix.segment_seconds / 3600.0, "val": scores}
    trainer_state = {"step": progress.step, "best_pesq_wb": progress.best_pesq_wb}
    last = make_checkpoint(core, {**meta, "optimizer": optimizer.state_dict(), "trainer_state": trainer_state})
    _save(last, storage.join(config.run_uri, "last.pt"), config)
    if improved:
        _save(make_checkpoint(core, meta), storage.join(config.run_uri, "best.pt"), config)
    log.info("step %d: validation %s%s", progress.step, {k: round(v, 3) for k, v in scores.items()}, " (best)" if improved else "")
    return scores, last


# ---------------------------------------------------------------- Ray Train worker


def train_loop_per_worker(loop_config: dict) -> None:
    """What every Ray Train worker runs."""
    import ray.train
    import ray.train.torch
    import torch

    from pipeline.train.steps import train_step

    config: TrainConfig = loop_config["config"]
    valid = loop_config["valid"]
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()

    state = loop_config.get("resume_state")
    ray_ckpt = ray.train.get_checkpoint()
    if ray_ckpt is not None:
        with ray_ckpt.as_directory() as d:
            state = torch.load(os.path.join(d, "last.pt"), map_location="cpu", weights_only=True)
    model = ray.train.torch.prepare_model(build_model(config, state, loop_config.get("init_state")))
    core = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.learning_rate)
    progress = restore_progress(optimizer, state)
    autocast = torch.bfloat16 if (config.scaling.use_gpu and config.scaling.mixed_precision) else None

    shard = ray.train.get_dataset_shard("train")
    total_steps = config.optim.total_steps
    timer_audio, parts = 0.0, {}
    t0 = time.perf_counter()
    for batch in shard.iter_torch_batches(batch_size=config.optim.batch_size, dtypes=torch.float32, device=device, drop_last=True):
        if progress.step >= total_steps:
            break
        lr = set_learning_rate(optimizer, config, progress.step)
        parts = train_step(model, optimizer, batch[NOISY], batch[CLEAN], config.loss, config.optim.grad_clip, autocast)
        progress.step += 1
        timer_audio += batch[NOISY].numel() / config.model.sample_rate
        if progress.step % config.optim.steps_per_epoch and progress.step < total_steps:
            continue
        metrics = {f"train_{k}": v for k, v in parts.items()}
        metrics.update({"step": progress.step, "epoch": progress.step // config.optim.steps_per_epoch, "learning_rate": lr,
                        "audio_seconds_per_second_per_worker": timer_audio / max(time.perf_counter() - t0, 1e-9)})
        if rank == 0:
            scores, last = end_of_epoch(core, optimizer, progress, valid, config, device, loop_config["run_info"])
            metrics.update({f"val_{k}": v for k, v in scores.items()})
            with tempfile.TemporaryDirectory() as d:
                torch.save(last, os.path.join(d, "last.pt"))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
        else:
            ray.train.report(metrics)
        timer_audio, t0 = 0.0, time.perf_counter()


# ---------------------------------------------------------------- entry points


def prepare_run(config: TrainConfig, run_info: dict) -> tuple[dict[str, list[str]], dict | None, dict | None]:
    """Write the resolved config; return (corpus keys, the state to resume from, the state to start from)."""
    import yaml

    from pipeline.core.checkpoints import load_checkpoint_dict
    from pipeline.core.config import to_dict
    from pipeline.core.redact import redact_tree

    resolved = redact_tree({"config": to_dict(config), "run": run_info})
    storage.write_bytes(storage.join(config.run_uri, "config.yaml"), yaml.safe_dump(resolved, sort_keys=False).encode(), config.storage)
    resume = read_train_state(config)
    if resume:
        log.info("resuming %s from step %d", config.name, int(resume["metadata"]["trainer_state"]["step"]))
    init_state = load_checkpoint_dict(config.init_checkpoint_uri, config.storage)[0] if config.init_checkpoint_uri and not resume else None
    return corpus_keys(config), resume, init_state


def _steps_done(resume: dict | None) -> int:
    return int(resume["metadata"]["trainer_state"]["step"]) if resume else 0


def run_train_local(config: TrainConfig, run_info: dict | None = None, device: str = "auto") -> dict:
    """The same recipe without Ray: one process (plus optional DataLoader workers), CPU or one GPU.

    Example *i* of the run is the one the Ray executor would feed a single
    worker; ``train_step``, validation and checkpoints are the shared ones, and
    a rerun with the same name resumes from ``last.pt``.
    """
    import torch

    from pipeline.inference.enhance import pick_device
    from pipeline.train.steps import train_step

    device = pick_device(device)
    run_info = {**(run_info or {}), "executor": "local", "device": device}
    if config.data.mode != "mix":
        raise ValueError("the local executor trains in mix mode; use the Ray executor for paired data")
    keys, resume, init_state = prepare_run(config, run_info)
    valid = validation_set(config, keys)
    stage = MixStage(config, keys["clean"], keys["noise"])
    model = build_model(config, resume, init_state).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.learning_rate)
    progress = restore_progress(optimizer, resume)
    autocast = torch.bfloat16 if (device.startswith("cuda") and config.scaling.mixed_precision) else None
    batch_size, total_steps = config.optim.batch_size, config.optim.total_steps
    loader = torch.utils.data.DataLoader(
        stage,
        batch_size=batch_size,
        sampler=range(progress.step * batch_size, total_steps * batch_size),
        num_workers=config.scaling.local_data_workers,
        persistent_workers=False,
    )
    scores: dict = {}
    timer_audio, t0 = 0.0, time.perf_counter()
    for noisy, clean in loader:
        lr = set_learning_rate(optimizer, config, progress.step)
        parts = train_step(model, optimizer, noisy.to(device), clean.to(device), config.loss, config.optim.grad_clip, autocast)
        progress.step += 1
        timer_audio += noisy.numel() / config.model.sample_rate
        if progress.step % 50 == 0:
            rate = timer_audio / max(time.perf_counter() - t0, 1e-9)
            log.info("step %d lr %.2e %s %.1f audio-s/s", progress.step, lr, {k: round(v, 4) for k, v in parts.items()}, rate)
        if progress.step % config.optim.steps_per_epoch == 0 or progress.step == total_steps:
            scores, _ = end_of_epoch(model, optimizer, progress, valid, config, device, run_info)
            timer_audio, t0 = 0.0, time.perf_counter()
    return {"metrics": {**{f"val_{k}": v for k, v in scores.items()}, "step": progress.step},
            "run_uri": config.run_uri, "resumed_from_step": _steps_done(resume)}


def run_train(config: TrainConfig, run_info: dict | None = None) -> dict:
    """Launch the TorchTrainer; returns the final metrics and where the checkpoints are."""
    from ray.train import FailureConfig, RunConfig
    from ray.train import ScalingConfig as RayScaling
    from ray.train.torch import TorchTrainer

    from pipeline.core.runs import init_ray

    run_info = {**(run_info or {}), "executor": "ray"}
    init_ray(None)
    keys, resume, init_state = prepare_run(config, run_info)
    done_steps = _steps_done(resume)
    global_batch = config.optim.batch_size * config.scaling.num_workers
    fs, path = storage.arrow_filesystem(config.storage_path, config.storage)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config, "valid": validation_set(config, keys), "resume_state": resume,
                           "init_state": init_state, "run_info": run_info},
        scaling_config=RayScaling(
            num_workers=config.scaling.num_workers,
            use_gpu=config.scaling.use_gpu,
            resources_per_worker={"CPU": config.scaling.cpus_per_worker} | ({"GPU": 1} if config.scaling.use_gpu else {}),
        ),
        run_config=RunConfig(
            name=config.name,
            storage_path=path,
            storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=config.max_failures),
        ),
        datasets={"train": build_train_dataset(config, keys, done_steps * global_batch)},
    )
    result = trainer.fit()
    return {"metrics": result.metrics, "run_uri": config.run_uri, "resumed_from_step": done_steps}

