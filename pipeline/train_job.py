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

import numpy as np

from model import DiffGMMConfig, LossConfig
from pipeline import storage
from pipeline.mixing import MixConfig, mix_example

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
    holdout_fraction: float = 0.1
    exclude_prefixes: tuple[str, ...] = ()
    valid_pairs: int = 16
    valid_segment_seconds: float = 4.0


@dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 1e-3
    batch_size: int = 16
    steps_per_epoch: int = 200
    epochs: int = 10
    grad_clip: float = 5.0
    seed: int = 0


@dataclass(frozen=True)
class ScalingConfig:
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    mixed_precision: bool = True  # bf16 autocast, GPU only
    data_actors: int = 1
    cpus_per_data_actor: float = 0.5


@dataclass(frozen=True)
class TrainConfig:
    name: str = "diffgmm"
    storage_path: str = "runs/train"
    init_checkpoint_uri: str | None = None
    max_failures: int = 2
    model: DiffGMMConfig = field(default_factory=DiffGMMConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    storage: storage.StorageConfig = field(default_factory=storage.StorageConfig)

    def __post_init__(self) -> None:
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
    from pipeline.training import list_audio

    return sorted(set(list_audio(clean_uri, config)) & set(list_audio(noisy_uri, config)))


def load_pair(clean_uri: str, noisy_uri: str, key: str, rate: int, config: storage.StorageConfig) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) mono at ``rate``, cut to their common length."""
    from pipeline.audio import load_mono

    noisy = load_mono(storage.join(noisy_uri, key), rate, config)
    clean = load_mono(storage.join(clean_uri, key), rate, config)
    size = min(len(noisy), len(clean))
    return noisy[:size], clean[:size]


def corpus_keys(config: TrainConfig) -> dict[str, list[str]]:
    """Train/validation split of the corpora's keys (speakers never straddle it)."""
    from pipeline.training import list_audio, split_corpus

    d = config.data
    if d.mode == "paired":
        train, valid = split_corpus(paired_keys(d.paired_clean_uri, d.paired_noisy_uri, config.storage), d.holdout_fraction, by_speaker=True)
        return {"train": train, "valid": valid}
    clean = [k for k in list_audio(d.clean_uri, config.storage) if not k.startswith(d.exclude_prefixes)]
    noise = [k for k in list_audio(d.noise_uri, config.storage) if not k.startswith(d.exclude_prefixes)]
    clean_train, clean_valid = split_corpus(clean, d.holdout_fraction, by_speaker=True)
    noise_train, noise_valid = split_corpus(noise, d.holdout_fraction, by_speaker=False)
    if not noise_valid:
        noise_valid = noise_train[-1:]
    return {"clean": clean_train, "noise": noise_train, "clean_valid": clean_valid, "noise_valid": noise_valid}


class MixStage:
    """Ray Data actor: holds the clean and noise corpora, turns example indices into (noisy, clean) pairs."""

    def __init__(self, config: TrainConfig, clean_keys: list[str], noise_keys: list[str]) -> None:
        from pipeline.training import load_corpus

        rate = config.model.sample_rate
        self.clean = list(load_corpus(config.data.clean_uri, rate, clean_keys, config.storage).values())
        self.noise = list(load_corpus(config.data.noise_uri, rate, noise_keys, config.storage).values())
        self.mix, self.seed = config.mix, config.optim.seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        noisy, clean = [], []
        for index in batch["id"]:
            rng = np.random.default_rng([self.seed, int(index)])
            n, c, _ = mix_example(self.clean[rng.integers(len(self.clean))], self.noise[rng.integers(len(self.noise))], self.mix, rng)
            noisy.append(n)
            clean.append(c)
        return {NOISY: np.stack(noisy), CLEAN: np.stack(clean)}


class PairCropStage:
    """Ray Data task: example index → a seeded random crop of one paired file."""

    def __init__(self, config: TrainConfig, keys: list[str]) -> None:
        self.config, self.keys = config, keys

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pipeline.audio import fit_length

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

    from pipeline.runs import split_blocks

    total = config.optim.epochs * config.optim.steps_per_epoch * config.optim.batch_size * config.scaling.num_workers
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
    from pipeline.training import load_corpus, validation_pairs

    d, rate = config.data, config.model.sample_rate
    if d.valid_clean_uri and d.valid_noisy_uri:
        names = paired_keys(d.valid_clean_uri, d.valid_noisy_uri, config.storage)
        return [load_pair(d.valid_clean_uri, d.valid_noisy_uri, k, rate, config.storage) for k in names[: d.valid_pairs]]
    if d.mode == "paired":
        return [load_pair(d.paired_clean_uri, d.paired_noisy_uri, k, rate, config.storage) for k in keys["valid"][: d.valid_pairs]]
    clean = list(load_corpus(d.clean_uri, rate, keys["clean_valid"], config.storage).values())
    noise = list(load_corpus(d.noise_uri, rate, keys["noise_valid"], config.storage).values())
    vmix = MixConfig(**{**config.mix.__dict__, "segment_seconds": d.valid_segment_seconds})
    return validation_pairs(clean, noise, vmix, d.valid_pairs, seed=config.optim.seed + 1)


# ---------------------------------------------------------------- checkpoints


def _save(ckpt: dict, uri: str, config: TrainConfig) -> None:
    from pipeline.checkpoints import save_checkpoint

    save_checkpoint(ckpt, uri, config.storage)


def read_train_state(config: TrainConfig) -> dict | None:
    """``last.pt`` of this run name, if a previous attempt left one."""
    from pipeline.checkpoints import load_checkpoint_dict

    uri = storage.join(config.run_uri, "last.pt")
    if not storage.exists(uri, config.storage):
        return None
    return load_checkpoint_dict(uri, config.storage)[0]


# ---------------------------------------------------------------- worker loop


def train_loop_per_worker(loop_config: dict) -> None:
    """What every Ray Train worker runs."""
    import ray.train
    import ray.train.torch
    import torch

    from model import DiffGMM, make_checkpoint, model_from_checkpoint
    from pipeline.enhance import EnhanceConfig, Enhancer
    from pipeline.training import train_step, validate

    config: TrainConfig = loop_config["config"]
    valid = loop_config["valid"]
    context = ray.train.get_context()
    rank = context.get_world_rank()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.optim.seed)

    model = DiffGMM(config.model)
    state = None
    ray_ckpt = ray.train.get_checkpoint()
    if ray_ckpt is not None:
        with ray_ckpt.as_directory() as d:
            state = torch.load(os.path.join(d, "last.pt"), map_location="cpu", weights_only=True)
    elif loop_config.get("resume_state") is not None:
        state = loop_config["resume_state"]
    elif loop_config.get("init_state") is not None:
        init_model, _ = model_from_checkpoint(loop_config["init_state"])
        model.load_state_dict(init_model.state_dict())
    if state is not None:
        restored, _ = model_from_checkpoint(state)
        model.load_state_dict(restored.state_dict())
    model = ray.train.torch.prepare_model(model)
    core = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.learning_rate)
    step, best = 0, -math.inf
    if state is not None:
        optimizer.load_state_dict(state["metadata"]["optimizer"])
        step = int(state["metadata"]["trainer_state"]["step"])
        best = float(state["metadata"]["trainer_state"]["best_pesq_wb"])
    autocast = torch.bfloat16 if (config.scaling.use_gpu and config.scaling.mixed_precision) else None

    shard = ray.train.get_dataset_shard("train")
    total_steps = config.optim.epochs * config.optim.steps_per_epoch
    timer_audio, timer_wall, parts = 0.0, 0.0, {}
    t0 = time.perf_counter()
    for batch in shard.iter_torch_batches(batch_size=config.optim.batch_size, dtypes=torch.float32, device=device, drop_last=True):
        if step >= total_steps:
            break
        parts = train_step(model, optimizer, batch[NOISY], batch[CLEAN], config.loss, config.optim.grad_clip, autocast)
        step += 1
        timer_audio += batch[NOISY].numel() / config.model.sample_rate
        if step % config.optim.steps_per_epoch and step < total_steps:
            continue
        timer_wall = time.perf_counter() - t0
        metrics = {f"train_{k}": v for k, v in parts.items()}
        metrics.update({"step": step, "epoch": step // config.optim.steps_per_epoch,
                        "audio_seconds_per_second_per_worker": timer_audio / max(timer_wall, 1e-9)})
        if rank == 0:
            enhancer = Enhancer(core, EnhanceConfig(device=str(device)))
            scores = validate(enhancer, valid, config.model.sample_rate)
            metrics.update({f"val_{k}": v for k, v in scores.items()})
            improved = scores["pesq_wb"] > best
            best = max(best, scores["pesq_wb"])
            meta = {"step": step, "val": scores, "name": config.name}
            trainer_state = {"step": step, "best_pesq_wb": best}
            last = make_checkpoint(core, {**meta, "optimizer": optimizer.state_dict(), "trainer_state": trainer_state})
            _save(last, storage.join(config.run_uri, "last.pt"), config)
            if improved:
                _save(make_checkpoint(core, meta), storage.join(config.run_uri, "best.pt"), config)
            with tempfile.TemporaryDirectory() as d:
                torch.save(last, os.path.join(d, "last.pt"))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
        else:
            ray.train.report(metrics)
        timer_audio, t0 = 0.0, time.perf_counter()


def run_train(config: TrainConfig) -> dict:
    """Launch the TorchTrainer; returns the final metrics and where the checkpoints are."""
    import yaml
    from ray.train import FailureConfig, RunConfig
    from ray.train import ScalingConfig as RayScaling
    from ray.train.torch import TorchTrainer

    from pipeline.checkpoints import load_checkpoint_dict
    from pipeline.config import to_dict
    from pipeline.runs import init_ray

    init_ray(None)
    storage.write_bytes(storage.join(config.run_uri, "config.yaml"), yaml.safe_dump(to_dict(config)).encode(), config.storage)
    keys = corpus_keys(config)
    resume = read_train_state(config)
    done_steps = int(resume["metadata"]["trainer_state"]["step"]) if resume else 0
    if resume:
        log.info("resuming %s from step %d", config.name, done_steps)
    global_batch = config.optim.batch_size * config.scaling.num_workers
    init_state = load_checkpoint_dict(config.init_checkpoint_uri, config.storage)[0] if config.init_checkpoint_uri and not resume else None
    fs, path = storage.arrow_filesystem(config.storage_path, config.storage)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config, "valid": validation_set(config, keys), "resume_state": resume, "init_state": init_state},
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

