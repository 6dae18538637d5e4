"""Training configuration: one frozen dataclass per concern, ``TrainConfig`` over them.

``TrainConfig.model`` and ``.loss`` are the family's own configs (:mod:`model.registry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pipeline.audio.mixing import MixConfig
from pipeline.audio.noise_kinds import kind_prefixes
from pipeline.core import storage
from pipeline.quality.selection import SelectionConfig


@dataclass(frozen=True)
class DataConfig:
    """``mode``: mix (clean_uri + noise_uri), paired (paired_clean_uri + paired_noisy_uri) or clean.

    ``clean``: clean speech only (clean_uri; no noise_uri), for the families whose
    :attr:`model.registry.ModelSpec.training_data` is "clean" (a prior over clean
    speech, e.g. UDiffSE). The loop then gets (clean, clean) batches and validates
    by the family's loss on held-out speakers' clean segments, not by enhancement.
    """

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
    # Kinds of noise (pipeline.audio.noise_kinds: machinery, underground, …) left out of the
    # noise corpus, so the held-out-noise-type set (bench/make_heldout.py --noise-kinds) is unseen.
    exclude_noise_kinds: tuple[str, ...] = ()
    valid_pairs: int = 16
    valid_segment_seconds: float = 4.0
    # Seeds the held-out mixtures apart from ``optim.seed``: a second stage that draws
    # new training examples (another optim.seed) is still validated on the same set.
    valid_seed: int = 1

    def __post_init__(self) -> None:
        for name in ("clean_holdout_fraction", "noise_holdout_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        kind_prefixes(self.exclude_noise_kinds)  # an unknown kind is refused before anything runs

    @property
    def noise_exclusions(self) -> tuple[str, ...]:
        """File-name prefixes left out of the noise corpus: ``exclude_prefixes`` and those of ``exclude_noise_kinds``."""
        return (*self.exclude_prefixes, *kind_prefixes(self.exclude_noise_kinds))


LR_SCHEDULES = ("constant", "cosine")
DATA_MODES = ("mix", "paired", "clean")


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
    """``model_name`` picks the family (:mod:`model.registry`); ``model`` and ``loss`` are that family's configs.

    ``selection``: how ``best.pt`` is chosen from each validation
    (:mod:`pipeline.quality.selection`; default: PESQ-WB alone).
    """

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
    selection: SelectionConfig = field(default_factory=SelectionConfig)
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
        if self.data.mode not in DATA_MODES:
            raise ValueError(f"data.mode must be one of {DATA_MODES}, got {self.data.mode!r}")
        if spec.training_data == "clean" and self.data.mode != "clean":
            raise ValueError(
                f"{self.model_name} trains on clean speech only: set data.mode: clean (with data.clean_uri, no noise)"
            )
        if spec.training_data != "clean" and self.data.mode == "clean":
            raise ValueError(
                f"{self.model_name} trains on noisy/clean pairs: data.mode clean is for clean-only families; use mix or paired"
            )
        if self.data.mode == "clean" and not self.data.clean_uri:
            raise ValueError("clean mode needs data.clean_uri")
        if self.data.mode == "clean" and (
            self.data.noise_uri or self.data.paired_noisy_uri or self.data.valid_noisy_uri
        ):
            raise ValueError(
                "clean mode uses no noise files: remove data.noise_uri / paired_noisy_uri / valid_noisy_uri"
            )
        if self.data.mode == "mix" and not (self.data.clean_uri and self.data.noise_uri):
            raise ValueError("mix mode needs data.clean_uri and data.noise_uri")
        if self.data.mode == "paired" and not (self.data.paired_clean_uri and self.data.paired_noisy_uri):
            raise ValueError("paired mode needs data.paired_clean_uri and data.paired_noisy_uri")

    @property
    def run_uri(self) -> str:
        return storage.join(self.storage_path, storage.safe_relative_key(self.name))

    def with_absolute_local_paths(self) -> TrainConfig:
        """This config with every relative local path (``storage_path``, ``init_checkpoint_uri``, ``data.*_uri``)
        resolved against the current directory, the one relative paths are documented to mean
        (docs/cluster.md); URIs with a scheme (``s3://…``) are kept as they are.

        For the Ray executor: its workers run in a directory of Ray's own, where
        ``runs/train`` would put ``best.pt`` somewhere nobody looks.
        """

        def resolved(uri: str | None) -> str | None:
            return None if uri is None else storage.absolute_local(uri)

        data = replace(
            self.data,
            **{f.name: resolved(getattr(self.data, f.name)) for f in fields(self.data) if f.name.endswith("_uri")},
        )
        return replace(
            self,
            storage_path=resolved(self.storage_path),
            init_checkpoint_uri=resolved(self.init_checkpoint_uri),
            data=data,
        )
