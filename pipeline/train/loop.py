"""The one training loop both executors run: schedule, timing, epochs, validation, checkpoints.

An executor (:mod:`pipeline.train.executors`) builds the model and optimiser with
:func:`build_model` / :func:`restore_progress`, feeds :func:`train_loop` batches of
(noisy, clean) tensors and passes a ``report`` callback (Ray Train's report, or
nothing locally). The chief (rank 0, or the only process) validates at every epoch's
end and writes, under ``<storage_path>/<name>/``: ``last.pt`` (model + optimizer +
trainer state: what a rerun with the same name resumes from) and ``best.pt`` (the best
validation so far by the recipe's ``selection`` rule, :mod:`pipeline.quality.selection`:
PESQ-WB alone by default, or PESQ-WB with STOI; in ``data.mode: clean``, where nothing
noisy is held out, the lowest held-out loss of the family, see :func:`validation_scores`).
The trainer state carries the run's cumulative training CPU-seconds and audio-seconds, so
a resumed run adds to them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipeline.core import storage
from pipeline.core.progress import format_duration
from pipeline.quality.selection import SelectionConfig, selection_score
from pipeline.train.configs import TrainConfig

log = logging.getLogger(__name__)

LOG_EVERY_STEPS = 50


@dataclass
class Progress:
    """Where a run stands: optimiser steps done, the best validation so far, and the compute spent.

    ``best_score``: the selection score (:func:`pipeline.quality.selection.selection_score`)
    of ``best.pt`` under ``selection`` (the rule's settings, as a dict: a score
    is only compared with scores of the same rule); ``best_pesq_wb``: that
    checkpoint's validation PESQ-WB. ``cpu_seconds``: CPU time (all threads) of the chief training process, summed over
    every attempt of the run (data workers beside it are not counted). ``audio_seconds``:
    seconds of training audio the optimiser has seen, over all workers. ``history``: one
    entry per validation, ``{"step", "cpu_seconds", "audio_seconds", "val": {...}}``, so a
    run's quality per CPU-second can be drawn from its ``last.pt`` (bench/quality_curves.py).
    """

    step: int = 0
    best_pesq_wb: float = -math.inf
    cpu_seconds: float = 0.0
    audio_seconds: float = 0.0
    best_score: float = -math.inf
    selection: dict = field(default_factory=lambda: dataclasses.asdict(SelectionConfig()))
    history: list = field(default_factory=list)

    def state(self) -> dict:
        return {
            "step": self.step,
            "best_pesq_wb": self.best_pesq_wb,
            "cpu_seconds": self.cpu_seconds,
            "audio_seconds": self.audio_seconds,
            "best_score": self.best_score,
            "selection": dict(self.selection),
        }


def step_generator(config: TrainConfig, step: int, device):
    """The generator a family's loss draws from at optimiser step ``step``: a function of (seed, step) only."""
    import torch

    from pipeline.inference.enhance import derived_seed

    return torch.Generator(device=device).manual_seed(derived_seed(config.optim.seed, step))


def build_model(config: TrainConfig, resume_state: dict | None, init_state: dict | None):
    """The model to train: restored from ``resume_state`` (a ``last.pt`` dict), else initialised from ``init_state``, else fresh.

    A fresh model's initial weights are drawn under ``torch.random.fork_rng`` seeded
    from ``optim.seed``: reproducible, and the caller's global generator is left as it was.
    """
    import torch

    from model import build_model as build_family_model
    from model import model_from_checkpoint
    from pipeline.core.pretrained import attach_pretrained

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.optim.seed)
        model = build_family_model(config.model_name, config.model)
    source = resume_state if resume_state is not None else init_state
    if source is not None:
        restored, _ = model_from_checkpoint(source)
        # A family may take only what fits from an earlier stage's checkpoint (FUSE: stage 1's VAE).
        init_from = getattr(model, "init_from", None) if resume_state is None else None
        if init_from is not None:
            init_from(restored)
        else:
            model.load_state_dict(restored.state_dict())
    # Frozen pretrained parts (FUSE's extractor) from their installed package; a resumed run
    # must find the file it started with.
    attach_pretrained(model, (resume_state or {}).get("pretrained"), require_record=False)
    return model


def make_optimizer(model, config: TrainConfig):
    """Adam over the family's trainable parameters only (frozen parts are never updated)."""
    import torch

    from model.family import trainable_parameters

    return torch.optim.Adam(list(trainable_parameters(model)), lr=config.optim.learning_rate)


def restore_progress(optimizer, resume_state: dict | None) -> Progress:
    if resume_state is None:
        return Progress()
    optimizer.load_state_dict(resume_state["metadata"]["optimizer"])
    trainer = resume_state["metadata"]["trainer_state"]
    best_pesq_wb = float(trainer["best_pesq_wb"])
    # A run from before selection rules chose by PESQ-WB alone: its best score is that PESQ.
    return Progress(
        step=int(trainer["step"]),
        best_pesq_wb=best_pesq_wb,
        cpu_seconds=float(trainer.get("cpu_seconds", 0.0)),
        audio_seconds=float(trainer.get("audio_seconds", 0.0)),
        best_score=float(trainer.get("best_score", best_pesq_wb)),
        selection=dict(trainer.get("selection", dataclasses.asdict(SelectionConfig()))),
        history=list(resume_state["metadata"].get("history", [])),
    )


def set_learning_rate(optimizer, config: TrainConfig, step: int) -> float:
    lr = config.optim.learning_rate_at(step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


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


def validation_scores(core, valid, config: TrainConfig, device) -> dict[str, float]:
    """Held-out scores of ``core``: enhancement PESQ-WB / SI-SDR on (noisy, clean) pairs, or, in
    ``data.mode: clean`` (no noisy held out), the family's loss on held-out clean segments."""
    from pipeline.inference.enhance import EnhanceConfig, Enhancer
    from pipeline.train.steps import validate, validate_loss

    if config.data.mode == "clean":
        return validate_loss(core, valid, config.loss, config.data.valid_seed)
    return validate(
        Enhancer(core, EnhanceConfig(device=str(device), seed=config.optim.seed)), valid, config.model.sample_rate
    )


def end_of_epoch(
    core, optimizer, progress: Progress, valid, config: TrainConfig, device, run_info: dict
) -> dict[str, float]:
    """Validate, update ``progress``, write ``last.pt`` (and ``best.pt`` when the selection score improved).

    The score is :func:`pipeline.quality.selection.selection_score` under
    ``config.selection``; a clean-mode run scores minus its held-out loss.

    Returns the validation scores. ``run_info`` (recipe,
    executor, …) goes into every checkpoint's metadata, so a shipped model
    names the recipe file and the steps that made it.
    """
    from model import make_checkpoint

    selection = dataclasses.asdict(config.selection)
    if selection != progress.selection:
        # Scores of another rule do not compare: the next validation becomes best.pt under this one.
        if math.isfinite(progress.best_score):  # a fresh run has no best.pt to re-choose
            log.warning(
                "selection rule changed from %s to %s: best.pt is chosen anew from this validation on",
                progress.selection,
                selection,
            )
        progress.best_score, progress.selection = -math.inf, selection
    scores = validation_scores(core, valid, config, device)
    score = -scores["loss"] if config.data.mode == "clean" else selection_score(scores, config.selection)
    improved = score > progress.best_score
    if improved:
        progress.best_score = score
        progress.best_pesq_wb = scores.get("pesq_wb", progress.best_pesq_wb)
    progress.history.append(
        {
            "step": progress.step,
            "cpu_seconds": progress.cpu_seconds,
            "audio_seconds": progress.audio_seconds,
            "val": dict(scores),
        }
    )
    examples = progress.step * config.optim.batch_size * config.scaling.num_workers
    meta = {
        **run_info,
        "name": config.name,
        "step": progress.step,
        "examples": examples,
        "audio_hours": examples * config.mix.segment_seconds / 3600.0,
        "val": scores,
        "selection": {**selection, "score": score},
        "train_cpu_seconds": progress.cpu_seconds,
        "train_audio_seconds": progress.audio_seconds,
        "history": list(progress.history),
    }
    last = make_checkpoint(core, {**meta, "optimizer": optimizer.state_dict(), "trainer_state": progress.state()})
    _save(last, storage.join(config.run_uri, "last.pt"), config)
    if improved:
        _save(make_checkpoint(core, meta), storage.join(config.run_uri, "best.pt"), config)
    log.info(
        "step %d (%.0f training CPU-s): validation %s%s",
        progress.step,
        progress.cpu_seconds,
        {k: round(v, 3) for k, v in scores.items()},
        " (best)" if improved else "",
    )
    return scores


# report(metrics): the executor's way out (Ray Train's report, or nothing). Checkpoints are not
# reported: the chief writes them into the run folder itself (end_of_epoch).
Report = Callable[[dict], None]


def train_loop(
    model,
    optimizer,
    progress: Progress,
    batches: Iterable,
    config: TrainConfig,
    *,
    device,
    valid,
    run_info: dict,
    chief: bool = True,
    workers: int = 1,
    autocast_dtype=None,
    report: Report | None = None,
) -> dict:
    """Train ``model`` on ``batches`` of (noisy, clean) (batch, samples) float32 tensors until ``optim.total_steps``.

    ``model`` may be a DistributedDataParallel wrapper; its ``.module`` is what is
    validated and saved. ``workers``: how many processes run this loop on batches of
    the same size (for the run's audio-seconds). Every step's loss gets :func:`step_generator`. At each epoch's
    end (and the last step) the chief validates and checkpoints (:func:`end_of_epoch`),
    then every process's ``report`` gets the metrics (train_* loss parts, val_* scores on the
    chief, step, epoch, learning_rate, audio_seconds_per_second_per_worker). Returns the last metrics.
    """
    from pipeline.train.steps import train_step

    core = model.module if hasattr(model, "module") else model
    rate, total_steps = config.model.sample_rate, config.optim.total_steps
    metrics: dict = {"step": progress.step}
    window_audio, t0, cpu0, step0 = 0.0, time.perf_counter(), time.process_time(), progress.step
    for noisy, clean in batches:
        if progress.step >= total_steps:
            break
        noisy, clean = noisy.to(device), clean.to(device)
        lr = set_learning_rate(optimizer, config, progress.step)
        generator = step_generator(config, progress.step, noisy.device)
        parts = train_step(
            model, optimizer, noisy, clean, config.loss, config.optim.grad_clip, autocast_dtype, generator
        )
        progress.step += 1
        seconds = noisy.numel() / rate
        window_audio += seconds
        progress.audio_seconds += seconds * workers
        if progress.step % LOG_EVERY_STEPS == 0:
            elapsed = max(time.perf_counter() - t0, 1e-9)
            eta = format_duration((total_steps - progress.step) * elapsed / max(progress.step - step0, 1))
            log.info(
                "step %d/%d lr %.2e %s %.1f audio-s/s, ETA %s",
                progress.step,
                total_steps,
                lr,
                {k: round(v, 4) for k, v in parts.items()},
                window_audio / elapsed,
                eta,
            )
        if progress.step % config.optim.steps_per_epoch and progress.step < total_steps:
            continue
        now_cpu = time.process_time()
        progress.cpu_seconds += now_cpu - cpu0
        cpu0 = now_cpu
        metrics = {f"train_{k}": v for k, v in parts.items()}
        metrics.update(
            {
                "step": progress.step,
                "epoch": progress.step // config.optim.steps_per_epoch,
                "learning_rate": lr,
                "audio_seconds_per_second_per_worker": window_audio / max(time.perf_counter() - t0, 1e-9),
            }
        )
        if chief:
            scores = end_of_epoch(core, optimizer, progress, valid, config, device, run_info)
            metrics.update({f"val_{k}": v for k, v in scores.items()})
        if report is not None:
            report(metrics)
        # Validation and checkpoint writing count as training CPU time too; the rate is of training alone.
        window_audio, t0, step0 = 0.0, time.perf_counter(), progress.step
    return metrics


def prepare_run(config: TrainConfig, run_info: dict) -> tuple[dict[str, list[str]], dict | None, dict | None, dict]:
    """Write the resolved config; return (corpus keys, the state to resume from, the state to start from, run_info).

    The returned run_info is the given one plus :func:`pipeline.train.data.data_summary`
    (data mode, clean and noise file counts, ``noise_files: none`` for clean-only runs),
    so every checkpoint says what it was trained on.
    """
    import yaml

    from pipeline.core.checkpoints import load_checkpoint_dict
    from pipeline.core.config import to_dict
    from pipeline.core.redact import redact_tree
    from pipeline.train.data import corpus_keys, data_summary

    keys = corpus_keys(config)
    run_info = {**run_info, **data_summary(config, keys)}
    resume = read_train_state(config)
    if resume:
        log.info("resuming %s from step %d", config.name, int(resume["metadata"]["trainer_state"]["step"]))
    init_state = None
    if config.init_checkpoint_uri and resume:
        if "init" in resume["metadata"]:
            run_info["init"] = resume["metadata"]["init"]
    elif config.init_checkpoint_uri:
        init_state, data = load_checkpoint_dict(config.init_checkpoint_uri, config.storage)
        run_info["init"] = lineage(init_state["metadata"], data)
    resolved = redact_tree({"config": to_dict(config), "run": run_info})
    storage.write_bytes(
        storage.join(config.run_uri, "config.yaml"), yaml.safe_dump(resolved, sort_keys=False).encode(), config.storage
    )
    return keys, resume, init_state, run_info


# What a run started from records of its parent (and, nested under "init", of the parent's parent).
LINEAGE_KEYS = ("name", "recipe", "recipe_sha256", "overrides", "step", "train_cpu_seconds", "train_audio_seconds")


def lineage(metadata: dict, data: bytes) -> dict:
    """The ``init`` record of a run started from a checkpoint: its file's sha256 and how it was made.

    So a fine-tune or a second stage says which recipe, overrides and training CPU-seconds
    stand behind its starting weights, all the way back (the parent's own ``init`` is kept).
    """
    import hashlib

    record = {"sha256": hashlib.sha256(data).hexdigest(), **{k: metadata[k] for k in LINEAGE_KEYS if k in metadata}}
    if "init" in metadata:
        record["init"] = metadata["init"]
    return record


def steps_done(resume: dict | None) -> int:
    return int(resume["metadata"]["trainer_state"]["step"]) if resume else 0
