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
optimisation step, validation scores). ``jobs/train.py`` and the benches import
from these modules directly.
"""
