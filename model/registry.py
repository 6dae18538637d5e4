"""Model family registry: a model name → its classes, its loss and its shipped checkpoint.

What a family must provide is written down in :mod:`model.family` (the
:class:`model.family.ModelFamily` protocol and the loss signature); this module
only names them. Adding a family is one entry in :data:`MODELS` (see
docs/architecture.md, "Adding a model family").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from model.aigd import AIGD, AIGDConfig
from model.diffgmm import DiffGMM, DiffGMMConfig
from model.fuse import FUSE, FUSEConfig, FUSELossConfig, fuse_loss
from model.image_losses import AIGDLossConfig, aigd_loss
from model.losses import LossConfig, diffgmm_loss
from model.udiffse import UDiffSE, UDiffSEConfig, UDiffSELossConfig, udiffse_loss

# loss(model, noisy (batch, samples), clean (batch, samples), loss_config, generator | None)
#   -> (scalar loss tensor, parts as floats incl. "total"); see model.family.
LossFn = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, Any, "torch.Generator | None"], tuple[torch.Tensor, dict[str, float]]
]

TRAINING_DATA = ("pairs", "clean")


@dataclass(frozen=True)
class ModelSpec:
    """One family: ``model_cls(config_cls(...))`` builds it, ``loss`` trains it with a ``loss_config_cls``.

    ``shipped_checkpoint``: file name of the family's shipped checkpoint in
    ``pipeline/assets/`` (None: nothing shipped; ``--checkpoint NAME`` then does
    not resolve). ``training_data``: "pairs" (the loss needs noisy and clean; the
    train job mixes or pairs them) or "clean" (a prior over clean speech whose loss
    ignores ``noisy``; the train job's ``data.mode: clean``, no noise files).
    ``sampler_fields``: the family config's fields that change only how the trained
    network is sampled (steps, EM iterations, parallel samples, chunk length), never
    the weights' shapes; the batch jobs may override them at inference
    (``model.sampler``). Architecture fields are never among them.
    """

    model_cls: type[nn.Module]
    config_cls: type
    loss_config_cls: type
    loss: LossFn
    shipped_checkpoint: str | None = None
    training_data: str = "pairs"
    sampler_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.training_data not in TRAINING_DATA:
            raise ValueError(f"training_data must be one of {TRAINING_DATA}, got {self.training_data!r}")


def _core(model: nn.Module) -> nn.Module:
    """The family module under a DistributedDataParallel wrapper (the wrapper itself runs the forward pass)."""
    return model.module if hasattr(model, "module") else model


def _diffgmm_train_loss(model, noisy, clean, config: LossConfig, generator=None):
    out = model(noisy, generator=generator)
    # The loss runs in float32 outside any autocast: log-sum-exps, STFT norms and SDRs need the range.
    with torch.autocast(device_type=noisy.device.type, enabled=False):
        out.enhanced, out.final = out.enhanced.float(), out.final.float()
        core = _core(model)
        return diffgmm_loss(out, clean.float(), config, core.represent, core.config.sample_rate)


def _aigd_train_loss(model, noisy, clean, config: AIGDLossConfig, generator=None):
    out = model(noisy)
    with torch.autocast(device_type=noisy.device.type, enabled=False):
        out.enhanced, out.final = out.enhanced.float(), out.final.float()
        return aigd_loss(out, clean.float(), config)


MODELS: dict[str, ModelSpec] = {
    "diffgmm": ModelSpec(DiffGMM, DiffGMMConfig, LossConfig, _diffgmm_train_loss, "diffgmm-default.pt"),
    "aigd": ModelSpec(AIGD, AIGDConfig, AIGDLossConfig, _aigd_train_loss, "aigd-default.pt"),
    # Two stages (model.stage: vae, then diffusion; shipped: train-fuse-vae.yaml then train-fuse-diffusion.yaml).
    "fuse": ModelSpec(FUSE, FUSEConfig, FUSELossConfig, fuse_loss, "fuse-default.pt", sampler_fields=("num_steps",)),
    # Clip-level, clean-only score prior (shipped: train-udiffse.yaml, docs/model.md "UDiffSE").
    "udiffse": ModelSpec(
        UDiffSE,
        UDiffSEConfig,
        UDiffSELossConfig,
        udiffse_loss,
        "udiffse-default.pt",
        training_data="clean",
        sampler_fields=(
            "num_e",
            "num_em",
            "nbatch",
            "snr",
            "t_eps",
            "likelihood_every",
            "likelihood_weight",
            "skip_first_likelihood",
            "nmf_rank",
            "nmf_floor",
            "chunk_seconds",
        ),
    ),
}


def spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name]


def shipped_names() -> list[str]:
    """The families that ship a checkpoint, in registration order."""
    return [name for name, s in MODELS.items() if s.shipped_checkpoint]


def _from_values(cls: type, values: dict[str, Any], what: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} keys: {unknown}")
    # YAML and checkpoints carry tuples as lists.
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**fixed)


def config_from_dict(name: str, values: dict[str, Any]):
    """Build the model's frozen config; unknown keys are an error, tuples come back from lists."""
    return _from_values(spec(name).config_cls, values, f"{name} config")


def build_model(name: str, config=None) -> nn.Module:
    s = spec(name)
    return s.model_cls(config if config is not None else s.config_cls())
