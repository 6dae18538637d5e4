"""Distributed training with Ray Train (TorchTrainer, Train V2) fed by Ray Data, or in one local process.

Data, in two modes, for either executor:

* ``mix``: a clean-speech corpus mixed on the fly with a noise corpus at random
  SNRs and gains; example *i* is drawn from ``default_rng([seed, i])``, so a
  run, a resumed run and a rerun see exactly the same examples;
* ``paired``: clean/noisy files with matching keys, randomly cropped (seeded
  the same way).

Every epoch ends with validation on a held-out paired set (PESQ-WB, SI-SDR).
The chief writes, under ``<storage_path>/<name>/``: ``last.pt`` (model +
optimizer + trainer state: what a rerun with the same name resumes from),
``best.pt`` (best validation PESQ so far), ``config.yaml`` (the resolved
config); the Ray executor also reports a Ray checkpoint so ``FailureConfig``
restarts resume too.

The modules: :mod:`~pipeline.train.configs` (the config dataclasses),
:mod:`~pipeline.train.data` (corpus keys, the mix and paired-crop stages, the
validation set), :mod:`~pipeline.train.loop` (the one loop: schedule, timing,
epochs, validation, checkpoints), :mod:`~pipeline.train.executors` (Ray Train
and local, which only feed the loop), :mod:`~pipeline.train.steps` (one
optimisation step, validation scores). This module is the job's entry point
and names what ``jobs/train.py`` and the benches use.
"""

from __future__ import annotations

from pipeline.train.configs import LR_SCHEDULES, DataConfig, OptimConfig, ScalingConfig, TrainConfig
from pipeline.train.data import (
    CLEAN,
    NOISY,
    MixStage,
    PairCropStage,
    build_train_dataset,
    corpus_keys,
    example_stage,
    load_pair,
    paired_keys,
    validation_set,
)
from pipeline.train.executors import run_train, run_train_local, train_loop_per_worker
from pipeline.train.loop import (
    Progress,
    build_model,
    end_of_epoch,
    prepare_run,
    read_train_state,
    restore_progress,
    train_loop,
)

__all__ = [
    "CLEAN", "LR_SCHEDULES", "NOISY", "DataConfig", "MixStage", "OptimConfig", "PairCropStage", "Progress", "ScalingConfig",
    "TrainConfig", "build_model", "build_train_dataset", "corpus_keys", "end_of_epoch", "example_stage", "load_pair",
    "paired_keys", "prepare_run", "read_train_state", "restore_progress", "run_train", "run_train_local", "train_loop",
    "train_loop_per_worker", "validation_set",
]
