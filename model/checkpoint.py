"""Checkpoints as plain dicts: format version, model name and config, state dict.

No file IO here (``model/`` is pure PyTorch); :mod:`pipeline.core.checkpoints`
reads and writes the bytes with ``torch.load(weights_only=True)``. A SHA-256
over the state dict is stored alongside it so that edited weights are refused,
not silently used.

A family with a frozen pretrained component (FUSE's extractor) keeps what the pipeline
read it from in ``model.pretrained_records`` ({component: {package, version, file,
sha256}}); the checkpoint stores that record under ``"pretrained"`` and never the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import torch

from model.registry import build_model, config_from_dict

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_name", "model_config", "state_dict", "state_dict_sha256", "metadata")


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or understood."""


def state_dict_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # reshape(-1): a 0-dim tensor (a one-number parameter) cannot be viewed as bytes as it is.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def make_checkpoint(model: torch.nn.Module, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """A plain, ``weights_only``-loadable dict describing ``model``."""
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    pretrained = {name: dict(record) for name, record in (getattr(model, "pretrained_records", None) or {}).items()}
    return ({"pretrained": pretrained} if pretrained else {}) | {
        "format_version": FORMAT_VERSION,
        "model_name": model.name,
        "model_config": dataclasses.asdict(model.config),
        "state_dict": state,
        "state_dict_sha256": state_dict_digest(state),
        "metadata": dict(metadata or {}),
    }


def model_from_checkpoint(ckpt: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from a checkpoint dict; raises :class:`CheckpointError` with the reason."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"not a checkpoint dict (got {type(ckpt).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"missing keys {missing}")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"format version {ckpt['format_version']!r}, this code reads {FORMAT_VERSION}")
    if state_dict_digest(ckpt["state_dict"]) != ckpt["state_dict_sha256"]:
        raise CheckpointError("state dict does not match its SHA-256: the weights were altered or damaged")
    try:
        config = config_from_dict(ckpt["model_name"], ckpt["model_config"])
        model = build_model(ckpt["model_name"], config)
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"does not fit model {ckpt['model_name']!r}: {exc}") from exc
    model.eval()
    return model, dict(ckpt["metadata"])
