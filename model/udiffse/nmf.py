"""The NMF noise model of UDiffSE's M-step: noise variance V̂ = W·H, Itakura–Saito fit.

Shapes follow the public code: W (frames, rank) are activations over time,
H (rank, bins) are spectral templates, so W @ H is (frames, bins); callers
holding (bins, frames) images transpose. All float32/64, non-negative, floored.
"""

from __future__ import annotations

import torch


def is_divergence(v: torch.Tensor, v_hat: torch.Tensor, floor: float = 1e-10) -> torch.Tensor:
    """Itakura–Saito divergence Σ v/v̂ − ln(v/v̂) − 1, summed over all entries; a 0-dim tensor."""
    ratio = v.clamp_min(floor) / v_hat.clamp_min(floor)
    return (ratio - ratio.log() - 1.0).sum()


def is_update(v: torch.Tensor, w: torch.Tensor, h: torch.Tensor, floor: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """One multiplicative IS update of H then W (Févotte et al. 2009) for v ≈ w @ h.

    v (frames, bins) ≥ 0; w (frames, rank); h (rank, bins). Returns new
    (w, h), floored at ``floor`` so no entry can stick at zero.
    """
    v_hat = (w @ h).clamp_min(floor)
    h = (h * (w.T @ (v * v_hat.pow(-2))) / (w.T @ v_hat.reciprocal()).clamp_min(floor)).clamp_min(floor)
    v_hat = (w @ h).clamp_min(floor)
    w = (w * ((v * v_hat.pow(-2)) @ h.T) / (v_hat.reciprocal() @ h.T).clamp_min(floor)).clamp_min(floor)
    return w, h


def random_init(frames: int, bins: int, rank: int, target_mean: float, generator: torch.Generator | None,
                floor: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """W (frames, rank), H (rank, bins) ~ U(0, 1) from ``generator``, H scaled so mean(W·H) = ``target_mean``.

    The public code draws U(0, 1); the scaling (our choice) puts the first
    noise estimate at the noisy power's level instead of an arbitrary one.
    """
    w = torch.rand(frames, rank, generator=generator).clamp_min(floor)
    h = torch.rand(rank, bins, generator=generator).clamp_min(floor)
    h = h * (max(float(target_mean), floor) / float((w @ h).mean()))
    return w, h
