"""Model family registry: a config name → (module class, config class).

The pipeline knows only the interface ``model.enhance(windows) -> (windows, stats)``
with windows (batch, samples) float32 at the model's ``config.sample_rate``.
Later family members (AIGD, UDiffSE, FUSE) register here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from model.diffgmm import DiffGMM, DiffGMMConfig

MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "diffgmm": (DiffGMM, DiffGMMConfig),
}


def _lookup(name: str) -> tuple[type[nn.Module], type]:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name]


def config_from_dict(name: str, values: dict[str, Any]):
    """Build the model's frozen config; unknown keys are an error, tuples come back from lists."""
    _, config_cls = _lookup(name)
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {name} config keys: {unknown}")
    return config_cls(**values)


def build_model(name: str, config=None) -> nn.Module:
    model_cls, config_cls = _lookup(name)
    return model_cls(config if config is not None else config_cls())
