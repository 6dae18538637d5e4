"""Model family registry: a model name → its module, config, loss config and loss.

The pipeline knows only the interface ``model.enhance(windows) -> (windows, stats)``
with windows (batch, samples) float32 at the model's ``config.sample_rate``,
and ``stats`` a dict of per-window tensors, (batch,) or (batch, k). Training
knows only ``loss(model_output, clean, loss_config) -> (total, parts)``.
UDiffSE registers with the family contract's loss signature
``loss(model, noisy, clean, loss_config, generator)`` (it owns its forward pass:
score matching draws t and noise itself) and is a clip-level family
(``enhance_chunk``); the train and denoise jobs take it once they speak that contract.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from model.aigd import AIGD, AIGDConfig
from model.diffgmm import DiffGMM, DiffGMMConfig
from model.image_losses import AIGDLossConfig, aigd_loss
from model.losses import LossConfig, diffgmm_loss
from model.udiffse import UDiffSE, UDiffSEConfig, UDiffSELossConfig, udiffse_loss


@dataclass(frozen=True)
class ModelSpec:
    model_cls: type[nn.Module]
    config_cls: type
    loss_config_cls: type
    # (forward output, clean (batch, samples), loss config, model) → (scalar loss, parts as floats)
    loss: Callable[..., tuple[Any, dict[str, float]]]


MODELS: dict[str, ModelSpec] = {
    "diffgmm": ModelSpec(DiffGMM, DiffGMMConfig, LossConfig, lambda out, clean, cfg, model: diffgmm_loss(out, clean, cfg, model.represent)),
    "aigd": ModelSpec(AIGD, AIGDConfig, AIGDLossConfig, lambda out, clean, cfg, model: aigd_loss(out, clean, cfg)),
    # (model, noisy, clean, loss config, generator) → (scalar loss, parts): the new contract's signature.
    "udiffse": ModelSpec(UDiffSE, UDiffSEConfig, UDiffSELossConfig, udiffse_loss),
}


def spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name]


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
