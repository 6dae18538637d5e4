"""The model-family contract: what the pipeline may assume of a model, and nothing more.

A family is one registration in :mod:`model.registry` (a :class:`model.registry.ModelSpec`)
whose model class satisfies :class:`ModelFamily`. The pipeline (enhancement, streaming,
training, checkpoints, reports) uses only what is written here; a family's stats are
reported under the family's own names. A family's module imports only torch, numpy and the
standard library: no file IO, no Ray. A frozen pretrained component is handed in by the
pipeline, excluded from :meth:`ModelFamily.trainable_parameters` and never stored in a
checkpoint.

Randomness only through the explicit ``generator`` argument (a CPU or device
``torch.Generator``); library code never seeds torch's global generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

INPUT_UNITS = ("windows", "clip")

# A family's per-window (or per-chunk) statistics under its own names, e.g. DiffGMM's
# "gmm_nll" (batch,) and "gmm_occupancy" (batch, K), AIGD's "image_ssim" (batch,).
Stats = dict[str, torch.Tensor]
# What a clip family carries from one chunk of a clip to the next (e.g. UDiffSE's NMF W and H).
ChunkState = dict[str, torch.Tensor]


@runtime_checkable
class ModelFamily(Protocol):
    """A model family as the pipeline sees it (an ``nn.Module`` in practice).

    ``name``: the registry key (``"diffgmm"``). ``config``: the family's frozen dataclass;
    it has ``sample_rate: int`` (Hz, the rate every tensor below is at) and, for "clip"
    families, ``chunk_seconds: float`` (how long a chunk the pipeline hands
    :meth:`enhance_chunk`). ``input_unit``: "windows" (any fixed-length windows, possibly
    packed from several clips into one batch; implement :meth:`enhance`) or "clip" (one
    clip at a time, long clips in consecutive chunks with state; implement
    :meth:`enhance_chunk`).
    """

    name: str
    config: Any
    input_unit: ClassVar[str]

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the optimiser updates; frozen parts (a pretrained extractor, a trained VAE) are left out."""
        ...


class WindowFamily(ModelFamily, Protocol):
    """A family with ``input_unit == "windows"``."""

    def enhance(self, windows: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Stats]:
        """windows (batch, samples) float32 at ``config.sample_rate`` → (enhanced (batch, samples) float32, stats).

        Each stat is (batch,) or (batch, k), one row per window; rows are independent
        (a window's output does not depend on the other windows of the batch).
        """
        ...


class ClipFamily(ModelFamily, Protocol):
    """A family with ``input_unit == "clip"``; ``config.chunk_seconds`` is its chunk length."""

    def enhance_chunk(
        self, chunk: torch.Tensor, state: ChunkState | None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Stats, ChunkState]:
        """One chunk (samples,) float32 of ONE clip → (enhanced (samples,) float32, stats, state).

        ``state`` is None at the clip's start, else what the previous chunk of the same
        clip returned. Each stat is () or (k,); the pipeline weights chunks by length.
        The last chunk of a clip may be shorter than ``config.chunk_seconds``.
        """
        ...


# The loss of a family, as registered in ModelSpec.loss:
#   loss(model, noisy (batch, samples) float32, clean (batch, samples) float32, loss_config,
#        generator: torch.Generator | None) -> (total: scalar Tensor, parts: dict[str, float])
# The family owns its forward pass in training (a score-matching family draws t and noise with
# ``generator`` inside it; a clean-only family ignores ``noisy``). ``parts`` holds "total".


def input_unit(model: Any) -> str:
    """The model's input unit ("windows" unless it says otherwise); raises on an unknown one."""
    unit = getattr(model, "input_unit", "windows")
    if unit not in INPUT_UNITS:
        raise ValueError(
            f"model {getattr(model, 'name', model)!r}: input_unit must be one of {INPUT_UNITS}, got {unit!r}"
        )
    return unit


def trainable_parameters(model: Any) -> Iterator[nn.Parameter]:
    """``model.trainable_parameters()`` if the family defines it, else every parameter that requires grad."""
    core = model.module if hasattr(model, "module") else model
    if hasattr(core, "trainable_parameters"):
        return iter(core.trainable_parameters())
    return (p for p in core.parameters() if p.requires_grad)
