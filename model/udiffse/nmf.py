"""The NMF noise model of UDiffSE's M-step: noise variance V̂ = W·H, Itakura–Saito fit.

W (bins, rank) are spectral templates, H (rank, frames) their activations, so
W @ H is (bins, frames) like the images. (The public code names these axes
"T × rank" and "rank × F", but its spectrogram is (256 bins, frames), so its
W is the spectral side; we name the axes for what they hold.) float32, ≥ floor.
"""

from __future__ import annotations

import torch


def is_divergence(v: torch.Tensor, v_hat: torch.Tensor, floor: float = 1e-10) -> torch.Tensor:
    """Itakura–Saito divergence Σ v/v̂ − ln(v/v̂) − 1, summed over all entries; a 0-dim tensor."""
    ratio = v.clamp_min(floor) / v_hat.clamp_min(floor)
    return (ratio - ratio.log() - 1.0).sum()


def is_update(
    v: torch.Tensor, w: torch.Tensor, h: torch.Tensor, floor: float = 1e-10
) -> tuple[torch.Tensor, torch.Tensor]:
    """One multiplicative IS update of W then H (Févotte et al. 2009) for v ≈ w @ h.

    v (bins, frames) ≥ 0; w (bins, rank); h (rank, frames). Entries are
    floored at ``floor`` so none sticks at zero; afterwards each template
    (column of W) is scaled to sum 1 and its activations scaled up to match,
    which leaves W·H unchanged and keeps H in the units of the noise power.
    """
    v_hat = (w @ h).clamp_min(floor)
    w = (w * ((v * v_hat.pow(-2)) @ h.T) / (v_hat.reciprocal() @ h.T).clamp_min(floor)).clamp_min(floor)
    v_hat = (w @ h).clamp_min(floor)
    h = (h * (w.T @ (v * v_hat.pow(-2))) / (w.T @ v_hat.reciprocal()).clamp_min(floor)).clamp_min(floor)
    norm = w.sum(dim=0, keepdim=True)  # (1, rank)
    return w / norm, h * norm.T


def random_init(
    bins: int, frames: int, rank: int, generator: torch.Generator | None, floor: float = 1e-10
) -> tuple[torch.Tensor, torch.Tensor]:
    """W (bins, rank), H (rank, frames) ~ U(0, 1) from ``generator``, floored (the public code's start).

    The scale does not matter: one IS update rescales a uniformly mis-scaled W·H exactly.
    """
    w = torch.rand(bins, rank, generator=generator).clamp_min(floor)
    h = torch.rand(rank, frames, generator=generator).clamp_min(floor)
    return w, h
